"""Each adversarial loss against its closed form, in float64, on fixed logits."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lightning.losses import LOSSES

REAL = torch.tensor([2.0, -0.5, 0.3, 1.7], dtype=torch.float64)
FAKE = torch.tensor([-1.2, 0.4, -3.0, 0.9], dtype=torch.float64)


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def closed_form(name: str, real: list[float], fake: list[float], real_label: float = 1.0) -> tuple[float, float]:
    """(D loss, G loss) written out from the papers' formulas, in plain Python floats."""
    if name in ("minimax", "nonsaturating"):
        d = mean(-(real_label * math.log(sigmoid(r)) + (1 - real_label) * math.log(1 - sigmoid(r))) for r in real)
        d += mean(-math.log(1 - sigmoid(f)) for f in fake)
        g = (
            mean(math.log(1 - sigmoid(f)) for f in fake)
            if name == "minimax"
            else mean(-math.log(sigmoid(f)) for f in fake)
        )
        return d, g
    if name == "wasserstein":
        return mean(fake) - mean(real), -mean(fake)
    if name == "hinge":
        return mean(max(0, 1 - r) for r in real) + mean(max(0, 1 + f) for f in fake), -mean(fake)
    if name == "least_squares":
        d = 0.5 * mean((r - real_label) ** 2 for r in real) + 0.5 * mean(f**2 for f in fake)
        return d, 0.5 * mean((f - 1) ** 2 for f in fake)
    if name == "energy":  # E[e(x)] for D (EBGAN's margin, BEGAN's k_t term are the models'), E[e(G(z))] for G
        return mean(real), mean(fake)
    if name.startswith("fgan_"):
        # Nowozin et al. 2016, Table 2, as printed: activation g_f and conjugate f*, unsimplified;
        # D loss -(E_P[g_f(v)] - E_Q[f*(g_f(v))]), G loss -E_Q[g_f(v)]
        g_f, conjugate = FGAN_TABLE[name[len("fgan_") :]]
        d = mean(conjugate(g_f(f)) for f in fake) - mean(g_f(r) for r in real)
        return d, -mean(g_f(f) for f in fake)
    raise KeyError(name)


FGAN_TABLE = {
    "kl": (lambda v: v, lambda t: math.exp(t - 1)),
    "reverse_kl": (lambda v: -math.exp(-v), lambda t: -1 - math.log(-t)),
    "pearson": (lambda v: v, lambda t: t * t / 4 + t),
    "neyman": (lambda v: 1 - math.exp(-v), lambda t: 2 - 2 * math.sqrt(1 - t)),
    "hellinger": (lambda v: 1 - math.exp(-v), lambda t: t / (1 - t)),
    "js": (lambda v: math.log(2) - math.log(1 + math.exp(-v)), lambda t: -math.log(2 - math.exp(t))),
    "gan": (lambda v: -math.log(1 + math.exp(-v)), lambda t: -math.log(1 - math.exp(t))),
}


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_matches_closed_form(name: str) -> None:
    loss = LOSSES[name]
    d_expected, g_expected = closed_form(name, REAL.tolist(), FAKE.tolist())
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-12, abs=1e-12)
    assert loss.g_loss(FAKE).item() == pytest.approx(g_expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if LOSSES[n].smoothable])
def test_one_sided_label_smoothing(name: str) -> None:
    d_expected, _ = closed_form(name, REAL.tolist(), FAKE.tolist(), real_label=0.9)
    assert LOSSES[name].d_loss(REAL, FAKE, real_label=0.9).item() == pytest.approx(d_expected, rel=1e-12)


def test_energy_loss_lowers_the_energy_of_data_for_d_and_of_samples_for_g() -> None:
    real = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([0.4, 0.2, 0.5], dtype=torch.float64, requires_grad=True)
    LOSSES["energy"].d_loss(real, fake).backward()
    assert (real.grad > 0).all()  # descending lowers e(x)
    LOSSES["energy"].g_loss(fake).backward()
    assert (fake.grad > 0).all()  # descending lowers e(G(z))


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if not LOSSES[n].energy])
def test_gradient_signs(name: str) -> None:
    """D is pushed to raise real scores and lower fake ones; G to raise its fake scores
    (within the region where each loss is active: logits in (-1, 1))."""
    real = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64, requires_grad=True)
    LOSSES[name].d_loss(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_g = fake.detach().clone().requires_grad_(True)
    LOSSES[name].g_loss(fake_g).backward()
    assert (fake_g.grad < 0).all()


def test_minimax_saturates_where_nonsaturating_does_not() -> None:
    """For a confident D (fake logit -10) the minimax G gradient vanishes, the heuristic's does not."""
    f1 = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    f2 = f1.detach().clone().requires_grad_(True)
    LOSSES["minimax"].g_loss(f1).backward()
    LOSSES["nonsaturating"].g_loss(f2).backward()
    assert abs(f1.grad.item()) < 1e-4 < abs(f2.grad.item())
    assert f2.grad.item() == pytest.approx(-(1 - sigmoid(-10.0)), rel=1e-9)

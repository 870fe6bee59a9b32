"""Perceptual path length against closed forms of linear generators in float64 (lerp in W, slerp
in Z), its outlier filter and the W/Z capability fallback; the truncation sweep (psi = 1 is no
truncation, bitwise; one row per psi; refusals); lazy regularisation's Adam adjustment."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from gan_lightning.cli import main
from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.latent import slerp, slerp_rows
from gan_lightning.metrics.ppl import filtered_mean, pair_distances, path_points, perceptual_path_length
from gan_lightning.models import build_model
from gan_lightning.registry import ConfigError
from gan_lightning.truncation import check_truncation, parse_psis, truncated_samples
from tests.conftest import TINY
from tests.helpers import run
from tests.test_stylegan import STYLE, tiny


# ---------------------------------------------------------------------- closed forms (numpy float64)
def unit_speed2(x: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """|d/dt (x / |x|)|^2 = (|x'|^2 - (x^ . x')^2) / |x|^2, per row."""
    nx = np.linalg.norm(x, axis=1)
    return (np.sum(dx * dx, 1) - (np.sum(x * dx, 1) / nx) ** 2) / nx**2


def slerp_and_velocity(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p(t) = r(t) u(t): r linear in t, u on the great circle at constant angular speed; and p'(t)."""
    n0, n1 = np.linalg.norm(a, axis=1)[:, None], np.linalg.norm(b, axis=1)[:, None]
    u0, u1 = a / n0, b / n1
    om = np.arccos(np.sum(u0 * u1, 1))[:, None]
    t = t[:, None]
    u = (np.sin((1 - t) * om) * u0 + np.sin(t * om) * u1) / np.sin(om)
    du = om * (-np.cos((1 - t) * om) * u0 + np.cos(t * om) * u1) / np.sin(om)
    r = (1 - t) * n0 + t * n1
    return r * u, (n1 - n0) * u + r * du


def test_lerp_and_slerp_paths() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    t = torch.rand(6, generator=g, dtype=torch.float64)
    assert torch.allclose(path_points(a, b, t, "w"), a + t[:, None] * (b - a))
    for end, want in ((0.0, a), (1.0, b)):
        assert torch.allclose(path_points(a, b, torch.full((6,), end, dtype=torch.float64), "z"), want)
    p, _ = slerp_and_velocity(a.numpy(), b.numpy(), t.numpy())
    assert np.allclose(path_points(a, b, t, "z").numpy(), p, atol=1e-12)
    # row i of slerp_rows is the single-pair slerp of row i
    assert torch.allclose(slerp_rows(a, b, t)[2], slerp(a[2], b[2], t[2:3])[0])
    # constant angular speed: the angle from a's direction grows as t * omega
    s = slerp_rows(a[:1].expand(5, -1), b[:1].expand(5, -1), torch.linspace(0, 1, 5, dtype=torch.float64))
    cos = (s @ a[0]) / (s.norm(dim=1) * a[0].norm())
    omega = torch.arccos((a[0] @ b[0]) / (a[0].norm() * b[0].norm()))
    assert torch.allclose(torch.arccos(cos.clamp(-1, 1)), torch.linspace(0, 1, 5, dtype=torch.float64) * omega)


def test_slerp_between_opposite_directions_stays_off_the_origin() -> None:
    """z and -c z (and directions a hair from opposite) have many great circles between them; slerp takes
    one, so the norm still moves linearly and the angle from z's direction still grows as t * pi, where
    the sin(omega) formula's clamp sent the path through (or near) the origin."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 8, generator=g, dtype=torch.float64)
    tilt = torch.randn(3, 8, generator=g, dtype=torch.float64) * 1e-9
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    for b in (-2 * a, -2 * a + tilt):
        for i in range(3):
            s = slerp(a[i], b[i], t)
            assert torch.allclose(s.norm(dim=1), (1 - t) * a[i].norm() + t * b[i].norm(), rtol=1e-6)
            cos = (s @ a[i]) / (s.norm(dim=1) * a[i].norm())
            assert torch.allclose(torch.arccos(cos.clamp(-1, 1)), t * math.pi, atol=1e-6)
            assert torch.allclose(s[-1], b[i], atol=1e-12)
    same = slerp_rows(a, 3 * a, torch.full((3,), 0.25, dtype=torch.float64))  # one direction: a scaling
    assert torch.allclose(same, 1.5 * a, atol=1e-12)


@pytest.mark.parametrize("space", ["w", "z"])
def test_pair_distances_of_a_linear_generator_equal_the_closed_form(space: str) -> None:
    g = torch.Generator().manual_seed(1)
    A = torch.randn(12, 4, generator=g, dtype=torch.float64)
    a, b = torch.randn(300, 4, generator=g, dtype=torch.float64), torch.randn(300, 4, generator=g, dtype=torch.float64)
    t = torch.rand(300, generator=g, dtype=torch.float64)
    d = pair_distances(lambda p: p @ A.T, lambda x: x, a, b, t, space)
    An, an, bn, tn = A.numpy(), a.numpy(), b.numpy(), t.numpy()
    if space == "w":
        p, dp = an + tn[:, None] * (bn - an), bn - an
    else:
        p, dp = slerp_and_velocity(an, bn, tn)
    truth = unit_speed2(p @ An.T, dp @ An.T)
    assert np.allclose(d.numpy(), truth, rtol=2e-3, atol=1e-9)  # a finite difference: O(eps) off the derivative
    assert math.isclose(filtered_mean(d), official_filtered_mean(truth), rel_tol=2e-3)


def official_filtered_mean(values: np.ndarray) -> float:
    """StyleGAN's PPL filter (Karras et al. 2019's metric code): keep lo <= d <= hi, lo the 1st percentile
    rounded down to a sample, hi the 99th rounded up."""
    lo, hi = np.percentile(values, 1, method="lower"), np.percentile(values, 99, method="higher")
    return float(values[(lo <= values) & (values <= hi)].mean())


def test_filter_keeps_what_lies_between_the_1st_and_99th_percentiles() -> None:
    g = torch.Generator().manual_seed(0)
    for values in (
        torch.cat([torch.rand(196, generator=g), torch.tensor([1e9, 2e9, -5.0, -7.0])]),
        torch.rand(2000, generator=g, dtype=torch.float64) ** 3,
        torch.rand(99, generator=g),
    ):
        assert math.isclose(filtered_mean(values), official_filtered_mean(values.double().numpy()), rel_tol=1e-12)
    # ties at the percentiles are kept: 99 zeros and one 1000 keep all (dropping one per side gave 0)
    assert filtered_mean(torch.tensor([0.0] * 99 + [1000.0])) == 10.0


class LinearModel:
    """A model whose generator is G(z) = A z (z-space) or from_w(w) = A w with w = M z."""

    device = torch.device("cpu")

    def __init__(self, net: nn.Module):
        self.net = net

    def draw_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, 3, generator=generator, dtype=torch.float64)

    def labels_for(self, n: int) -> None:
        return None

    def generate(self, z: Tensor, net: nn.Module, y: Any = None) -> Tensor:
        return net(z)


class LinearG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(2)
        self.A = torch.randn(10, 3, generator=g, dtype=torch.float64)
        self.M = torch.randn(3, 3, generator=g, dtype=torch.float64)

    def forward(self, z: Tensor) -> Tensor:
        return z @ self.A.T


class LinearStyleG(LinearG):
    w_space: ClassVar[bool] = True

    def mapping(self, z: Tensor) -> Tensor:
        return z @ self.M.T

    def from_w(self, w: Tensor) -> Tensor:
        return w @ self.A.T

    def forward(self, z: Tensor) -> Tensor:
        return self.from_w(self.mapping(z))


def test_ppl_runs_in_full_float32_with_tf32_switched_off_and_then_restored() -> None:
    """TF32 (on by default for training, perf.tf32) keeps 10 mantissa bits: relative errors ~5e-4 against a step
    of 1e-4 inflated a PPL ~11x (simulated). G and the embedding must run with both TF32 flags off."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    seen: list[tuple[bool, bool]] = []

    def embed(x: Tensor) -> Tensor:
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return x

    try:
        net = LinearStyleG()
        perceptual_path_length(LinearModel(net), net, embed, n=20, space="w", batch_size=10)
        assert seen == [(False, False), (False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32  # restored
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize(
    "net_cls, space, measured", [(LinearStyleG, "w", "w"), (LinearStyleG, "z", "z"), (LinearG, "w", "z")]
)
def test_ppl_measures_in_w_where_the_generator_maps_to_w_else_in_z(net_cls: type, space: str, measured: str) -> None:
    net = net_cls()
    model = LinearModel(net)
    value = perceptual_path_length(model, net, lambda y: 2 * y - 1, n=200, space=space, batch_size=64, seed=5)
    g = torch.Generator().manual_seed(5)  # the documented draws: z1, z2, then t
    z1, z2 = model.draw_z(200, g).numpy(), model.draw_z(200, g).numpy()
    t = torch.rand(200, generator=g, dtype=torch.float64).numpy()
    A, M = net.A.numpy(), net.M.numpy()
    if measured == "w":
        w1, w2 = z1 @ M.T, z2 @ M.T
        x, dx = (w1 + t[:, None] * (w2 - w1)) @ A.T, (w2 - w1) @ A.T
    else:
        p, dp = slerp_and_velocity(z1, z2, t)
        B = A @ M if net_cls is LinearStyleG else A
        x, dx = p @ B.T, dp @ B.T
    assert math.isclose(value, official_filtered_mean(unit_speed2(x, dx)), rel_tol=2e-3)


# ---------------------------------------------------------------------- a tiny StyleGAN: ppl, truncation
def test_evaluate_ppl_and_the_truncation_sweep_of_a_tiny_stylegan(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(*STYLE, "steps=2", "out=r")
    ckpt = str(result.run_dir / "checkpoints" / "last.ckpt")
    assert main(["evaluate", ckpt, "--metrics", "ppl", "--n", "16", "--ppl-n", "20", "--out", "ppl.json"]) == 0
    written = json.loads(Path("ppl.json").read_text())
    values = written["values"]
    assert set(values) == {"ppl", "raw/ppl"} and all(math.isfinite(v) and v > 0 for v in values.values())
    assert written["ppl_space"] == "w"  # the space measured in is stated, not only the one asked for

    assert main(["truncation", ckpt, "--psi", "1,0.7,0", "--n", "16", "--out", "tr/sweep"]) == 0
    table = json.loads(Path("tr/sweep.json").read_text())
    assert [r["psi"] for r in table["rows"]] == [1.0, 0.7, 0.0] and table["generator"] == "ema"
    assert {"fid", "prdc/precision", "prdc/recall"} <= set(table["keys"])
    assert len(Path("tr/sweep.md").read_text().splitlines()) == 2 + 3 and Path("tr/sweep.png").is_file()
    assert table["rows"][2]["prdc/recall"] <= table["rows"][0]["prdc/recall"]  # psi 0: one image, no diversity

    capsys.readouterr()
    assert main(["truncation", ckpt, "--psi", "1.0,x"]) == 2
    err = capsys.readouterr().err
    assert "bad value for '--psi': 'x' is not a number" in err and "such as --psi 1.0,0.9,0.7,0.5" in err


def test_evaluate_states_that_ppl_fell_back_to_z_for_a_generator_without_a_mapping_net(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run(*TINY, "exp=dcgan", "data=synthetic", "data.image_size=16", "data.n=16", "steps=1", "out=d")
    ckpt = str(result.run_dir / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(["evaluate", ckpt, "--metrics", "ppl", "--n", "16", "--ppl-n", "8", "--out", "dppl.json"]) == 0
    assert json.loads(Path("dppl.json").read_text())["ppl_space"] == "z"
    assert "ppl in Z" in capsys.readouterr().err  # said where it happens, not only in the file


def test_psi_1_is_no_truncation_bitwise_and_models_without_truncation_are_refused() -> None:
    model = tiny()
    net = model.generator_for_sampling()
    net.w_avg.normal_(generator=torch.Generator().manual_seed(0))  # a w_avg far from 0
    plain = model.generate_from(model.draw_z(6, torch.Generator().manual_seed(3)), net)
    x1, _ = truncated_samples(model, net, 1.0, 6, seed=3)
    x0, _ = truncated_samples(model, net, 0.0, 6, seed=3)
    assert torch.equal(x1, plain)
    assert not torch.equal(truncated_samples(model, net, 0.5, 6, seed=3)[0], plain)  # the check can fail
    assert float((x0 - x0[:1]).abs().max()) < 1e-6  # psi 0: every sample is G(w_avg)
    cfg = load_config([*TINY, "exp=dcgan", "data=synthetic", "data.image_size=16", "data.n=16"])
    with pytest.raises(ConfigError, match="has no truncation trick"):
        check_truncation(build_model(cfg, build_datamodule(cfg).info), [1.0])
    for bad in ("", "1,1", "nan", "0.7;0.5"):
        with pytest.raises(ConfigError, match="bad value for '--psi'"):
            parse_psis(bad)


# ---------------------------------------------------------------------- lazy regularisation's Adam adjustment
def groups(model: Any) -> list[tuple[float, tuple[float, float]]]:
    (opt_g, opt_d), _ = model.configure_optimizers()
    return [(o.param_groups[0]["lr"], tuple(o.param_groups[0]["betas"])) for o in (opt_g, opt_d)]


def test_lazy_regularisation_scales_lr_and_betas_by_k_over_k_plus_1() -> None:
    lr, b1, b2 = 2.5e-3, 0.0, 0.99  # stylegan's paper defaults
    (lr_g, betas_g), (lr_d, betas_d) = groups(tiny("model.pl_every=4", "model.penalty.every=16"))
    for got_lr, got_betas, k in ((lr_g, betas_g, 4), (lr_d, betas_d, 16)):
        c = k / (k + 1)
        assert math.isclose(got_lr, lr * c, rel_tol=1e-12)
        assert got_betas == pytest.approx((b1**c, b2**c), rel=1e-12)
    # k = 1 (every step, path length off) or the option off: unchanged
    for args in (["model.pl_every=1", "model.penalty.every=1"], ["optim.lazy_adjust=false"]):
        assert groups(tiny(*args)) == [(lr, (b1, b2))] * 2
    assert groups(tiny("model.pl_weight=0"))[0] == (lr, (b1, b2))
    # other models keep their results: the option is off unless asked for
    dcgan = [*TINY, "exp=dcgan", "data=synthetic", "data.image_size=16", "data.n=16", "model.penalty.name=r1"]
    for args, want_d in (([], (2e-4, (0.5, 0.999))), (["optim.lazy_adjust=true"], None)):
        cfg = load_config([*dcgan, "model.penalty.every=4", *args])
        (lr_g, betas_g), (lr_d, betas_d) = groups(build_model(cfg, build_datamodule(cfg).info))
        assert (lr_g, betas_g) == (2e-4, (0.5, 0.999))  # G has no lazy regulariser
        if want_d is not None:
            assert (lr_d, betas_d) == want_d
        else:
            assert math.isclose(lr_d, 2e-4 * 0.8) and betas_d == pytest.approx((0.5**0.8, 0.999**0.8), rel=1e-12)


def test_lazy_regularisation_adjusts_rmsprops_alpha_like_adams_beta2() -> None:
    """RMSprop's alpha is the decay of its squared-gradient average, Adam's beta2: with a lazy
    regulariser every k steps it becomes alpha ^ c as beta2 does (c = k / (k + 1)); without, torch's
    0.99 (what WGAN's RMSprop has always used) or ``optim.alpha``."""
    dcgan = [*TINY, "exp=dcgan", "data=synthetic", "data.image_size=16", "data.n=16", "model.penalty.name=r1"]

    def alphas(*args: str) -> list[float]:
        cfg = load_config([*dcgan, "optim.name=rmsprop", *args])
        (opt_g, opt_d), _ = build_model(cfg, build_datamodule(cfg).info).configure_optimizers()
        return [o.param_groups[0]["alpha"] for o in (opt_g, opt_d)]

    assert alphas() == [0.99, 0.99]
    assert alphas("optim.alpha=0.9") == [0.9, 0.9]
    g, d = alphas("model.penalty.every=4", "optim.lazy_adjust=true")
    assert g == 0.99 and math.isclose(d, 0.99**0.8, rel_tol=1e-12)

"""VAE-GAN (Larsen et al. 2016): its three losses against the paper's definitions written out here
in float64, which net each update moves, the reparameterisation, the plain-VAE switch, training,
exact resume and refusals."""

from __future__ import annotations

import csv
import math
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.noise import NoiseSource
from gan_lightning.models.vaegan import kl_to_standard_normal
from gan_lightning.nets.layers import Critic
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights

TOY = [*TINY, "exp=gmm_ring", "model=vaegan", "model.z_dim=3", "data.batch_size=16"]
N, Z = 16, 3


def toy_model(*args: str) -> Any:
    cfg = load_config([*TOY, *args])
    torch.manual_seed(0)  # the nets' initial weights
    model = build_model(cfg, build_datamodule(cfg).info)
    model.noise = NoiseSource(7)
    return model


def np64(t: Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def log_sigmoid(v: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -v)


def capture_losses(model: Any) -> list[Tensor]:
    """Replace the optimizer step by a recorder of the loss it was given."""
    losses: list[Tensor] = []
    model.backward_step = lambda opt, loss: losses.append(loss)
    return losses


def plain_steps(model: Any) -> None:
    """Optimizer steps without a Trainer (Lightning's manual_backward needs one)."""

    def step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.backward_step = step


class FixedCritic(Critic):
    """A tiny hand-set Dis: features Dis_l(x) = tanh(W x + b) (4 units), logit v . Dis_l(x) + c."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.trunk = nn.Linear(2, 4)
        self.head = nn.Linear(4, 1)
        self.feature_dim = 4
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def features(self, x: Tensor) -> Tensor:
        return torch.tanh(self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)

    def numpy(self) -> tuple[np.ndarray, ...]:
        return tuple(np64(p) for p in (self.trunk.weight, self.trunk.bias, self.head.weight[0], self.head.bias))


def run_phases(model: Any, x: Tensor) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Enc's, Dec's and Dis's steps of one training step, their losses recorded."""
    losses = capture_losses(model)
    with torch.no_grad():
        target = model.likelihood_space(x)
    stats, z = model.encoder_step(x, target, None)
    g_stats, fakes = model.decoder_step(target, z, None)
    stats.update(g_stats)
    if model.D is not None:
        stats.update(model.critic_step(x, fakes, None))
    return losses, stats


# ----------------------------------------------------------------------------- the terms
def test_kl_term_matches_the_closed_form_in_float64() -> None:
    """KL(N(mu, sigma^2) || N(0, 1)) = log(1/sigma) + (sigma^2 + mu^2)/2 - 1/2 per dimension
    (torch.distributions' own), summed over dims and averaged over samples; zero at the prior."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 5, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(64, 5, generator=g, dtype=torch.float64) * 1.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert float(kl_to_standard_normal(mu, logvar)) == pytest.approx(float(expected), rel=1e-12)
    by_hand = (np.log(1 / np.exp(0.5 * logvar.numpy())) + (np.exp(logvar.numpy()) + mu.numpy() ** 2) / 2 - 0.5).sum(1)
    assert float(kl_to_standard_normal(mu, logvar)) == pytest.approx(by_hand.mean(), rel=1e-12)
    assert float(kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0


def test_losses_of_the_three_updates_match_the_paper_with_a_fixed_dis() -> None:
    """With a hand-set Dis, in float64: Enc's loss L_prior + L_llike with L_llike = 1/2 ||Dis_l(x) -
    Dis_l(Dec(z))||^2, z = mu + sigma eps; Dec's gamma L_llike + (-log Dis) of reconstructions and
    prior samples; Dis's -log Dis(x) - log(1 - Dis(.)) over both kinds of fake."""
    gamma = 0.3
    model = toy_model(f"model.gamma={gamma}")
    model.D = FixedCritic()
    x = torch.randn(N, 2) + 1.0
    losses, stats = run_phases(model, x)
    replay = NoiseSource(7)  # the same draws: eps of the Enc step, then z_p of the Dec step
    eps, z_p = np64(replay.normal(N, Z)), replay.normal(N, Z)
    h = np64(model.E(x))  # E in training mode: the same batch statistics as in the step
    mu, logvar = h[:, :Z], h[:, Z:]
    z = mu + np.exp(0.5 * logvar) * eps
    x_rec, x_p = np64(model.G(torch.from_numpy(z).float())), np64(model.G(z_p))
    w, b, v, c = model.D.numpy()

    def features(a: np.ndarray) -> np.ndarray:
        return np.tanh(a @ w.T + b)

    def logit(a: np.ndarray) -> np.ndarray:
        return features(a) @ v + c

    kl = (0.5 * (mu**2 + np.exp(logvar) - 1 - logvar)).sum(1).mean()
    llike = (0.5 * ((features(np64(x)) - features(x_rec)) ** 2).sum(1)).mean()
    fakes = np.concatenate([logit(x_rec), logit(x_p)])
    assert float(stats["vae/kl"]) == pytest.approx(kl, rel=1e-5)
    assert float(stats["vae/llike"]) == pytest.approx(llike, rel=1e-5)
    assert float(losses[0].detach()) == pytest.approx(kl + llike, rel=1e-5)
    assert float(losses[1].detach()) == pytest.approx(gamma * llike - log_sigmoid(fakes).mean(), rel=1e-5)
    d_loss = -log_sigmoid(logit(np64(x))).mean() - log_sigmoid(-fakes).mean()
    assert float(losses[2].detach()) == pytest.approx(d_loss, rel=1e-5)
    assert abs(llike) > 1e-3 and abs(float(losses[1].detach()) + log_sigmoid(fakes).mean()) > 1e-4  # terms that count


def test_each_update_moves_only_its_net_and_no_loss_leaks_into_another() -> None:
    """Enc's step moves Enc alone and gives Dec and Dis no gradient (Enc is not trained on L_GAN);
    Dec's moves Dec alone; Dis's moves Dis alone (it never minimises L_llike)."""
    model = toy_model()
    opt_e, opt_g, opt_d = model.configure_optimizers()[0]
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    assert [ids(o) for o in (opt_e, opt_g, opt_d)] == [
        {id(p) for p in n.parameters()} for n in (model.E, model.G, model.D)
    ]
    plain_steps(model)
    nets = {"E": model.E, "G": model.G, "D": model.D}

    def snapshot() -> dict[str, list[Tensor]]:
        return {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}

    def changed(before: dict[str, list[Tensor]]) -> set[str]:
        now = snapshot()
        return {k for k in before if any(not torch.equal(a, b) for a, b in zip(before[k], now[k]))}

    def with_grad() -> set[str]:
        return {k for k, n in nets.items() if any(p.grad is not None for p in n.parameters())}

    x = torch.randn(N, 2)
    with torch.no_grad():
        target = model.likelihood_space(x)
    before = snapshot()
    _, z = model.encoder_step(x, target, opt_e)
    assert changed(before) == {"E"} and with_grad() == {"E"} and not z.requires_grad
    before = snapshot()
    _, fakes = model.decoder_step(target, z, opt_g)
    assert changed(before) == {"G"} and with_grad() == {"E", "G"} and len(fakes) == 2
    assert not any(f.requires_grad for f in fakes)
    before = snapshot()
    model.critic_step(x, fakes, opt_d)
    assert changed(before) == {"D"}


def test_reparameterisation_has_the_encoders_mean_and_variance() -> None:
    """z = mu + sigma eps with E's outputs (mu, log sigma^2): mean mu, variance sigma^2, gradient
    1 to mu and sigma eps / 2 to log sigma^2; ``encode`` gives mu."""
    model = toy_model("model.z_dim=2")
    mu, sigma = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    params = torch.cat([mu, (sigma**2).log()]).requires_grad_(True)
    n = 40000

    class Fixed(nn.Module):  # E(x) = (mu, log sigma^2) for every x
        def forward(self, x: Tensor) -> Tensor:
            return params.expand(len(x), 4)

    model.E = Fixed()
    z = model.reparameterise(*model.posterior(torch.zeros(n, 2)))
    assert z.shape == (n, 2)
    assert torch.allclose(z.mean(0), mu, atol=float(4 * sigma.max() / math.sqrt(n)))
    assert torch.allclose(z.var(0), sigma**2, rtol=0.04)
    z.sum().backward()
    assert params.grad is not None and torch.allclose(params.grad[:2], torch.full((2,), float(n)))
    eps = (z.detach() - mu) / sigma
    assert torch.allclose(params.grad[2:], 0.5 * (sigma * eps).sum(0), rtol=1e-4)
    assert torch.equal(model.encode(torch.zeros(3, 2)), mu.expand(3, 2))
    assert model.has_encoder


def test_adversarial_false_is_the_same_vae_with_a_pixel_likelihood_and_no_dis() -> None:
    """No Dis (nor its optimizer), the same initial Enc and Dec as the VAE-GAN of the seed, and
    losses KL + 1/2 ||(x - Dec(z)) / s||^2 for Enc and the likelihood alone for Dec."""
    s = 0.5
    gan, vae = toy_model(), toy_model("model.adversarial=false", f"model.pixel_std={s}")
    assert vae.D is None and not any(k.startswith("D.") for k in vae.state_dict())
    assert len(vae.configure_optimizers()[0]) == 2
    for a, b in ((gan.E, vae.E), (gan.G, vae.G)):
        assert_bitwise_equal(a.state_dict(), b.state_dict())
    x = torch.randn(N, 2)
    losses, stats = run_phases(vae, x)
    assert len(losses) == 2 and not any(k.startswith("d/") for k in stats)
    eps = np64(NoiseSource(7).normal(N, Z))
    h = np64(vae.E(x))
    mu, logvar = h[:, :Z], h[:, Z:]
    x_rec = np64(vae.G(torch.from_numpy(mu + np.exp(0.5 * logvar) * eps).float()))
    llike = (0.5 * (((np64(x) - x_rec) / s) ** 2).sum(1)).mean()
    kl = (0.5 * (mu**2 + np.exp(logvar) - 1 - logvar)).sum(1).mean()
    assert float(losses[0].detach()) == pytest.approx(kl + llike, rel=1e-5)
    assert float(losses[1].detach()) == pytest.approx(llike, rel=1e-5)


# ----------------------------------------------------------------------------- training and resume
class InterruptAt(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if pl_module.g_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_vaegan_resumes_bitwise() -> None:
    """Three optimizers, the eps and z_p draws, BatchNorm statistics and the decoder's EMA: an
    interrupted and resumed run ends with the uninterrupted run's weights."""
    args = [*TOY, "model.ema.decay=0.5", "steps=4", "log.interpolate=false"]
    full = run(*args, "out=full")
    assert full.status == "completed" and full.summary["steps_done"] == 4
    part = run(*args, "out=part", extra_callbacks=[InterruptAt(2)])
    assert part.summary["steps_done"] == 2
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.summary["steps_done"] == 4
    assert any(k.startswith("G_ema.") for k in weights(full.run_dir))
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


def test_trains_with_the_shared_penalty_spectral_norm_and_another_loss() -> None:
    result = run(*TOY, "model.penalty.name=gp", "model.sn_d=true", "model.loss=hinge", "steps=2", "out=gp")
    assert result.status == "completed" and result.summary["steps_done"] == 2
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    penalties = [float(r["d/penalty"]) for r in rows if r.get("d/penalty")]
    assert len(penalties) == 2 and all(math.isfinite(p) and p >= 0 for p in penalties)


def test_tiny_image_run_whose_encoder_serves_probe_and_invert(mnist_root: Path) -> None:
    """The experiment trains on images; the probe metric reads mu(x) and G(mu(x)), and inversion
    starts from mu(x)."""
    from gan_lightning.checkpoint import load_model
    from gan_lightning.evaluate import evaluate_checkpoint
    from gan_lightning.inversion import invert_images

    data = [f"data.data_dir={mnist_root}", "data.download=false", "metrics.names=[]", "log.neighbours=false"]
    result = run("exp=vaegan_fashion", *data, "log.interpolate=false", "steps=2", "out=img")
    assert result.status == "completed" and result.summary["steps_done"] == 2
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    values = evaluate_checkpoint(ckpt, metrics=["probe"], n=20)["values"]
    model = load_model(ckpt).eval()
    images, _ = build_datamodule(model.cfg).split(train=False)
    x = images.double() / 127.5 - 1
    with torch.no_grad():
        mu = model.E(x.float())[:, : model.z_dim]
        expected = float((((model.G(mu).double() - x) / 2) ** 2).mean())
    assert values["probe/recon_mse"] == pytest.approx(expected, rel=1e-5)
    assert 0 <= values["probe/accuracy"] <= 1
    inverted = invert_images(model, images[:8].float() / 255, steps=0)
    assert torch.allclose(inverted.z, mu[:8], atol=1e-6)


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["model.gamma=-1"], "model.gamma"),
        (["model.pixel_std=0"], "model.pixel_std"),
        (["model.adversarial=false", "model.penalty.name=gp"], "model.penalty.name"),
        (["model.adversarial=false", "model.sn_d=true"], "model.sn_d"),
        (["model.e_norm=instance"], "model.e_norm"),
        (["model.loss=energy"], "model.loss"),
        (["perf.fast=true"], "perf.fast"),
        (["model.penalty.name=gp", "nets.d_norm=batch"], "nets.d_norm"),
        (["model.penalty.name=gp", "model.penalty.every=4"], "model.penalty.every"),
        (["nets.d_minibatch=bogus"], "nets.d_minibatch"),
    ],
)
def test_bad_config_is_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'"):
        load_config([*TOY, *args])

"""Inference models (BiGAN, ALI, AAE) and the linear probe of their codes, against the papers'
definitions written out here in float64 and against closed forms."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch import Tensor

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.metrics.evaluator import Evaluator
from gan_lightning.metrics.logistic import fit_logistic
from gan_lightning.metrics.probe import linear_probe
from gan_lightning.models import build_model
from gan_lightning.models.noise import NoiseSource
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights

TOY = [*TINY, "exp=gmm_ring", "model.z_dim=3", "data.batch_size=16"]


def data_args(root: Path) -> list[str]:
    return [
        "exp=aae_fashion",
        "data=fashion_mnist",
        f"data.data_dir={root}",
        "data.download=false",
        "metrics.names=[]",
        "log.neighbours=false",
        "log.interpolate=false",
        "nets.mlp_hidden=16",
    ]


def toy_model(*args: str) -> Any:
    cfg = load_config([*TOY, *args])
    model = build_model(cfg, build_datamodule(cfg).info)
    model.noise = NoiseSource(7)
    return model


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


def log_sigmoid(v: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -v)


# the losses as their papers define them, D's and G's, of raw outputs on real r and generated f
D_LOSS = {
    "nonsaturating": lambda r, f: -log_sigmoid(r).mean() - log_sigmoid(-f).mean(),  # -log D(x) - log(1 - D(G(z)))
    "wasserstein": lambda r, f: f.mean() - r.mean(),
    "least_squares": lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(),
}


def np64(t: Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ----------------------------------------------------------------------------- BiGAN / ALI
@pytest.mark.parametrize("loss", sorted(D_LOSS))
def test_bigan_losses_label_real_pairs_1_and_generated_pairs_0_and_flip_for_g_and_e(loss: str) -> None:
    """D: real pairs (x, E(x)) labelled 1, generated pairs (G(z), z) labelled 0; G and E minimise
    the same loss with the labels flipped (Donahue et al. 2017, section 3.4)."""
    torch.manual_seed(0)  # the nets' initial weights: a D whose outputs on real and generated pairs differ
    model = toy_model("model=bigan", f"model.loss={loss}", "nets.init=default")
    losses = capture_losses(model)
    x = torch.randn(16, 2) + 3.0
    model.critic_step(x, torch.full((16,), -1), None)
    model.generator_step(x, None)
    replay = NoiseSource(7)  # the same draws: z of the D step, then z of the G step
    z_d, z_g = replay.normal(16, 3), replay.normal(16, 3)

    def d(xs: Tensor, zs: Tensor) -> np.ndarray:
        return np64(model.D(torch.cat([xs.flatten(1), zs], 1)))

    real = d(x, model.E(x))
    d_ref = D_LOSS[loss](real, d(model.G(z_d), z_d))
    g_ref = D_LOSS[loss](d(model.G(z_g), z_g), real)  # flipped: generated pairs as real, real ones as generated
    assert float(losses[0]) == pytest.approx(d_ref, rel=1e-5, abs=1e-6)
    assert float(losses[1]) == pytest.approx(g_ref, rel=1e-5, abs=1e-6)
    unflipped = D_LOSS[loss](real, d(model.G(z_g), z_g))
    assert abs(float(losses[1]) - unflipped) > 1e-3  # the test tells the flipped loss from the plain one


def test_gradients_reach_e_in_the_g_step_and_not_in_the_d_step() -> None:
    model = toy_model("model=bigan")
    losses = capture_losses(model)
    x = torch.randn(16, 2)
    model.critic_step(x, torch.full((16,), -1), None)
    model.generator_step(x, None)

    def grad_norm(net: torch.nn.Module) -> float:
        return sum(float(p.grad.abs().sum()) for p in net.parameters() if p.grad is not None)

    losses[0].backward()  # the D step's loss
    assert grad_norm(model.D) > 0 and grad_norm(model.E) == 0 and grad_norm(model.G) == 0
    model.zero_grad(set_to_none=True)
    losses[1].backward()  # the G/E step's loss
    assert grad_norm(model.E) > 0 and grad_norm(model.G) > 0 and grad_norm(model.D) == 0
    opt_g, opt_d = model.configure_optimizers()[0]
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    assert ids(opt_g) == {id(p) for p in [*model.G.parameters(), *model.E.parameters()]}
    assert ids(opt_d) == {id(p) for p in model.D.parameters()}


def test_ali_reparameterisation_has_the_encoders_mean_and_variance() -> None:
    """z = mu + sigma * eps: mean mu, variance sigma^2, and the gradient reaches mu and log sigma."""
    model = toy_model("model=ali", "model.z_dim=2")
    mu, sigma = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    params = torch.cat([mu, sigma.log()]).requires_grad_(True)
    n = 40000

    class Fixed(torch.nn.Module):  # E(x) = (mu, log sigma) for every x
        def forward(self, x: Tensor) -> Tensor:
            return params.expand(len(x), 4)

    model.E = Fixed()
    z = model.infer(torch.zeros(n, 2))
    assert z.shape == (n, 2)
    assert torch.allclose(z.mean(0), mu, atol=float(4 * sigma.max() / math.sqrt(n)))
    assert torch.allclose(z.var(0), sigma**2, rtol=0.04)
    z.sum().backward()
    assert params.grad is not None and torch.allclose(params.grad[:2], torch.full((2,), float(n)))
    eps = (z.detach() - mu) / sigma  # d z / d log sigma = sigma * eps
    assert torch.allclose(params.grad[2:], (sigma * eps).sum(0), rtol=1e-4)
    assert torch.equal(model.encode(torch.zeros(3, 2)), mu.expand(3, 2))  # the code is the mean


# ----------------------------------------------------------------------------- AAE
def test_mixture_prior_samples_have_the_designed_means() -> None:
    """10 equal components on a circle of radius r in the first two dims, std s each (the training
    draws and ``draw_z``, which sampling and the metrics use)."""
    k, r, s = 10, 10.0, 0.5
    model = toy_model("model=aae", "model.prior=mixture", f"model.radius={r}", f"model.component_std={s}")
    designed = np.array([[r * math.cos(2 * math.pi * i / k), r * math.sin(2 * math.pi * i / k), 0.0] for i in range(k)])
    for z in (model.prior_sample(20000), model.draw_z(20000, torch.Generator().manual_seed(1))):
        z = np64(z)
        nearest = ((z[:, None, :] - designed[None]) ** 2).sum(-1).argmin(1)
        counts = np.bincount(nearest, minlength=k)
        assert np.all(np.abs(counts / len(z) - 1 / k) < 0.012)
        for i in range(k):
            part = z[nearest == i]
            assert np.allclose(part.mean(0), designed[i], atol=4 * s / math.sqrt(len(part)))
            assert np.allclose(part.std(0), s, rtol=0.08)
    gaussian = np64(toy_model("model=aae").prior_sample(20000))
    assert np.allclose(gaussian.mean(0), 0, atol=0.04) and np.allclose(np.cov(gaussian.T), np.eye(3), atol=0.05)


def test_aae_phases_update_only_their_nets_and_d_labels_prior_samples_real() -> None:
    model = toy_model("model=aae")
    opt_ae, opt_d, opt_e = model.configure_optimizers()[0]
    x, y = torch.randn(16, 2), torch.full((16,), -1)

    def snapshot() -> dict[str, list[Tensor]]:
        return {n: [p.detach().clone() for p in getattr(model, n).parameters()] for n in ("E", "G", "D")}

    def changed(before: dict[str, list[Tensor]]) -> set[str]:
        now = snapshot()
        return {n for n in before if any(not torch.equal(a, b) for a, b in zip(before[n], now[n]))}

    plain_steps(model)
    before = snapshot()
    expected = float(((np64(model.G(model.E(x))) - np64(x)) ** 2).mean())  # ||G(E(x)) - x||^2 per element
    recon = model.reconstruction_step(x, y, opt_ae)["loss/recon"]
    assert float(recon) == pytest.approx(expected, rel=1e-5) and changed(before) == {"E", "G"}
    # the regularisation phase: D's step, then E's
    losses = capture_losses(model)
    model.noise = NoiseSource(3)
    model.critic_step(x, opt_d)
    model.encoder_step(x, opt_e)
    prior, codes = NoiseSource(3).normal(16, 3), model.E(x)
    assert float(losses[0]) == pytest.approx(
        D_LOSS["nonsaturating"](np64(model.D(prior)), np64(model.D(codes))), rel=1e-5
    )
    assert float(losses[1]) == pytest.approx(float(-log_sigmoid(np64(model.D(codes))).mean()), rel=1e-5)
    for i, nets in ((0, {"D"}), (1, {"E"})):
        plain_steps(model)
        before = snapshot()
        (model.critic_step if i == 0 else model.encoder_step)(x, (opt_d, opt_e)[i])
        assert changed(before) == nets


# ----------------------------------------------------------------------------- the probe
def test_probe_accuracy_matches_closed_forms() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (4000,), generator=g)
    # linearly separable codes: every test code is classified right
    separable = torch.nn.functional.one_hot(labels, 10).double() * 3 + 0.3 * torch.randn(4000, 10, generator=g)
    assert linear_probe(separable[:2000], labels[:2000], separable[2000:], labels[2000:]) == 1.0
    # codes independent of the labels: chance, 1/10
    noise = torch.randn(4000, 8, generator=g)
    assert linear_probe(noise[:2000], labels[:2000], noise[2000:], labels[2000:]) == pytest.approx(0.1, abs=0.025)
    # two classes N(-mu, 1) and N(mu, 1) in one dimension: the Bayes accuracy Phi(mu)
    mu, n = 1.0, 20000
    y = torch.randint(0, 2, (2 * n,), generator=g)
    codes = (2 * y - 1).double()[:, None] * mu + torch.randn(2 * n, 1, generator=g, dtype=torch.float64)
    bayes = 0.5 * (1 + math.erf(mu / math.sqrt(2)))
    assert linear_probe(codes[:n], y[:n], codes[n:], y[n:]) == pytest.approx(bayes, abs=0.01)


def test_fit_logistic_meets_the_optimality_conditions_and_fit_boundary_is_binary_logistic() -> None:
    """The one L-BFGS fit behind the probe and the directions' boundaries: its (W, b) zero the gradient
    of sum_i s_i CE + l2/2 ||W||^2, written out in numpy float64; fit_boundary's hyperplane is the
    optimum of the binary objective sum_i s_i softplus(-y_i (w.x_i + b)) + l2/2 |w|^2 (scipy's BFGS)."""
    from scipy.optimize import minimize

    from gan_lightning.directions import fit_boundary

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.integers(0, 3, 300)
    x[:, 0] += y  # informative, not separable
    s = rng.uniform(0.5, 1.5, 300) / 300
    w, b = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 0.1, sample_weight=torch.from_numpy(s))
    logits = x @ w.numpy() + b.numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = s[:, None] * (p - np.eye(3)[y])
    assert np.abs(x.T @ r + 0.1 * w.numpy()).max() < 1e-7 and np.abs(r.sum(0)).max() < 1e-7

    positive = x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=300) > 1.2  # a minority class: balanced weights
    sign = np.where(positive, 1.0, -1.0)
    weight = np.where(positive, 0.5 / positive.sum(), 0.5 / (~positive).sum())

    def objective(v: np.ndarray) -> float:
        return float((weight * np.logaddexp(0, -sign * (x @ v[:3] + v[3]))).sum() + 0.5e-2 / 2 * v[:3] @ v[:3])

    v = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    boundary = fit_boundary(torch.from_numpy(x), torch.from_numpy(positive), l2=0.5e-2)
    norm = np.linalg.norm(v[:3])
    assert np.allclose(boundary.normal.numpy(), v[:3] / norm, atol=1e-5)
    assert abs(boundary.offset - v[3] / norm) < 1e-5


def test_an_encoder_refuses_a_trunk_that_couples_the_batch() -> None:
    from omegaconf import OmegaConf

    from gan_lightning.nets import build_discriminator
    from gan_lightning.nets.encoder import build_encoder
    from gan_lightning.schema import NetsConfig

    shape, x = (1, 8, 8), torch.randn(4, 1, 8, 8)
    style = OmegaConf.structured(NetsConfig(d="style", d_width=4))
    trunk = build_discriminator(style, shape, "none").eval()
    with torch.no_grad():  # why: its minibatch stddev makes a sample's features depend on the others
        assert not torch.allclose(trunk.features(x)[:2], trunk.features(x[:2]))
    with pytest.raises(ConfigError, match=r"bad value for 'nets\.d'.*rest of its batch.*nets\.d=dcgan"):
        build_encoder(style, shape, 3, "none")
    e = build_encoder(OmegaConf.structured(NetsConfig(d="dcgan", d_width=4)), shape, 3, "none").eval()
    with torch.no_grad():
        torch.testing.assert_close(e(x)[:2], e(x[:2]))


def test_probe_metric_of_a_trained_aae_and_refusal_for_models_without_encoder(mnist_root: Path) -> None:
    from gan_lightning.checkpoint import load_model
    from gan_lightning.evaluate import evaluate_checkpoint

    # the supervised AAE (its decoder also reads the one-hot label) with an EMA of the decoder
    result = run(*data_args(mnist_root), "steps=3", "model.supervised=true", "model.ema.decay=0.5", "out=aae")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    values = evaluate_checkpoint(ckpt, metrics=["probe"], n=20)["values"]
    assert set(values) == {"probe/accuracy", "probe/recon_mse", "raw/probe/accuracy", "raw/probe/recon_mse"}
    assert 0 <= values["probe/accuracy"] <= 1 and values["probe/accuracy"] == values["raw/probe/accuracy"]
    # the reconstruction error recomputed plainly: the EMA decoder and the raw one on (E(x), y), [0, 1] scale
    model = load_model(ckpt).eval()
    images, labels = build_datamodule(model.cfg).split(train=False)
    x = images.double() / 127.5 - 1
    with torch.no_grad():
        codes = model.E(x.float())
        # the EMA decoder as sampled: its BatchNorm statistics its own (standing statistics)
        for key, net in (("probe/recon_mse", model.generator_for_sampling()), ("raw/probe/recon_mse", model.G)):
            expected = float((((net(codes, labels).double() - x) / 2) ** 2).mean())
            assert values[key] == pytest.approx(expected, rel=1e-5)
    gan_cfg = load_config([*TINY, "exp=dcgan", *data_args(mnist_root)[1:]])
    evaluator = Evaluator(["probe"], build_datamodule(gan_cfg).info)
    with pytest.raises(ConfigError, match="has none"):
        evaluator.check_model(build_model(gan_cfg, build_datamodule(gan_cfg).info))


# ----------------------------------------------------------------------------- training and resume
@pytest.mark.parametrize(
    "args",
    [
        ["model=bigan", "model.penalty.name=gp", "model.loss=wasserstein", "model.n_critic=2"],
        ["model=ali", "model.sn_d=true", "model.ema.decay=0.9"],
    ],
)
def test_bigan_and_ali_train_a_few_steps(args: list[str], mnist_root: Path) -> None:
    """(The AAE trains in the probe and resume tests.)"""
    result = run(*data_args(mnist_root), *args, "steps=2", "out=r")
    assert result.status == "completed" and result.summary["steps_done"] == 2


class InterruptAt(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if pl_module.g_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_aae_resumes_bitwise(mnist_root: Path) -> None:
    """Three optimizers, the mixture prior's draws and BatchNorm statistics: an interrupted and
    resumed run ends with the uninterrupted run's weights."""
    args = [*data_args(mnist_root), "model.prior=mixture", "model.z_dim=4", "steps=4"]
    full = run(*args, "out=full")
    part = run(*args, "out=part", extra_callbacks=[InterruptAt(2)])
    assert part.summary["steps_done"] == 2
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.summary["steps_done"] == 4
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["model=bigan", "model.loss=minimax"], "model.loss"),
        # the flipped-label objective: flat for hinge once the margins hold; no paper for the asymmetric f-divergences
        (["model=bigan", "model.loss=hinge"], "model.loss"),
        (["model=ali", "model.loss=fgan_kl"], "model.loss"),
        (["model=ali", "model.e_norm=instance"], "model.e_norm"),
        (["model=aae", "model.prior=uniform"], "model.prior"),
        (["model=aae", "model.prior=mixture", "model.z_dim=1"], "model.z_dim"),
        (["model=aae", "model.supervised=true"], "model.supervised"),  # toy data has no labels
        (["model=aae", "model.loss=energy"], "model.loss"),
        (["model=aae", "perf.fast=true"], "perf.fast"),
        (["model=bigan", "nets.d=style"], "nets.d"),  # E's trunk: its minibatch stddev couples the codes
        (["model=ali", "nets.d=style"], "nets.d"),
        (["model=aae", "nets.d=style"], "nets.d"),
        (["model=aae", "model.penalty.name=r1", "model.penalty.every=4"], "model.penalty.every"),  # not lazy
    ],
)
def test_bad_config_is_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'"):
        load_config([*TOY, *args])


def test_the_joint_critics_z_trunk_and_top_keep_their_documented_sizes_under_mlp_d_keys() -> None:
    """The z-trunk is nets.mlp_layers x nets.mlp_hidden and the joint part one hidden layer of nets.mlp_hidden,
    whatever the MLP critic's own nets.mlp_d_* keys say (those size an x-trunk that is nets.d=mlp)."""
    from torch import nn

    from gan_lightning.nets.encoder import build_joint_critic

    sizes = ["nets.mlp_hidden=32", "nets.mlp_layers=2", "nets.mlp_d_hidden=8", "nets.mlp_d_layers=4"]
    nets = load_config(["exp=gmm_ring", *sizes, "nets.mlp_maxout=5"]).nets
    critic = build_joint_critic(nets, (2,), 3, "none")

    def widths(m: nn.Module) -> list[int]:
        return [layer.out_features for layer in m.modules() if isinstance(layer, nn.Linear)]

    assert widths(critic.x_trunk)[:4] == [8 * 5] * 4  # nets.d=mlp: the x-trunk is the maxout MLP critic as asked
    assert widths(critic.z_trunk)[:2] == [32, 32] and len(widths(critic.z_trunk)) == 2  # plain units
    assert widths(critic.top) == [32, 1]  # one hidden layer and the logit head

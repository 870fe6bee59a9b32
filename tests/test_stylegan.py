"""StyleGAN on the shared loop: modulated convolution against a per-sample-weight reference in
float64, demodulation's unit variance, equalised learning rate, truncation, style mixing read off
hooks, the path-length term against an explicit Jacobian, lazy regularisation by counting, a tiny
run with a bitwise-equal resume and the sample / style-mix commands."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.cli import main
from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.gan import GAN
from gan_lightning.models.noise import NoiseSource
from gan_lightning.models.stylegan import StyleGAN, crossover, path_lengths
from gan_lightning.nets.style import EqualConv2d, EqualLinear, MappingNetwork, ModulatedConv2d, StyleGenerator
from gan_lightning.penalties import Penalty
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights
from tests.test_resume import SignalAt

# an 8x8 StyleGAN: widths 8 (TINY), z = w of 8, 2 mapping layers, 4 style inputs
STYLE = ["exp=stylegan_fashion", "data=synthetic", "data.image_size=8", "data.n=64", "model.z_dim=8"]
STYLE += ["log.neighbours=false", "metrics.names=[]"]


def tiny(*args: str) -> StyleGAN:
    cfg = load_config([*TINY, *STYLE, *args])
    model = build_model(cfg, build_datamodule(cfg).info)
    assert isinstance(model, StyleGAN)
    return model


# ---------------------------------------------------------------------- layers
def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 32, 3, w_dim=16)
    with torch.no_grad():
        conv.affine.weight.mul_(3.0)  # styles far from 1: without demodulation the variance follows them
    x, w = torch.randn(16, 64, 12, 12), torch.randn(16, 16)
    with torch.no_grad():
        var = conv(x, w)[:, :, 1:-1, 1:-1].square().mean((0, 2, 3))  # interior pixels (zero padding at borders)
        conv.demodulate = False
        var_plain = conv(x, w)[:, :, 1:-1, 1:-1].square().mean((0, 2, 3))
    assert abs(float(var.mean()) - 1.0) < 0.03
    assert float((var - 1.0).abs().max()) < 0.2  # every output channel
    assert float(var_plain.mean()) > 3.0  # the check can fail: unnormalised styles scale the output


def test_equalised_lr_applies_the_he_constant_to_the_stored_weights_at_run_time() -> None:
    torch.manual_seed(0)
    lin, conv = EqualLinear(10, 4).double(), EqualConv2d(3, 5, 3).double()
    with torch.no_grad():  # changed after construction: the constant is applied at run time, not baked in
        lin.weight.mul_(3.0)
        lin.bias.fill_(0.25)
        conv.weight.mul_(-2.0)
        conv.bias.fill_(0.5)
    x = torch.randn(6, 10, dtype=torch.float64)
    torch.testing.assert_close(lin.effective_weight(), lin.weight * math.sqrt(2 / 10))
    torch.testing.assert_close(lin(x), x @ (lin.weight * math.sqrt(2 / 10)).T + 0.25)
    img = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    assert conv.bias is not None
    expected = F.conv2d(img, conv.weight * math.sqrt(2 / 27), conv.bias, padding=1)
    torch.testing.assert_close(conv(img), expected)
    # the mapping net's lr multiplier 0.01: stored ~ N(0, 100^2), effective ~ N(0, 2 / fan_in)
    layer = MappingNetwork(64, 64, 1).layers[0]
    assert isinstance(layer, EqualLinear)
    torch.testing.assert_close(layer.effective_weight(), layer.weight * 0.01 * math.sqrt(2 / 64))
    assert abs(float(layer.weight.detach().std()) / 100 - 1) < 0.05
    assert abs(float(layer.effective_weight().detach().std()) / math.sqrt(2 / 64) - 1) < 0.05
    # no torch Linear/Conv2d in the style nets: nets.init (N(0, 0.02), orthogonal) cannot rescale them
    model = tiny("nets.init=dcgan")
    plain = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    assert not any(isinstance(m, plain) for net in (model.G, model.D) for m in net.modules())


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_grouped_conv_with_per_sample_weights(demodulate: bool) -> None:
    """Karras et al. 2020, eq. 1-3 written out: per-sample weights s_i w_oik, demodulated by
    sqrt(sum_ik (s_i w_oik)^2 + eps), applied as one grouped convolution, in float64."""
    torch.manual_seed(1)
    n, cin, cout, k, w_dim = 3, 5, 4, 3, 6
    conv = ModulatedConv2d(cin, cout, k, w_dim, demodulate=demodulate).double()
    with torch.no_grad():
        conv.affine.bias.normal_()
    x, w = torch.randn(n, cin, 9, 9, dtype=torch.float64), torch.randn(n, w_dim, dtype=torch.float64)
    a = conv.affine
    s = w @ (a.weight / math.sqrt(w_dim)).T + a.bias  # the affine A, equalised (gain 1)
    weights_n = conv.weight[None] / math.sqrt(cin * k * k) * s[:, None, :, None, None]  # (n, out, in, k, k)
    if demodulate:
        weights_n = weights_n / (weights_n.square().sum((2, 3, 4), keepdim=True) + 1e-8).sqrt()
    expected = F.conv2d(x.reshape(1, n * cin, 9, 9), weights_n.reshape(n * cout, cin, k, k), padding=1, groups=n)
    torch.testing.assert_close(conv(x, w), expected.reshape(n, cout, 9, 9), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- truncation and mixing
def test_truncation_psi_0_gives_w_avg_and_psi_1_is_the_identity() -> None:
    model = tiny()
    g = model.generator_for_sampling()
    assert isinstance(g, StyleGenerator) and g is model.G_ema
    with torch.no_grad():
        g.w_avg.copy_(torch.randn(g.w_dim))
        w = g.mapping(torch.randn(5, g.z_dim))
    assert torch.equal(g.truncate(w, 0.0), g.w_avg.expand(5, -1))
    assert torch.equal(g.truncate(w, 1.0), w)
    w64, avg64 = w.double(), g.w_avg.double()
    torch.testing.assert_close(g.truncate(w, 0.7).double(), avg64 + 0.7 * (w64 - avg64), rtol=1e-6, atol=1e-6)
    # through the sampling hook (``sample --truncation``): every z gives G(w_avg) at psi = 0
    g.eval()
    at_zero = model.sample(4, torch.Generator().manual_seed(0), truncation=0.0)
    assert not g.training  # the sampling net is left in the mode it had
    with torch.no_grad():
        centre = g.synthesis(g.broadcast(g.w_avg[None]))
    torch.testing.assert_close(at_zero, centre.expand(4, -1, -1, -1))
    plain = model.sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(model.sample(4, torch.Generator().manual_seed(0), truncation=1.0), plain)
    assert not torch.allclose(plain[0], plain[1])
    toy = build_model(cfg := load_config([*TINY, "exp=gmm_ring"]), build_datamodule(cfg).info)
    with pytest.raises(ConfigError, match="--truncation"):
        toy.sample(2, truncation=0.5)


def test_style_mixing_feeds_w2_from_the_crossover_layer_on() -> None:
    model = tiny("model.mixing=1.0")
    model.noise = NoiseSource(0)
    g = model.G
    got: dict[str, Tensor] = {}
    hooks = [g.mapping.register_forward_hook(lambda m, a, out: got.__setitem__("w", out))]
    modules = [*g.layers, *g.to_rgb]
    names = [f"layer{i}" for i in range(len(g.layers))] + [f"rgb{b}" for b in range(len(g.to_rgb))]
    for name, module in zip(names, modules):
        hooks.append(module.register_forward_pre_hook(lambda m, a, name=name: got.__setitem__(name, a[1])))
    n = 64
    fake = model.make_fake(n)
    for h in hooks:
        h.remove()
    w1, w2 = got["w"][:n], got["w"][n:]
    # style input j feeds conv layer j; toRGB b shares the w of layer 2b+1; the last toRGB has its own
    received = [got[f"layer{j}"] for j in range(len(g.layers))] + [got[f"rgb{g.steps}"]]
    for b in range(g.steps):
        assert torch.equal(got[f"rgb{b}"], got[f"layer{2 * b + 1}"])
    assert len(received) == g.num_ws == 4
    cuts = []
    for i in range(n):
        from_w2 = [bool(torch.equal(r[i], w2[i])) for r in received]
        from_w1 = [bool(torch.equal(r[i], w1[i])) for r in received]
        cut = from_w2.index(True)
        assert from_w2 == [j >= cut for j in range(g.num_ws)] and from_w1 == [j < cut for j in range(g.num_ws)]
        cuts.append(cut)
    assert set(cuts) == {1, 2, 3}  # mixing 1: every sample mixes, at every possible crossover
    assert torch.equal(fake.codes[0], torch.stack(received, 1)) and fake.codes[1] is fake.x
    assert not g.w_avg.any()  # make_fake leaves w_avg alone: the G step moves it (g_terms)
    # without mixing every layer takes w1; with 0.9, 90% of the samples mix, crossovers uniform
    u = torch.rand(70000, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crossover(u, 8, 0.0), torch.full((70000,), 8))
    counts = torch.bincount(crossover(u, 8, 0.9), minlength=9).double() / 70000
    assert counts[0] == 0 and abs(float(counts[8]) - 0.1) < 0.005
    torch.testing.assert_close(counts[1:8], torch.full((7,), 0.9 / 7, dtype=torch.float64), atol=0.005, rtol=0)


def test_path_length_term_matches_an_explicit_jacobian_in_float64() -> None:
    model = tiny().double()
    g = model.G.eval()  # eval: fixed noise, so the images are a function of the styles alone
    torch.manual_seed(2)
    ws = (g.broadcast(g.mapping(torch.randn(3, g.z_dim, dtype=torch.float64))) + 0.1).detach()
    ws = (ws + 0.3 * torch.randn_like(ws)).requires_grad_(True)  # a different w per layer
    x = g.synthesis(ws)
    y = torch.randn_like(x)
    lengths = path_lengths(x, ws, y)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: g.synthesis(v[None])[0], ws[i].detach())
        jty = (jac * y[i][..., None, None]).sum((0, 1, 2))  # J^T y: (num_ws, w_dim)
        torch.testing.assert_close(lengths[i], jty.square().sum(1).mean().sqrt(), rtol=1e-10, atol=0)
    # the penalty: y ~ N(0, I) / sqrt(HW) from the model's noise, a <- a + 0.01 (mean - a) first
    model.noise = NoiseSource(7)
    model.pl_mean.fill_(0.5)
    penalty, got = model.path_length_penalty(x, ws)
    expected = path_lengths(x, ws, NoiseSource(7).normal(*x.shape).double() / 8.0)
    a = 0.5 + 0.01 * (expected.mean() - 0.5)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(model.pl_mean, a.detach())
    torch.testing.assert_close(penalty, (expected - a).square().mean())
    (grad,) = torch.autograd.grad(penalty, g.layers[0].conv.weight)  # differentiable: it trains G
    assert grad.abs().sum() > 0


# ---------------------------------------------------------------------- lazy regularisation
def test_lazy_penalty_applies_on_every_kth_d_step_with_weight_times_k() -> None:
    cfg = load_config([*TINY, "exp=gmm_ring", "model.penalty.name=r1", "model.penalty.weight=0.5"])
    assert "d_steps" not in build_model(cfg, build_datamodule(cfg).info).state_dict()  # every=1: no new state
    cfg = load_config(
        [*TINY, "exp=gmm_ring", "model.penalty.name=r1", "model.penalty.weight=0.5", "model.penalty.every=3"]
    )
    model = build_model(cfg, build_datamodule(cfg).info)
    assert isinstance(model, GAN)
    model.noise = NoiseSource(0)
    calls: list[int] = []
    step = 0

    def constant(critic, real, fake, rand) -> Tensor:  # 2.0, through D so the loss backpropagates
        calls.append(step)
        return 2.0 + 0.0 * critic(real).sum()

    model.penalty = Penalty(constant, per_sample=True)
    model.backward_step = lambda opt, loss: None  # type: ignore[method-assign]
    real = torch.randn(8, 2)
    for step in range(10):
        stats = model.critic_step(real, torch.zeros(8, dtype=torch.long), None)
        extra = float(stats["loss/d"] - stats["d/adv"])
        assert extra == pytest.approx(0.5 * 3 * 2.0 if step % 3 == 0 else 0.0)
        assert ("d/penalty" in stats) == (step % 3 == 0)
    assert calls == [0, 3, 6, 9] and int(model.d_steps) == 10
    assert "d_steps" in model.state_dict()  # in the checkpoint: a resume continues the cycle


# ---------------------------------------------------------------------- training, resume, commands
def test_tiny_run_resumes_bitwise_and_the_sample_and_style_mix_commands_work(tmp_path: Path) -> None:
    # R1 every 3 D steps: the interruption after 4 steps falls inside a cycle (a reset counter would
    # apply R1 at step 4); path length every 2 G steps
    args = [*STYLE, "steps=8", "model.penalty.every=3", "model.pl_every=2", "log.every=1"]
    full = run(*args, "out=full")
    part = run(*args, "out=part", extra_callbacks=[SignalAt(4)])
    assert part.summary["steps_done"] == 4
    resumed = run(*args, "out=part", "resume=auto")
    assert full.status == resumed.status == "completed" and resumed.summary["steps_done"] == 8
    a, b = weights(full.run_dir), weights(resumed.run_dir)
    assert {"d_steps", "pl_mean", "G.w_avg", "G_ema.w_avg"} <= a.keys()
    assert_bitwise_equal(a, b)
    assert int(a["d_steps"]) == 8 and float(a["pl_mean"]) > 0 and bool(a["G.w_avg"].abs().sum() > 0)
    lines = (full.run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert [r["step"] for r in rows if r.get("d/penalty")] == ["1", "4", "7"]  # D steps 0, 3, 6
    assert [r["step"] for r in rows if r.get("g/path_length")] == ["1", "3", "5", "7"]  # G steps 0, 2, 4, 6

    ckpt = str(full.run_dir / "checkpoints" / "last.ckpt")
    assert main(["sample", ckpt, "--n", "5", "--out", "t.npy", "--truncation", "0"]) == 0
    x = np.load("t.npy")
    assert x.shape == (5, 1, 8, 8) and x.dtype == np.float32 and np.ptp(x, axis=0).max() < 1e-6
    assert main(["style-mix", ckpt, "--out", "mix.png", "--rows", "2", "--cols", "3"]) == 0
    from PIL import Image

    # 8x8 tiles enlarged to 64 px, 2 px padding: 4 columns (A, 3 B's), 1 + 3 ranges x 2 rows
    assert Image.open("mix.png").size == (4 * 66 + 2, 7 * 66 + 2)


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "args, key",
    [
        (["nets.g=dcgan"], "nets.g"),
        (["nets.style_norm=batch"], "nets.style_norm"),
        (["nets.style_mapping_layers=0"], "nets.style_mapping_layers"),
        (["model.mixing=1.5"], "model.mixing"),
        (["model.pl_every=0"], "model.pl_every"),
        (["model.penalty.every=0"], "model.penalty.every"),
        (["model.sn_g=true"], "model.sn_g"),
        (["model.sn_d=true"], "model.sn_d"),  # spectral norm finds no torch layer in the style critic
        (["model.penalty.name=none", "model.penalty.every=4"], "model.penalty.every"),  # nothing to apply lazily
        (["nets.d_minibatch=stddev"], "nets.d_minibatch"),  # the style critic has its own minibatch stddev
    ],
)
def test_bad_config_is_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'"):
        load_config([*TINY, *STYLE, *args])


def test_lazy_penalty_refuses_the_fast_path_and_sizes_follow_the_constant() -> None:
    with pytest.raises(ConfigError, match=r"bad value for 'model\.penalty\.every'.*perf\.fast"):
        load_config([*TINY, "exp=gmm_ring", "model.penalty.name=r1", "model.penalty.every=4", "perf.fast=true"])
    with pytest.raises(ConfigError, match=r"bad value for 'data.image_size'.*4\*2\^k or 7\*2\^k"):
        tiny("data.image_size=20")
    model = tiny("data.image_size=28", "nets.style_norm=adain")  # Fashion-MNIST's own size: a 7x7 constant
    assert model.G.const.shape[1:] == (7, 7) and model.G.eval()(torch.randn(2, 8)).shape == (2, 1, 28, 28)
    assert model.D(torch.randn(2, 1, 28, 28)).shape == (2,)


# ---------------------------------------------------------------------- the style nets in other models
OTHER = [*TINY, "exp=dcgan", "data=synthetic", "data.image_size=8", "log.neighbours=false", "metrics.names=[]"]


@pytest.mark.parametrize(
    "args",
    [
        ["model=gan"],
        ["model=dcgan"],
        ["model=dcgan", "perf.fast=true"],
        ["model=wgan_gp"],
        ["model=cgan"],
        ["model=bigan"],
        ["model=ali"],
        ["model=aae"],
    ],
)
def test_models_that_do_not_feed_the_noise_inputs_refuse_the_style_generator(args: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"bad value for 'nets\.g': 'style' draws noise inputs.*model\.name=stylegan"):
        load_config([*OTHER, "nets.g=style", *args])


def test_the_style_generator_in_training_mode_needs_the_models_draw() -> None:
    g = tiny().G
    z = torch.randn(2, 8)
    with pytest.raises(RuntimeError, match="draw"):  # the global RNG would break per-rank noise
        g(z)
    assert g.synthesis(g.broadcast(g.mapping(z)), NoiseSource(0).normal).shape == (2, 1, 8, 8)
    assert g.eval()(z).shape == (2, 1, 8, 8)  # eval: the fixed noise images


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["nets.d=style", "model.sn_d=true"], "model.sn_d"),
        (["model=sngan", "nets.d=style"], "model.sn_d"),  # sngan's paper default sn_d
        (["nets.style_norm=adain"], "nets.style_norm"),  # read by the style generator only
        (["nets.style_mapping_layers=2"], "nets.style_mapping_layers"),
    ],
)
def test_settings_the_nets_would_ignore_are_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'.*(nothing|ignored)"):
        load_config([*OTHER, *args])


def test_w_avg_moves_once_per_g_iteration_from_the_g_steps_batch() -> None:
    model = tiny("model.n_critic=2")
    model.noise = NoiseSource(0)
    model.backward_step = lambda opt, loss: None  # type: ignore[method-assign]
    g = model.G
    updates: list[Tensor] = []
    track = g.track_w_avg
    g.track_w_avg = lambda w, decay: (updates.append(w), track(w, decay))  # type: ignore[method-assign]
    mapped: list[Tensor] = []
    hook = g.mapping.register_forward_hook(lambda m, a, out: mapped.append(out.detach()))
    real = torch.randn(4, 1, 8, 8)
    for _ in range(2):  # one G iteration at n_critic=2: two D steps, one G step
        model.critic_step(real, torch.zeros(4, dtype=torch.long), None)
    model.generator_step(real, None)
    hook.remove()
    assert len(mapped) == 3 and len(updates) == 1  # G ran three times; w_avg moved once
    # w_avg <- 0.995 w_avg + 0.005 mean(w) of the G step's first w's, from 0
    torch.testing.assert_close(g.w_avg, 0.005 * mapped[2][:4].mean(0))


def _global_mean_on_rank(rank: int, init: str, out: str) -> None:
    from gan_lightning.distributed import global_mean, sum_over_ranks_

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        rows = 2 + 3 * rank  # ranks with different batch sizes
        values = torch.arange(rows * 3, dtype=torch.float32).view(rows, 3) * (rank + 1) + 10 * rank
        result = {"mean": global_mean(values), "sum": sum_over_ranks_(torch.tensor([rank + 1.0]))}
        torch.save(result, f"{out}/{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_running_means_follow_the_global_batch_under_ddp(tmp_path: Path) -> None:
    """pl_mean and w_avg (and ADA's sums) are reduced over the ranks: two gloo processes with
    different batches both get the mean of all the rows, weighted by rows."""
    torch.multiprocessing.start_processes(
        _global_mean_on_rank, (f"file://{tmp_path}/store", str(tmp_path)), nprocs=2, start_method="fork"
    )
    parts = [torch.arange(r * 3, dtype=torch.float64).view(r, 3) * (k + 1) + 10 * k for k, r in enumerate((2, 5))]
    expected = torch.cat(parts).mean(0)
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(got["mean"].double(), expected)
        assert float(got["sum"]) == 3.0
    assert not torch.allclose(parts[0].mean(0), expected) and not torch.allclose(parts[1].mean(0), expected)

"""Progressive GAN on the shared loop: equalised learning rate and pixel norm against their
definitions in float64, the stage schedule against a hand table, the fade-in's ends and middle,
real images pooled like numpy block means, the drift term, a tiny run through a fade-in with a
bitwise-equal resume from the middle of it, sampling at the data's size, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.checkpoint import load_model
from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.models import build_model
from gan_lightning.models.gan import Judged
from gan_lightning.models.noise import NoiseSource
from gan_lightning.models.progan import ProGAN, stage_at
from gan_lightning.nets.progan import ProGANDiscriminator, ProGANGenerator, real_at
from gan_lightning.nets.style import EqualConv2d, EqualLinear, pixel_norm
from gan_lightning.registry import ConfigError
from tests.conftest import TINY
from tests.helpers import assert_bitwise_equal, run, weights
from tests.test_resume import SignalAt

# 16x16 synthetic images (levels 4, 8, 16), widths 8 (TINY), z of 8
PRO = ["exp=progan_fashion", "data=synthetic", "data.image_size=16", "data.n=64", "model.z_dim=8"]
PRO += ["log.neighbours=false", "metrics.names=[]", "log.interpolate=false"]


def tiny(*args: str) -> ProGAN:
    cfg = load_config([*TINY, *PRO, *args])
    model = build_model(cfg, build_datamodule(cfg).info)
    assert isinstance(model, ProGAN)
    return model


# ---------------------------------------------------------------------- layers
def test_equalised_lr_scales_every_layer_by_the_he_constant_at_run_time() -> None:
    model = tiny().double()
    g, d = model.G, model.D
    assert isinstance(g, ProGANGenerator) and isinstance(d, ProGANDiscriminator)
    # no torch Linear/Conv2d anywhere: every weight goes through the run-time constant
    plain = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    assert not any(isinstance(m, plain) for net in (g, d) for m in net.modules())
    torch.manual_seed(0)
    conv, rgb = g.blocks[0].conv1, g.to_rgb[2]
    assert isinstance(conv, EqualConv2d) and isinstance(rgb, EqualConv2d) and conv.bias is not None
    with torch.no_grad():  # changed after construction: the constant is applied at run time, not baked in
        conv.weight.mul_(-3.0)
        conv.bias.fill_(0.5)
    x = torch.randn(2, conv.weight.shape[1], 6, 6, dtype=torch.float64)
    fan_in = conv.weight.shape[1] * 9
    expected = F.conv2d(x, conv.weight.detach() * math.sqrt(2.0 / fan_in), conv.bias.detach(), padding=1)
    torch.testing.assert_close(conv(x), expected, rtol=1e-12, atol=1e-12)
    # toRGB is linear: gain 1, c = 1 / sqrt(fan_in)
    h = torch.randn(2, rgb.weight.shape[1], 4, 4, dtype=torch.float64)
    torch.testing.assert_close(rgb(h), F.conv2d(h, rgb.weight / math.sqrt(rgb.weight.shape[1]), rgb.bias))
    # the dense 4x4 layer on z: fan-in z_dim
    assert isinstance(g.dense, EqualLinear)
    torch.testing.assert_close(g.dense.effective_weight(), g.dense.weight * math.sqrt(2.0 / 8))
    # the gradient reaching a stored weight is c times the effective weight's: Adam's steps are
    # per-parameter normalised, so every layer learns at the same speed (sec. 4.1)
    w = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, w * math.sqrt(2.0 / fan_in), padding=1).square().sum().backward()
    conv(x).sub(conv.bias[None, :, None, None]).square().sum().backward()
    assert conv.weight.grad is not None and w.grad is not None
    torch.testing.assert_close(conv.weight.grad, w.grad, rtol=1e-12, atol=1e-12)
    # stored weights are N(0, 1), whatever the fan-in
    big = ProGANGenerator(load_config([*PRO, "nets.g_width=64"]).nets, (1, 16, 16), 8)
    assert abs(float(big.blocks[0].conv1.weight.detach().std()) - 1) < 0.02


def test_pixel_norm_gives_every_pixel_unit_mean_square_features() -> None:
    x = 5.0 * torch.randn(3, 7, 5, 5, dtype=torch.float64) + 2.0
    y = pixel_norm(x)
    expected = x.numpy() / np.sqrt((x.numpy() ** 2).mean(1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(y.square().mean(1), torch.ones(3, 5, 5, dtype=torch.float64))
    # inside G: after every block of convs, each pixel's feature vector has mean square 1
    g = tiny().G
    seen: list[Tensor] = []
    hooks = [b.register_forward_hook(lambda m, a, out: seen.append(out.detach())) for b in g.blocks]
    g(torch.randn(4, 8))
    for h in hooks:
        h.remove()
    assert len(seen) == 2
    for out in seen:
        torch.testing.assert_close(out.square().mean(1), torch.ones_like(out[:, 0]), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- schedule and fade-in
def test_stage_schedule_against_a_hand_table() -> None:
    # phases of 10 G steps: 4x4 | fade 8 | 8 | fade 16 | 16 | fade 32 | 32 | 32 from then on
    table = {
        0: (0, 1.0), 9: (0, 1.0), 10: (1, 0.0), 13: (1, 0.3), 19: (1, 0.9), 20: (1, 1.0), 29: (1, 1.0),
        30: (2, 0.0), 35: (2, 0.5), 40: (2, 1.0), 50: (3, 0.0), 57: (3, 0.7), 59: (3, 0.9), 60: (3, 1.0),
        69: (3, 1.0), 70: (3, 1.0), 10_000: (3, 1.0),
    }  # fmt: skip
    for step, (level, alpha) in table.items():
        got = stage_at(step, 10, 3)
        assert got[0] == level and got[1] == pytest.approx(alpha, abs=1e-12), step
    assert [stage_at(s, 1, 1) for s in range(4)] == [(0, 1.0), (1, 0.0), (1, 1.0), (1, 1.0)]
    model = tiny("model.stage_steps=4")
    model.g_step = 6  # the step being trained: fade-in of 8x8, alpha 2/4; sampling shows step 5's
    assert model.stage == (1, 0.5) and model.sampling_stage == (1, 0.25)


def test_fade_in_ends_are_the_old_and_new_paths_exactly_and_the_middle_mixes_them() -> None:
    model = tiny().double()
    g, d = model.G, model.D
    z = torch.randn(5, 8, dtype=torch.float64)
    for level in (1, 2):
        old, new = F.interpolate(g(z, level - 1, 1.0), scale_factor=2, mode="nearest"), g(z, level, 1.0)
        assert new.shape[-1] == 4 * 2**level
        assert torch.equal(g(z, level, 0.0), old)
        expected = 0.7 * old + 0.3 * new
        torch.testing.assert_close(g(z, level, 0.3), expected, rtol=1e-12, atol=1e-12)
        # alpha 1 is the new path alone: the old toRGB no longer matters
        with torch.no_grad():
            g.to_rgb[level - 1].weight.add_(1.0)
        assert torch.equal(g(z, level, 1.0), new)
        # D mirrors it: at alpha 0 the new fromRGB and block are bypassed (D on the pooled input)
        x = torch.randn(6, 1, 4 * 2**level, 4 * 2**level, dtype=torch.float64)
        assert torch.equal(d(x, 0.0), d(F.avg_pool2d(x, 2), 1.0))
        assert not torch.equal(d(x, 0.5), d(x, 0.0))
    # gradients: at alpha 0 the new D layers get exactly zero gradient, at 1 the old ones none
    x = torch.randn(6, 1, 16, 16, dtype=torch.float64)
    d.zero_grad(set_to_none=True)
    d(x, 0.0).sum().backward()
    assert d.from_rgb[2].weight.grad is not None and not d.from_rgb[2].weight.grad.any()
    assert d.from_rgb[1].weight.grad is not None and d.from_rgb[1].weight.grad.any()
    d.zero_grad(set_to_none=True)
    d(x, 1.0).sum().backward()
    assert d.from_rgb[1].weight.grad is None and d.from_rgb[2].weight.grad is not None


def test_real_images_are_block_means_at_the_stage_and_blended_while_fading_in() -> None:
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    a = x.numpy()

    def block_mean(k: int) -> np.ndarray:  # k x k block means, repeated back to k x k blocks when asked
        return a.reshape(3, 1, 16 // k, k, 16 // k, k).mean((3, 5))

    np.testing.assert_allclose(real_at(x, 0, 1.0).numpy(), block_mean(4), rtol=1e-12)
    np.testing.assert_allclose(real_at(x, 1, 1.0).numpy(), block_mean(2), rtol=1e-12)
    assert torch.equal(real_at(x, 2, 1.0), x)
    old = np.repeat(np.repeat(block_mean(2), 2, 2), 2, 3)  # 8x8 means shown at 16x16
    np.testing.assert_allclose(real_at(x, 2, 0.25).numpy(), 0.75 * old + 0.25 * a, rtol=1e-12)
    np.testing.assert_allclose(real_at(x, 2, 0.0).numpy(), old, rtol=1e-12)


def test_drift_term_is_epsilon_times_the_mean_square_of_d_on_real_data() -> None:
    model = tiny("model.stage_steps=2")
    model.noise = NoiseSource(0)
    out = torch.tensor([0.5, -2.0, 3.0, 0.0])
    judged = Judged(torch.zeros(4, 1, 4, 4), None, out)
    terms = model.d_terms(judged, judged)
    assert float(terms.loss) == pytest.approx(0.001 * (0.25 + 4.0 + 9.0) / 4, rel=1e-6)
    # in a D step mid-fade (g_step 3: 8x8, alpha 0.5): loss = adversarial + drift + 10 * penalty,
    # the drift from D on the real images at the stage
    model.g_step = 3
    model.backward_step = lambda opt, loss: None  # type: ignore[method-assign]
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    stats = model.critic_step(real, torch.zeros(8, dtype=torch.long), None)
    with torch.no_grad():
        d_real = model.D(real_at(real, 1, 0.5), 0.5).double()
    drift = float(d_real.square().mean())
    assert float(stats["d/drift"]) == pytest.approx(drift, rel=1e-5)
    total = float(stats["d/adv"]) + 0.001 * drift + 10 * float(stats["d/penalty"])
    assert float(stats["loss/d"]) == pytest.approx(total, rel=1e-5, abs=1e-6)
    assert float(stats["d/real"]) == pytest.approx(float(d_real.mean()), rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------------- training and resume
class Snapshots(L.Callback):
    """Copies of two G weights at the start and after every G step."""

    def __init__(self) -> None:
        self.block: list[Tensor] = []
        self.rgb4: list[Tensor] = []

    def grab(self, model: ProGAN) -> None:
        self.block.append(model.G.blocks[0].conv1.weight.detach().clone())
        self.rgb4.append(model.G.to_rgb[0].weight.detach().clone())

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.grab(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.grab(pl_module)


def test_tiny_run_grows_through_a_fade_in_and_resumes_bitwise_from_its_middle(tmp_path: Path) -> None:
    # 8x8 data, 2 G steps per phase: steps 0-1 at 4x4, 2-3 fade 8x8 in (alpha 0, 0.5), 4-5 at 8x8
    args = [*PRO, "data.image_size=8", "model.stage_steps=2", "steps=6"]
    snaps = Snapshots()
    full = run(*args, "out=full", extra_callbacks=[snaps])
    part = run(*args, "out=part", extra_callbacks=[SignalAt(3)])  # stops after alpha 0: resumes at 0.5
    assert part.summary["steps_done"] == 3
    resumed = run(*args, "out=part", "resume=auto")
    assert full.status == resumed.status == "completed" and resumed.summary["steps_done"] == 6
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    for result in (full, resumed):
        lines = (result.run_dir / "metrics.csv").read_text().splitlines()
        rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
        stage = [(r["step"], float(r["progan/res"]), float(r["progan/alpha"])) for r in rows if r.get("progan/res")]
        expected = [("1", 4, 1), ("2", 4, 1), ("3", 8, 0), ("4", 8, 0.5), ("5", 8, 1), ("6", 8, 1)]
        assert stage[-3:] == expected[-3:] and (result is resumed or stage == expected)
    # the 8x8 block learns from the fade-in on (at alpha 0 its gradient is exactly 0: unchanged);
    # the 4x4 toRGB learns until the fade-in ends, then gets no gradient
    changed = lambda seq, i: not torch.equal(seq[i], seq[i - 1])  # noqa: E731  (step i changed it)
    assert [changed(snaps.block, i) for i in range(1, 7)] == [False, False, False, True, True, True]
    assert [changed(snaps.rgb4, i) for i in range(1, 7)] == [True, True, True, True, False, False]
    # sampling, from a checkpoint too: images at the data's size
    model = load_model(full.run_dir / "checkpoints" / "last.ckpt")
    assert model.sampling_stage == (1, 1.0)
    assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)


def test_samples_are_the_stage_images_upsampled_to_the_data_size() -> None:
    model = tiny("model.stage_steps=5")
    # sampling shows the stage of the last trained step (g_step - 1): 16 / its resolution
    for g_step, factor in ((0, 4), (3, 4), (8, 2), (13, 2), (18, 1), (100, 1)):
        model.g_step = g_step
        x = model.sample(4, torch.Generator().manual_seed(0))
        assert x.shape == (4, 1, 16, 16)
        level, _ = model.sampling_stage
        assert 4 * 2**level * factor == 16
        blocks = max(factor, 2)  # at full size: not made of 2x2 blocks
        nearest = x[:, :, ::blocks, ::blocks].repeat_interleave(blocks, 2).repeat_interleave(blocks, 3)
        assert torch.equal(nearest, x) == (factor > 1), g_step


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "args, key",
    [
        (["data.image_size=12"], "data.image_size"),
        (["data.image_size=4"], "data.image_size"),
        (["model.stage_steps=0"], "model.stage_steps"),
        (["model.drift=-0.1"], "model.drift"),
        (["nets.g=dcgan"], "nets.g"),
        (["nets.d=style"], "nets.d"),
        (["model.sn_d=true"], "model.sn_d"),
        (["model.unroll=1", "model.penalty.name=none", "nets.d_norm=none"], "model.unroll"),
        (["model.feature_matching=true"], "model.feature_matching"),
        (["perf.fast=true"], "perf.fast"),
    ],
)
def test_bad_config_is_refused(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'"):
        load_config([*TINY, *PRO, *args])


@pytest.mark.parametrize(
    "args, key",
    [
        (["model=wgan_gp", "nets.d=progan", "model.sn_d=true"], "model.sn_d"),  # equalised layers: nothing to wrap
        (["model=dcgan", "nets.g=progan", "model.sn_g=true"], "model.sn_g"),
        (["model=wgan_gp", "nets.d=progan", "nets.d_minibatch=stddev"], "nets.d_minibatch"),  # it has its own
        (["model=aae", "nets.d=progan"], "nets.d"),  # a batch-coupled trunk is no encoder
    ],
)
def test_other_models_refuse_what_the_progan_nets_cannot_do(args: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad value for '{key}'"):
        load_config(["exp=dcgan", "data.image_size=32", *args])


def test_the_nets_refuse_what_they_cannot_grow() -> None:
    with pytest.raises(ConfigError, match=r"bad value for 'data\.image_size'"):
        load_config(["exp=progan_fashion", "data.image_size=28"])  # Fashion-MNIST's own size
    with pytest.raises(ConfigError, match=r"bad value for 'nets\.d_minibatch'"):
        tiny("nets.d_minibatch=stddev")
    g = tiny().G
    with pytest.raises(ValueError, match="alpha"):
        g(torch.randn(2, 8), 0, 0.5)  # nothing fades in at 4x4
    with pytest.raises(ValueError, match="level"):
        g(torch.randn(2, 8), 3, 1.0)

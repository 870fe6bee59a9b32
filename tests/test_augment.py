"""model.augment: DiffAugment's and ADA's ops against their definitions, gradients through them,
ADA's p rule by hand, what D sees in both steps, reruns, exact resume, perf.fast, bad configs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gan_lightning.augment import (
    ADA,
    ADA_OPS,
    DIFFAUGMENT_POLICIES,
    Colour,
    Cutout,
    DiffAugment,
    Dist,
    Translation,
    brightness,
    contrast,
    contrast_about_grey,
    cutout,
    draw_and_apply,
    rot90,
    saturation,
    translate,
    xflip,
)
from gan_lightning.config import load_config
from gan_lightning.fast import WARMUP_STEPS
from gan_lightning.models.noise import NoiseSource
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights
from tests.test_resume import SignalAt

IMAGES = ["exp=dcgan", "data=synthetic", "data.image_size=16", "data.n=256", "metrics.names=[]"]
QUIET = ["log.interpolate=false", "log.neighbours=false"]


class FixedNoise:
    """Stands in for the noise source: returns the given columns (the first n rows)."""

    def __init__(self, u: torch.Tensor, g: torch.Tensor | None = None):
        self.u, self.g = u, g

    def uniform(self, n: int, k: int) -> torch.Tensor:
        assert self.u.shape[1] == k
        return self.u[:n]

    def normal(self, n: int, k: int) -> torch.Tensor:
        assert self.g is not None and self.g.shape[1] == k
        return self.g[:n]


def model_cfg(**kw: Any) -> Any:
    base = {"augment": "ada", "augment_policy": "color,translation,cutout", "ada_target": 0.6}
    return OmegaConf.create({**base, "ada_interval": 4, "ada_kimg": 500.0, "ada_p_init": 0.0, **kw})


# ----------------------------------------------------------------------------- ops vs definitions
def test_translate_moves_each_pixel_by_the_shift_and_zero_fills() -> None:
    x = torch.randn(4, 2, 7, 9, dtype=torch.float64)
    tx, ty = torch.tensor([2, -3, 0, 9]), torch.tensor([1, 0, -6, 0])
    out = translate(x, tx, ty).numpy()
    ref = np.zeros_like(out)
    xn = x.numpy()
    for n in range(4):
        for i in range(7):
            for j in range(9):
                si, sj = i - int(ty[n]), j - int(tx[n])
                if 0 <= si < 7 and 0 <= sj < 9:
                    ref[n, :, i, j] = xn[n, :, si, sj]
    assert np.array_equal(out, ref)
    assert (out[3] == 0).all()  # shifted by the whole width: nothing left
    dot = torch.zeros(1, 1, 7, 9)
    dot[0, 0, 3, 4] = 1.0
    moved = translate(dot, torch.tensor([2]), torch.tensor([-1]))
    assert moved[0, 0, 2, 6] == 1.0 and moved.sum() == 1.0


def test_translation_draws_each_shift_up_to_an_eighth_of_the_size_uniformly() -> None:
    dot = torch.zeros(9, 1, 32, 32)
    dot[:, 0, 16, 16] = 1.0
    u = ((torch.arange(9) + 0.5) / 9).repeat(2, 1).T  # the 9 equal parts of [0, 1) on both axes
    out = Translation(1 / 8)(dot, u, u[:, :0])
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert (rows - 16).tolist() == list(range(-4, 5)) and (cols - 16).tolist() == list(range(-4, 5))


def test_cutout_zeros_the_clipped_square_and_nothing_else() -> None:
    x = torch.rand(3, 2, 8, 8) + 1.0  # no zeros of its own
    cy, cx = torch.tensor([4, 0, 7]), torch.tensor([4, 0, 2])
    out = cutout(x, cy, cx, (4, 4))
    for n in range(3):
        hole = np.zeros((8, 8), bool)
        top, left = int(cy[n]) - 2, int(cx[n]) - 2
        hole[max(top, 0) : top + 4, max(left, 0) : left + 4] = True
        assert np.array_equal((out[n] == 0).numpy(), np.broadcast_to(hole, (2, 8, 8)))
        assert torch.equal(out[n][:, ~torch.from_numpy(hole)], x[n][:, ~torch.from_numpy(hole)])
    assert [int((out[n, 0] == 0).sum()) for n in range(3)] == [16, 4, 12]  # whole, corner, bottom edge
    half = Cutout(0.5)(x, torch.tensor([[0.5, 0.5]]).repeat(3, 1), x[:, 0, 0, :0])  # centre (4, 4), 4x4
    assert torch.equal(half, cutout(x, torch.full((3,), 4), torch.full((3,), 4), (4, 4)))


def test_flip_and_rotations_are_exact_permutations() -> None:
    x = torch.randn(4, 3, 5, 5)
    flipped = xflip(x, torch.tensor([True, False, True, False]))
    assert torch.equal(flipped[0], torch.from_numpy(x[0].numpy()[:, :, ::-1].copy())) and torch.equal(flipped[1], x[1])
    k = torch.tensor([0, 1, 2, 3])
    rotated = rot90(x, k)
    for n in range(4):
        assert torch.equal(rotated[n], torch.from_numpy(np.rot90(x[n].numpy(), int(k[n]), axes=(1, 2)).copy()))


def test_colour_ops_against_their_formulas_in_float64() -> None:
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    v = torch.tensor([0.3, -0.2, 1.7], dtype=torch.float64)
    xn, vn = x.numpy(), v.numpy()[:, None, None, None]
    assert np.allclose(brightness(x, v).numpy(), xn + vn, rtol=0, atol=1e-15)
    m_c = xn.mean(axis=1, keepdims=True)
    assert np.allclose(saturation(x, v).numpy(), m_c + (xn - m_c) * vn, rtol=0, atol=1e-14)
    m_all = xn.mean(axis=(1, 2, 3), keepdims=True)  # DiffAugment: about each image's mean
    assert np.allclose(contrast(x, v).numpy(), m_all + (xn - m_all) * vn, rtol=0, atol=1e-14)
    assert np.allclose(contrast_about_grey(x, v).numpy(), xn * vn, rtol=0, atol=0)  # ADA: about 0, mid-grey
    grey = x[:, :1]
    assert torch.equal(saturation(grey, v), grey)  # one channel: nothing to saturate


def test_parameter_draws_match_the_papers_distributions() -> None:
    zero = torch.zeros(2, 1, 2, 2)
    u = torch.tensor([[0.0], [0.75]])
    b, s, c = DIFFAUGMENT_POLICIES["color"]  # DiffAugment: b ~ U[-0.5, 0.5), s ~ U[0, 2), c ~ U[0.5, 1.5)
    assert b(zero, u, u[:, :0])[:, 0, 0, 0].tolist() == [-0.5, 0.25]
    ones = torch.ones(2, 3, 2, 2)
    ones[:, 0] = 3.0  # channel mean 5/3: saturation's factor shows in channel 0's deviation
    assert torch.allclose((s(ones, u, u[:, :0]) - 5 / 3)[:, 0, 0, 0], torch.tensor([0.0, 1.5]) * (4 / 3))
    assert contrast is c.fn and c.dist(u[:, 0]).tolist() == [0.5, 1.25]
    g = torch.tensor([1.0, -2.0])  # ADA: b ~ N(0, 0.2^2), c ~ lnN(0, (0.5 ln 2)^2), s ~ lnN(0, (ln 2)^2)
    ada = {op.fn.__name__: op.dist for op in ADA_OPS if isinstance(op, Colour)}
    assert torch.allclose(ada["brightness"](g), torch.tensor([0.2, -0.4]))
    assert torch.allclose(ada["contrast_about_grey"](g), torch.tensor([math.sqrt(2), 0.5]))
    # ADA's contrast op scales the [-1, 1] values about 0 (its colour matrix), not about the image mean
    (c_ada,) = [op for op in ADA_OPS if isinstance(op, Colour) and op.fn is contrast_about_grey]
    x = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25  # all > 0: mean != 0
    scaled = c_ada(x, torch.zeros(2, 0), g[:, None])
    assert torch.allclose(scaled, x * torch.tensor([math.sqrt(2), 0.5]).view(2, 1, 1, 1))
    assert torch.allclose(ada["saturation"](g), torch.tensor([2.0, 0.25]))


def test_ada_gates_each_op_per_sample_with_probability_p() -> None:
    x = torch.randn(3, 1, 4, 4)
    op = Colour(brightness, Dist("uniform", 1.0))
    u = torch.tensor([[0.2, 0.9], [0.7, 0.9], [0.49, 0.3]])  # gate column, then the op's draw
    out = draw_and_apply([op], x, FixedNoise(u), gated=True, p=torch.tensor(0.5))
    assert torch.equal(out[0], x[0] + 0.9) and torch.equal(out[1], x[1]) and torch.equal(out[2], x[2] + 0.3)


# ----------------------------------------------------------------------------- gradients, identity
def test_gradients_flow_through_every_op_to_the_input() -> None:
    n = 2
    x = torch.randn(n, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    diff = DiffAugment(model_cfg(augment="diffaugment"), None)
    u = torch.rand(n, sum(op.uniforms for op in diff.ops), generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: diff(t, FixedNoise(u)), (x,), fast_mode=True)
    ada = ADA(model_cfg(ada_p_init=1.0), 0.0)  # p = 1: every op on every sample
    n_u = len(ADA_OPS) + sum(op.uniforms for op in ADA_OPS)
    ua = torch.rand(n, n_u, generator=gen, dtype=torch.float64)
    ga = torch.randn(n, sum(op.normals for op in ADA_OPS), generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ada(t, FixedNoise(ua, ga)), (x,), fast_mode=True)
    # translation and cutout move or drop pixels: d sum(out) / dx is 1 on the pixels that land
    # in the output uncut and 0 on the others
    moves = DiffAugment(model_cfg(augment="diffaugment", augment_policy="translation,cutout"), None)
    u2 = torch.tensor([[0.99, 0.0, 0.5, 0.5]] * n, dtype=torch.float64)  # shift (+1, -1) of 8, hole rows/cols 2-5
    (grad,) = torch.autograd.grad(moves(x, FixedNoise(u2)).sum(), x)
    kept = moves(torch.ones_like(x), FixedNoise(u2))
    assert set(grad.unique().tolist()) == {0.0, 1.0} and grad.sum() == kept.sum() == n * 3 * (7 * 7 - 4 * 4)


def test_ada_at_p_zero_is_the_identity_and_still_draws() -> None:
    x = torch.randn(5, 3, 8, 8)
    ada = ADA(model_cfg(), 0.0)
    src, ref = NoiseSource(3), NoiseSource(3)
    assert torch.equal(ada(x, src), x)
    ref.uniform(5, len(ADA_OPS) + sum(op.uniforms for op in ADA_OPS)), ref.normal(5, 3)
    assert torch.equal(src.uniform(2, 2), ref.uniform(2, 2))  # the stream moved as at any p
    ada.p.fill_(1.0)
    assert not torch.equal(ada(x, src), x)


def test_p_follows_the_overfitting_heuristic_as_computed_by_hand() -> None:
    target, interval, kimg, p0 = 0.6, 2, 0.02, 0.5
    ada = ADA(model_cfg(ada_target=target, ada_interval=interval, ada_kimg=kimg, ada_p_init=p0), 0.5)
    outs = [[1.0, 2.0, -1.0, 0.4], [0.7, 0.6, 0.9, 0.2], [0.8, 0.9, 0.51, 0.6]] + [[0.9] * 4] * 5
    p, signs, images, seen = p0, [], 0, []
    for k, out in enumerate(outs, 1):
        stats = ada.observe(torch.tensor(out), n_images=4)
        signs += [1 if o > 0.5 else -1 for o in out]  # least squares: the boundary is 0.5
        images += 4
        if k % interval == 0:  # r_t over the interval, p += sign(r_t - target) * images / (kimg * 1000)
            rt = sum(signs) / len(signs)
            p = min(1.0, max(0.0, p + math.copysign(1, rt - target) * images / (kimg * 1000)))
            signs, images = [], 0
            assert float(stats["aug/rt"]) == pytest.approx(rt)
        seen.append(float(stats["aug/p"]))
        assert float(ada.p) == pytest.approx(p, abs=1e-6)
    assert seen[:4] == pytest.approx([0.5, 0.1, 0.1, 0.5], abs=1e-6) and seen[-1] == 1.0  # clamped at 1


# ----------------------------------------------------------------------------- in the loop
class SeenByD(L.Callback):
    """Wraps the model's ``discriminate``: records every batch D sees and whether it is G's step."""

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, bool, bool]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        inner = pl_module.discriminate

        def discriminate(x: torch.Tensor, y: Any) -> Any:
            g_step = not any(p.requires_grad for p in pl_module.D.parameters())
            self.seen.append((x.detach().clone(), g_step, x.requires_grad))
            return inner(x, y)

        pl_module.discriminate = discriminate


@pytest.mark.parametrize("model", [["model.pack=2", "model.n_critic=2"], ["model=cgan", "nets.d_norm=none"]])
def test_d_sees_augmented_reals_and_fakes_in_both_steps(model: list[str]) -> None:
    """With cutout alone, every sample of every batch D sees has a zeroed square; the synthetic
    data (k / 127.5 - 1 for integers k) and G's tanh outputs have no exact zeros of their own."""
    seen = SeenByD()
    args = [*IMAGES, *QUIET, *model, "steps=1", "model.augment=diffaugment", "model.augment_policy=cutout"]
    run(*args, extra_callbacks=[seen])
    n_critic = 2 if "model.n_critic=2" in model else 1
    assert [g for _, g, _ in seen.seen] == [False] * 2 * n_critic + [True]  # real + fake per D step, fake in G's
    for x, g_step, grad in seen.seen:  # 16x16 images: at least a 4x4 corner of the 8x8 square
        assert x.shape[1:] == (1, 16, 16) and ((x == 0).flatten(1).sum(1) >= 16).all()
        assert grad == g_step  # G's step: D's input carries G's gradient, through the augmentation


ADA_RUN = [*IMAGES, "model.augment=ada", "model.ada_p_init=0.3", "model.ada_interval=3", "model.ada_kimg=0.2"]


def test_ada_rerun_on_the_fast_path_and_a_resume_are_bitwise_equal() -> None:
    """The same run three ways: eagerly, on perf.fast (its taped noise: the same draws in the same
    order), and interrupted mid-interval then resumed; weights, BatchNorm statistics and ADA's
    buffers end bit for bit the same."""
    args = [*ADA_RUN, *QUIET, f"steps={WARMUP_STEPS + 3}", "log.every=1"]
    full = run(*args, "out=full")
    fast = run(*args, "perf.fast=true", "out=fast")
    assert_bitwise_equal(weights(full.run_dir), weights(fast.run_dir))
    part = run(*args, "out=part", extra_callbacks=[SignalAt(4)])  # mid-interval: 1 of 3 D steps counted
    assert part.summary["status"] == "interrupted"
    assert int(torch.load(Path("part/checkpoints/last.ckpt"), weights_only=True)["state_dict"]["augment.d_steps"]) == 1
    resumed = run(*args, "out=part", "resume=auto")
    assert resumed.status == "completed" and resumed.summary["steps_done"] == WARMUP_STEPS + 3
    w = weights(full.run_dir)
    assert_bitwise_equal(w, weights(resumed.run_dir))
    assert float(w["augment.p"]) != pytest.approx(0.3)  # p moved
    rows = (full.run_dir / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("aug/p")
    assert len({r.split(",")[col] for r in rows[1:]}) > 1


def test_fast_path_with_diffaugment_and_a_penalty_trains_bitwise_like_the_default_path() -> None:
    common = [*IMAGES, *QUIET, "model.augment=diffaugment", "model.penalty.name=gp", "nets.d_norm=none"]
    eager = run(*common, f"steps={WARMUP_STEPS + 2}", "out=eager")
    fast = run(*common, f"steps={WARMUP_STEPS + 2}", "perf.fast=true", "out=fast")
    assert_bitwise_equal(weights(eager.run_dir), weights(fast.run_dir))


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["model.augment=flip"], "model.augment"),
        (["model.augment=diffaugment", "model.augment_policy=color,colour"], "model.augment_policy"),
        (["model.augment=diffaugment", "model.augment_policy=cutout,cutout"], "distinct"),
        (["model.augment=diffaugment", "model.augment_policy=''"], "model.augment_policy"),
        (["model.augment=ada", "model.ada_target=1.0"], "model.ada_target"),
        (["model.augment=ada", "model.ada_interval=0"], "model.ada_interval"),
        (["model.augment=ada", "model.ada_kimg=0"], "model.ada_kimg"),
        (["model.augment=ada", "model.ada_p_init=1.5"], "model.ada_p_init"),
        (["model=wgan_gp", "model.augment=ada"], "no fixed decision value"),
        (["model.augment=ada", "model.unroll=2"], "model.unroll"),
        (["model.augment=diffaugment", "model.feature_matching=true"], "model.feature_matching"),
    ],
)
def test_bad_augmentation_config_is_refused(args: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(["exp=dcgan", *args])


def test_augmenting_toy_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="augments images"):
        run("exp=gmm_ring", "steps=1", "model.augment=diffaugment", "metrics.names=[]")

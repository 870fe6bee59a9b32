"""Conditional models and image-to-image translation: wiring, shapes, losses and data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.translation import edge_map
from gan_lightning.models import build_model
from gan_lightning.models.translation import ImagePool
from gan_lightning.nets.translation import PatchDiscriminator, UNetGenerator, receptive_field
from gan_lightning.registry import ConfigError
from tests.conftest import write_image
from tests.helpers import run


def data_args(root) -> list[str]:
    return [f"data.data_dir={root}", "data.download=false"]


# ----------------------------------------------------------------------------- conditional
@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_cgan_critic_depends_on_the_label(mnist_root, conditioning: str) -> None:
    cfg = load_config(
        [
            "exp=cgan_mnist",
            "data=fashion_mnist",
            *data_args(mnist_root),
            f"model.conditioning={conditioning}",
            "nets.g_width=8",
            "nets.d_width=8",
        ]
    )
    model = build_model(cfg, build_datamodule(cfg).info)
    x = torch.randn(4, 1, 32, 32)
    a, b = model.critic(x, torch.tensor([0, 1, 2, 3])), model.critic(x, torch.tensor([5, 6, 7, 8]))
    assert a.shape == (4,) and not torch.allclose(a, b)
    model.G.eval()  # BatchNorm on running statistics: samples do not depend on each other
    g1, g2 = model.G(torch.zeros(2, 64), torch.tensor([0, 0])), model.G(torch.zeros(2, 64), torch.tensor([0, 9]))
    assert torch.equal(g1[0], g2[0]) and not torch.equal(g1[1], g2[1])  # the label changes the image


def test_projection_critic_is_linear_in_the_label_embedding(mnist_root) -> None:
    """D(x, y) - D(x, y') = <e_y - e_y', phi(x)> (Miyato & Koyama 2018, eq. 3)."""
    cfg = load_config(
        [
            "exp=cgan_mnist",
            "data=fashion_mnist",
            *data_args(mnist_root),
            "model.sn_d=false",
            "nets.g_width=8",
            "nets.d_width=8",
        ]
    )
    model = build_model(cfg, build_datamodule(cfg).info).eval()
    x = torch.randn(3, 1, 32, 32)
    y1, y2 = torch.tensor([1, 1, 1]), torch.tensor([4, 4, 4])
    phi = model.D.net.features(x)
    expected = (phi * (model.D.embed.weight[1] - model.D.embed.weight[4])).sum(1)
    torch.testing.assert_close(model.critic(x, y1) - model.critic(x, y2), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exp", ["cgan_mnist", "acgan_fashion", "infogan_mnist"])
def test_conditional_models_train_and_grid_one_row_per_class(exp: str, mnist_root) -> None:
    result = run(
        f"exp={exp}",
        "data=fashion_mnist",
        *data_args(mnist_root),
        "steps=3",
        "out=c",
        "log.sample_every=3",
        "log.grid=20",
        "data.image_size=28",
    )
    assert result.status == "completed"
    from PIL import Image

    w, h = Image.open(result.run_dir / "samples" / "step_0000003.png").size
    assert h > 4 * w  # 10 rows of 2 columns
    if exp != "infogan_mnist":
        assert {"cond/accuracy", "cond/intra_fid", "cond/min_class_accuracy"} <= set(result.summary["final"])


def test_acgan_auxiliary_losses_use_real_and_generated_labels(mnist_root) -> None:
    outs = []

    class Grab(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            outs.append(outputs)

    run("exp=acgan_fashion", *data_args(mnist_root), "steps=2", "out=a", "metrics.names=[]", extra_callbacks=[Grab()])
    assert {"d/aux", "g/aux", "d/real_accuracy"} <= set(outs[0])
    assert float(outs[0]["d/aux"]) > 0 and float(outs[0]["g/aux"]) > 0


def test_conditional_models_refuse_unlabelled_data() -> None:
    with pytest.raises(ConfigError, match="needs labelled data"):
        load_config(["exp=gmm_ring", "model=acgan"])


def test_infogan_codes_and_mutual_information_term(mnist_root) -> None:
    cfg = load_config(
        ["exp=infogan_mnist", "data=fashion_mnist", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8"]
    )
    model = build_model(cfg, build_datamodule(cfg).info)
    assert model.G.net[0].in_channels == 62 + 10 + 2  # z, one-hot category, continuous codes
    sweep = model.continuous_sweep(code=1, values=5, rows=2)
    assert sweep.shape == (10, 1, 28, 28)
    result = run(
        "exp=infogan_mnist", "data=fashion_mnist", *data_args(mnist_root), "steps=2", "out=i", "metrics.names=[]"
    )
    assert result.status == "completed"


def test_infogan_is_evaluated_and_sampled_from_its_whole_prior(mnist_root) -> None:
    """Metrics, sampling and standing statistics draw codes with ``draw_z``; InfoGAN appended its continuous codes
    as zeros there, so FID and recall measured one slice of what was trained (codes ~ U(-1, 1))."""
    cfg = load_config(
        ["exp=infogan_mnist", "data=fashion_mnist", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8"]
    )
    model = build_model(cfg, build_datamodule(cfg).info)
    z = model.draw_z(4000, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 62 + 2)
    cont = z[:, 62:]
    assert cont.min() >= -1 and cont.max() <= 1 and abs(cont.mean()) < 0.05 and abs(cont.var() - 1 / 3) < 0.02
    x = model.generate(z[:8], model.G, torch.arange(8) % 10)  # the one-hot category goes between z and the codes
    full = torch.cat([z[:8, :62], F.one_hot(torch.arange(8) % 10, 10).float(), z[:8, 62:]], 1)
    assert torch.equal(x, model.G(full))


def test_infogan_q_shares_ds_layers_and_the_information_term_trains_them(mnist_root) -> None:
    """Chen et al. 2016: Q shares all conv layers with D; their code (openai/InfoGAN) puts Q in D's variables and
    subtracts lambda * L_I from D's loss and G's. So the D step's loss carries L_I of its fakes, whose gradient
    reaches D's trunk and Q (it stopped at frozen features before), and Q belongs to D: D's optimizer, spectral
    norm, clipping and freezing in G's step all cover it."""
    from types import SimpleNamespace

    from gan_lightning.models.noise import NoiseSource

    args = ["exp=infogan_mnist", "data=fashion_mnist", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8"]
    cfg = load_config([*args, "model.sn_d=true"])
    model = build_model(cfg, build_datamodule(cfg).info)
    q_params = {id(p) for p in model.D.Q.parameters()}
    d_group, g_group = model.optimizer_groups()[1], model.optimizer_groups()[0]
    assert q_params <= {id(p) for p in d_group.params} and not q_params & {id(p) for p in g_group.params}
    assert any(hasattr(m, "parametrizations") for m in model.D.Q.modules())  # model.sn_d covers Q
    losses = {}
    model.backward_step = lambda opt, loss: losses.setdefault("d", loss)
    zero = lambda real, fake, real_label=1.0: 0.0 * (real.sum() + fake.sum())  # noqa: E731  (the info term alone)
    model.loss = SimpleNamespace(d_loss=zero, g_loss=model.loss.g_loss)
    model.noise = NoiseSource(0)
    stats = model.critic_step(torch.rand(8, 1, 28, 28) * 2 - 1, torch.zeros(8, dtype=torch.long), None)
    assert float(stats["d/info_cat"]) > 0 and float(losses["d"]) > 0
    trunk = [p for name, p in model.D.named_parameters() if name.startswith("trunk.")]
    assert trunk
    grads = torch.autograd.grad(losses["d"], [*trunk, *model.D.Q.parameters()], allow_unused=True)
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    with model.frozen(model.D):  # the G step: Q frozen with D
        assert not any(p.requires_grad for p in model.D.Q.parameters())


# ----------------------------------------------------------------------------- nets
def test_patchgan_output_grid_and_receptive_field() -> None:
    assert receptive_field(3) == 70 and receptive_field(1) == 16
    d = PatchDiscriminator(6, width=8, n_layers=3, norm="none")
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # pix2pix's 30x30 grid of 70x70 patches
    # measured: the input region that moves one output is 70 x 70
    x = torch.randn(1, 6, 256, 256, requires_grad=True)
    out = d(x)
    out[0, 0, 15, 15].backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero()
    assert int(rows.max() - rows.min() + 1) <= 70 and int(cols.max() - cols.min() + 1) <= 70
    assert int(rows.max() - rows.min() + 1) >= 60


def test_unet_skips_and_sizes() -> None:
    for size in (28, 32, 64):
        g = UNetGenerator(1, 3, size, width=8)
        assert g(torch.randn(2, 1, size, size)).shape == (2, 3, size, size)


# ----------------------------------------------------------------------------- losses and buffer
def test_image_pool_history_behaviour() -> None:
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first, lambda n: torch.zeros(n)), first)  # filling: returned as is
    new = torch.full((2, 1, 1, 1), 9.0)
    kept = pool.query(new, lambda n: torch.full((n,), 0.9))  # coin >= 0.5: the new images pass through
    assert torch.equal(kept, new) and len(pool.images) == 4
    swapped = pool.query(torch.full((1, 1, 1, 1), 7.0), lambda n: torch.full((n,), 0.3))  # coin < 0.5: swap
    assert swapped.item() == 1.0 and pool.images[1].item() == 7.0  # pick 0.3 * 4 -> slot 1
    assert torch.equal(ImagePool(0).query(new, lambda n: torch.zeros(n)), new)


def test_cyclegan_cycle_and_identity_terms(mnist_root) -> None:
    """With identity generators every cycle and identity term is 0, so the G loss is the
    adversarial term alone."""
    cfg = load_config(["exp=cyclegan_edges", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8"])
    model = build_model(cfg, build_datamodule(cfg).info)
    model.G_AB, model.G_BA = torch.nn.Identity(), torch.nn.Identity()
    a, b = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    cycle = (model.G_BA(model.G_AB(a)) - a).abs().mean() + (model.G_AB(model.G_BA(b)) - b).abs().mean()
    assert cycle.item() == 0
    outs = []

    class Grab(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            outs.append(outputs)

    run("exp=cyclegan_edges", *data_args(mnist_root), "steps=2", "out=cg", "metrics.names=[]", extra_callbacks=[Grab()])
    s = outs[-1]
    expected = s["g/adv"] + 10.0 * s["g/cycle"] + 0.5 * 10.0 * s["g/identity"]
    torch.testing.assert_close(s["loss/g"], expected)


@pytest.mark.parametrize("exp", ["cyclegan_edges", "discogan_edges"])
def test_cycle_noise_enters_the_cycle_terms_only(exp: str, mnist_root) -> None:
    """model.cycle_noise=s: with identity generators the cycle term is exactly d(a + s * eps_b, a) + d(b + s * eps_a, b)
    (eps from the run's noise, in that order; d the model's distance), the adversarial terms see the clean
    translations."""
    from gan_lightning.data.base import PairBatch
    from gan_lightning.models.noise import NoiseSource

    cfg = load_config(
        [f"exp={exp}", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8", "model.cycle_noise=0.5"]
    )
    info = build_datamodule(cfg).info
    model = build_model(cfg, info)
    model.G_AB, model.G_BA = torch.nn.Identity(), torch.nn.Identity()
    model.noise = NoiseSource(3)
    model.optimizers = lambda: (None, None)
    model.backward_step = lambda opt, loss: None
    model.finish_step = lambda stats: None
    shape = tuple(info.shape)
    a, b = torch.rand(1, 4, *shape) * 2 - 1, torch.rand(1, 4, *shape) * 2 - 1
    stats = model.training_step(PairBatch(a, b, torch.zeros(1, 4)), 0)
    replay = NoiseSource(3)
    eps_b, eps_a = replay.normal(4, *shape), replay.normal(4, *shape)
    expected = model.cycle_distance(a[0] + 0.5 * eps_b, a[0]) + model.cycle_distance(b[0] + 0.5 * eps_a, b[0])
    torch.testing.assert_close(stats["g/cycle"], expected)
    assert float(expected) > 0.1
    clean_adv = model.adversarial_g(model.D_B(a[0])) + model.adversarial_g(model.D_A(b[0]))
    torch.testing.assert_close(stats["g/adv"], clean_adv)
    with pytest.raises(ConfigError, match=r"model\.cycle_noise"):
        load_config([f"exp={exp}", "model.cycle_noise=-1"])


def test_cyclegan_adversarial_terms_have_the_papers_weights(mnist_root) -> None:
    """Zhu et al. 2017: G minimises E[(D(G(x)) - 1)^2] (no 1/2) beside lambda * cycle, and D's
    least-squares objective E[(D(y) - 1)^2] + E[D(G(x))^2] is divided by 2."""
    cfg = load_config(["exp=cyclegan_edges", *data_args(mnist_root), "nets.g_width=8", "nets.d_width=8"])
    model = build_model(cfg, build_datamodule(cfg).info)
    d_fake, d_real = torch.tensor([0.9, 0.1, -0.3]), torch.tensor([0.8, 1.4, 0.2])
    torch.testing.assert_close(model.adversarial_g(d_fake), (d_fake - 1).pow(2).mean())
    expected_d = 0.5 * ((d_real - 1).pow(2).mean() + d_fake.pow(2).mean())
    torch.testing.assert_close(model.adversarial_d(d_real, d_fake), expected_d)


def test_pix2pix_l1_only_switch(mnist_root) -> None:
    outs = []

    class Grab(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            outs.append(outputs)

    run(
        "exp=pix2pix_edges",
        *data_args(mnist_root),
        "steps=2",
        "out=p",
        "metrics.names=[]",
        "model.adversarial=false",
        extra_callbacks=[Grab()],
    )
    assert "loss/d" not in outs[0] and "g/adv" not in outs[0]
    torch.testing.assert_close(outs[0]["loss/g"], 100.0 * outs[0]["g/l1"])


@pytest.mark.parametrize("exp", ["pix2pix_edges", "cyclegan_edges"])
def test_translation_runs_write_grids_and_metrics(exp: str, mnist_root) -> None:
    result = run(f"exp={exp}", *data_args(mnist_root), "steps=3", "out=t", "log.sample_every=3", "metrics.n=100")
    final = result.summary["final"]
    assert {"ab/l1", "ab/fid", "ab/agreement"} <= set(final)
    if exp == "cyclegan_edges":  # both ways on true test pairs: the hidden-code check, from the l1s
        assert {"ba/l1", "ba/fid", "ba/agreement"} <= set(final)
        for d, back in (("ab", "ba"), ("ba", "ab")):
            assert 0 < final[f"{d}/round_trip_l1"] < 1
            assert final[f"{d}/hidden_code_ratio"] == pytest.approx(final[f"{back}/l1"] / final[f"{d}/round_trip_l1"])
    else:
        assert "ab/hidden_code_ratio" not in final
    assert (result.run_dir / "samples" / "step_0000003.png").is_file()
    from gan_lightning.sample import sample_data_space

    x, _ = sample_data_space(result.run_dir / "checkpoints" / "last.ckpt", 5)
    assert x.shape[0] == 5 and x.min() >= 0 and x.max() <= 1
    with pytest.raises(ConfigError, match=r"'--n'.*translates test images"):  # no more than exist
        sample_data_space(result.run_dir / "checkpoints" / "last.ckpt", 10**6)
    from gan_lightning.cli import main

    # `gan-lightning evaluate` of the last checkpoint measures what the run measured at its end
    ckpt = str(result.run_dir / "checkpoints" / "last.ckpt")
    out = result.run_dir / "evaluated.json"
    assert main(["evaluate", ckpt, "--n", "100", "--data-dir", str(mnist_root), "--out", str(out)]) == 0
    evaluated = json.loads(out.read_text())["values"]
    assert set(evaluated) == {k for k in final if k.split("/")[0] in ("ab", "ba")}
    for key, value in evaluated.items():
        assert value == pytest.approx(final[key], rel=1e-6), key
    assert main(["evaluate", ckpt, "--metrics", "fid", "--data-dir", str(mnist_root)]) == 2  # not its measure


def test_cyclegan_resume_is_exact_with_the_history_buffers(mnist_root) -> None:
    from tests.helpers import assert_bitwise_equal, weights
    from tests.test_resume import SignalAt

    args = ["exp=cyclegan_edges", *data_args(mnist_root), "steps=8", "metrics.names=[]", "model.pool_size=4"]
    full = run(*args, "out=full")
    run(*args, "out=part", extra_callbacks=[SignalAt(3)])
    resumed = run(*args, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


def test_cyclegan_resumes_exactly_from_a_checkpoint_of_the_older_layout(mnist_root) -> None:
    """Checkpoints written before the per-rank states kept the pools under the metadata's own key
    ``pools``; such a checkpoint resumes with its pools, not empty ones."""
    from tests.helpers import assert_bitwise_equal, weights
    from tests.test_resume import SignalAt

    args = ["exp=cyclegan_edges", *data_args(mnist_root), "steps=8", "metrics.names=[]", "model.pool_size=4"]
    full = run(*args, "out=full")
    part = run(*args, "out=part", extra_callbacks=[SignalAt(3)])
    path = part.run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=False)
    meta = ckpt["gan_lightning"]
    (state,) = meta.pop("rank_states")
    meta.update(state)  # the older layout: {"pools": {"a": ..., "b": ...}} beside g_step, noise, rng
    torch.save(ckpt, path)
    resumed = run(*args, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


def test_discogan_resume_is_exact(mnist_root) -> None:
    """DiscoGAN's batch-normed encoder-decoders and global Ds: running statistics included."""
    from tests.helpers import assert_bitwise_equal, weights
    from tests.test_resume import SignalAt

    args = ["exp=discogan_edges", *data_args(mnist_root), "steps=6", "metrics.names=[]", "nets.g_width=8"]
    args += ["nets.d_width=8"]
    full = run(*args, "out=full")
    run(*args, "out=part", extra_callbacks=[SignalAt(3)])
    resumed = run(*args, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))


# ----------------------------------------------------------------------------- data
def test_edge_maps_of_a_square() -> None:
    img = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    img[..., 3:9, 3:9] = 255
    e = edge_map(img)
    assert e[0, 0, 6, 6] == 0 and e[0, 0, 0, 0] == 0  # flat inside and outside
    assert e[0, 0, 3, 6] == 255 and e[0, 0, 6, 8] == 255  # the border
    assert set(e.unique().tolist()) <= {0, 255}


def test_edges_paired_and_unpaired_halves(mnist_root) -> None:
    paired = build_datamodule(load_config(["exp=pix2pix_edges", *data_args(mnist_root), "data.image_size=28"]))
    paired.prepare()
    b = paired.global_batch(0, 8)
    torch.testing.assert_close(
        ((b.a + 1) * 127.5).round().to(torch.uint8), edge_map(((b.b + 1) * 127.5).round().to(torch.uint8))
    )
    unpaired = build_datamodule(load_config(["exp=cyclegan_edges", *data_args(mnist_root)]))
    unpaired.prepare()
    images = paired.train_b
    # A's edge maps and B's images come from disjoint halves of the training set
    half_a, half_b = set(unpaired.half_a.tolist()), set(unpaired.half_b.tolist())
    assert not half_a & half_b and len(half_a | half_b) == len(images)
    assert torch.equal(unpaired.train_a, edge_map(images[unpaired.half_a]))
    assert torch.equal(unpaired.train_b, images[unpaired.half_b])
    a, bt, y = unpaired.test_pairs()
    assert torch.equal(a, edge_map(bt)) and len(y) == len(a)


def test_folder_datamodules(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA"):
        for i in range(3):
            write_image(tmp_path / "u" / split / f"{i}.png", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    small = ["data.image_size=16", "nets.patch_layers=2"]  # 3 x 2^3 > 16: a 70x70 PatchGAN does not fit
    dm = build_datamodule(load_config(["exp=cyclegan_folder", f"data.root={tmp_path / 'u'}", *small]))
    dm.prepare()
    batch = dm.global_batch(0, 4)
    assert batch.a.shape == (4, 3, 16, 16) and batch.b.shape == (4, 3, 16, 16)
    a, b, _ = dm.test_pairs()  # no testB: falls back to trainB, and says so (the measures read training images)
    assert a.shape == (3, 3, 16, 16) and b.shape == (3, 3, 16, 16)
    assert "no testB" in capsys.readouterr().err
    assert dm.test_split == {"a": "testA", "b": "trainB (no testB/: training images)"}
    from gan_lightning.metrics.translation import describe_translation_measures

    assert describe_translation_measures({}, dm)["test_images"] == dm.test_split
    side = rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)
    side[:, :20] = 0
    for i in range(2):
        write_image(tmp_path / "p" / "train" / f"{i}.jpg", side)
    args = ["exp=cyclegan_folder", "model=pix2pix", "data=paired_folder", f"data.root={tmp_path / 'p'}"]
    dm = build_datamodule(load_config([*args, *small]))
    dm.prepare()
    assert dm.train_a.float().mean() < 5 and dm.train_b.float().mean() > 50  # left half is A
    dm.test_pairs()
    assert "no test/ or val/" in capsys.readouterr().err and dm.test_split == {"ab": "train (no test/ or val/)"}
    with pytest.raises(ConfigError, match="trainA"):
        build_datamodule(load_config(["exp=cyclegan_folder", f"data.root={tmp_path / 'none'}"])).prepare()
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_config(["exp=cyclegan_folder"])


def test_unpaired_folder_flips_each_domain_independently(tmp_path) -> None:
    """data.flip on unpaired domains: A and B are different images, each flipped with probability 1/2 on its own
    (B was never flipped); paired data keeps one flip for both images of a pair."""
    left_white = np.zeros((16, 16, 3), dtype=np.uint8)
    left_white[:, :8] = 255
    for split in ("trainA", "trainB"):
        for i in range(4):
            write_image(tmp_path / "u" / split / f"{i}.png", left_white)
    cfg = ["exp=cyclegan_folder", f"data.root={tmp_path / 'u'}", "data.image_size=16", "nets.patch_layers=2"]
    dm = build_datamodule(load_config(cfg))
    dm.prepare()
    assert dm.dcfg.flip
    flipped = {"a": 0, "b": 0}
    together = 0
    for step in range(40):
        batch = dm.global_batch(step, 4)
        fa, fb = ((x[:, 0, :, 0] < 0).all(1) for x in (batch.a, batch.b))  # column 0 black: flipped
        flipped["a"] += int(fa.sum())
        flipped["b"] += int(fb.sum())
        together += int((fa == fb).sum())
    assert 55 <= flipped["a"] <= 105 and 55 <= flipped["b"] <= 105  # of 160, p = 1/2 (about 5 sd)
    assert together < 120  # independent draws agree about half the time, not always


# ----------------------------------------------------------------------------- review findings
TRANSLATION_EXPS = [
    "pix2pix_edges",
    "cyclegan_edges",
    "discogan_edges",
    "stargan_fashion",
    "simgan_fashion",
    "srgan_fashion",
]


@pytest.mark.parametrize("exp", TRANSLATION_EXPS)
def test_translation_models_apply_nets_init(exp: str) -> None:
    """nets.init was recorded in configs and ignored by every translation model (review finding)."""

    cfg = load_config([f"exp={exp}", "nets.init=dcgan"])
    dm = build_datamodule(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dm.info)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(weights.std()) - 0.02) < 0.002  # N(0, 0.02) everywhere
    assert all(m.bias is None or not m.bias.detach().any() for m in convs)
    assert load_config([f"exp={exp}"]).nets.init == "default"  # what these models' results were measured with


@pytest.mark.parametrize("exp", TRANSLATION_EXPS)
def test_translation_models_refuse_the_energy_loss(exp: str) -> None:
    """The energy loss's D term ignores the fakes; the translation models must refuse it."""
    with pytest.raises(ConfigError, match=r"model\.loss"):
        load_config([f"exp={exp}", "model.loss=energy"])


def test_simgan_refuses_a_history_too_small_to_be_used() -> None:
    with pytest.raises(ConfigError, match=r"model\.history_size"):
        load_config(["exp=simgan_fashion", "model.history_size=3", "data.batch_size=16"])


def test_stargan_translate_restores_the_generators_mode() -> None:

    cfg = load_config(["exp=stargan_fashion", "nets.g_norm=batch"])
    model = build_model(cfg, build_datamodule(cfg).info)
    for mode in (False, True):
        model.train(mode)
        model.translate(torch.zeros(2, 1, 28, 28), "image_to_edges")
        assert model.G.training is mode


# each nets.* key set to a second value that changes a net which reads it
OTHER_VALUE = {"g_width": 8, "d_width": 8, "g_norm": "none", "d_norm": "none", "resnet_blocks": 2, "patch_layers": 2}


def test_each_image_net_reads_exactly_the_nets_keys_it_declares() -> None:
    """For every registered translator and image discriminator, and every nets.* key: the net built with
    the key changed differs from the one built without exactly when the key is in its ``reads`` (the
    declaration the config check refuses ignored keys by)."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    import gan_lightning.models  # noqa: F401  (registers every model's nets)
    from gan_lightning.models.translation import IMAGE_DISCRIMINATORS, TRANSLATORS, nets_keys_read
    from gan_lightning.schema import NetsConfig

    base = {"g_width": 4, "d_width": 4, "g_norm": "instance", "d_norm": "auto", "resnet_blocks": 1, "patch_layers": 1}
    others = {"mlp_hidden": 7, "mlp_layers": 2, "attention_res": 8, "style_mapping_layers": 2, "style_norm": "adain"}
    checked = set()
    builders = ((TRANSLATORS, lambda f, n: f(n, 2, 1, 32)), (IMAGE_DISCRIMINATORS, lambda f, n: f(n, 1, 32)))
    for registry, build in builders:
        for name in registry.names():
            factory = registry[name]
            reference = repr(build(factory, OmegaConf.merge(OmegaConf.structured(NetsConfig), base)))
            for key in [*OTHER_VALUE, *others]:
                changed = {**base, key: {**OTHER_VALUE, **others}[key]}
                net = build(factory, OmegaConf.merge(OmegaConf.structured(NetsConfig), changed))
                assert (repr(net) != reference) == (key in nets_keys_read(factory)), (name, key)
            checked.add(name)
    assert {"unet", "resnet", "patchgan", "refiner", "local", "encdec", "global", "stargan"} <= checked
    assert {f.name for f in fields(NetsConfig)} >= set(OTHER_VALUE) | set(others)


def test_a_nets_key_no_chosen_net_reads_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"nets\.d_norm.*does not use it"):
        load_config(["exp=simgan_fashion", "nets.d_norm=batch"])
    with pytest.raises(ConfigError, match=r"nets\.resnet_blocks.*nets\.g=unet"):
        load_config(["exp=pix2pix_edges", "nets.resnet_blocks=3"])
    with pytest.raises(ConfigError, match=r"nets\.patch_layers"):
        load_config(["exp=srgan_fashion", "nets.patch_layers=2"])
    assert load_config(["exp=cyclegan_edges", "nets.resnet_blocks=3"]).nets.resnet_blocks == 3


def test_translation_fid_in_inception_space_hands_the_images_to_the_extractor_on_its_device() -> None:
    """The classifier path moved its inputs to the classifier's device, the Inception path did not
    (a trunk on a GPU got CPU images). A parameter on the meta device stands in for a GPU here."""
    from gan_lightning.metrics.translation import score_translation

    class Extractor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = nn.Parameter(torch.empty(1, device="meta"))
            self.seen: list[torch.device] = []

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            self.seen.append(x.device)
            return torch.rand(len(x), 3, generator=torch.Generator().manual_seed(len(self.seen))), None

    ex = Extractor()
    images = torch.rand(12, 1, 8, 8)
    scores = score_translation(images, images.flip(0), torch.zeros(12, dtype=torch.long), False, None, ex)
    assert ex.seen and all(d.type == "meta" for d in ex.seen)
    assert math.isfinite(scores["fid"])


# ----------------------------------------------------------------------------- EMA of the generators
TRANSLATION_EXPERIMENTS = {
    "pix2pix": "pix2pix_edges",
    "cyclegan": "cyclegan_edges",
    "discogan": "discogan_edges",
    "stargan": "stargan_fashion",
    "simgan": "simgan_fashion",
    "srgan": "srgan_fashion",
}


def test_every_translation_model_is_in_the_ema_tests() -> None:
    from gan_lightning.models import MODELS
    from gan_lightning.models.translation import TranslationModule

    registered = {name for name in MODELS.names() if issubclass(MODELS[name], TranslationModule)}
    assert registered == set(TRANSLATION_EXPERIMENTS)


def translator_params(model) -> set[int]:
    return {id(p) for d in model.directions for p in model.nets_for(d).parameters()}


@pytest.mark.parametrize("name", sorted(TRANSLATION_EXPERIMENTS))
def test_with_ema_every_translation_comes_from_an_average_never_from_a_trained_weight(
    name: str, mnist_root, tmp_path
) -> None:
    """model.ema.decay > 0: the nets that translate (metrics, grids, sampling) hold none of the parameters the
    G optimizer trains, and start as copies of them; without it they are the trained nets themselves."""
    from tests.conftest import data_overrides

    exp = TRANSLATION_EXPERIMENTS[name]
    common = [f"exp={exp}", *data_overrides(exp, mnist_root, tmp_path)]
    cfg = load_config([*common, "model.ema.decay=0.9"])
    model = build_model(cfg, build_datamodule(cfg).info)
    trained = {id(p) for p in model.optimizer_groups()[0].params}
    assert translator_params(model) and not translator_params(model) & trained
    for g in model.averaged:
        raw, ema = getattr(model, g).state_dict(), getattr(model, f"{g}_ema").state_dict()
        assert raw.keys() == ema.keys() and all(torch.equal(raw[k], ema[k]) for k in raw)
    plain = load_config(common)
    model = build_model(plain, build_datamodule(plain).info)
    assert model.averaged == () and translator_params(model) <= {id(p) for p in model.optimizer_groups()[0].params}


def test_translation_ema_update_is_the_lerp_after_start_and_a_copy_before(mnist_root) -> None:
    cfg = load_config(["exp=cyclegan_edges", *data_args(mnist_root), "nets.g_width=4", "nets.d_width=4"])
    cfg.model.ema.decay, cfg.model.ema.start = 0.9, 3
    model = build_model(cfg, build_datamodule(cfg).info)
    raw = [p for p in model.G_AB.parameters()]
    with torch.no_grad():
        for p in model.G_AB_ema.parameters():
            p.fill_(1.0)
    model.g_step = 2  # before start: a copy
    model.update_averages()
    assert all(torch.equal(e, p) for e, p in zip(model.G_AB_ema.parameters(), raw))
    with torch.no_grad():
        for p in model.G_AB_ema.parameters():
            p.fill_(1.0)
    model.g_step = 3
    model.update_averages()
    for e, p in zip(model.G_AB_ema.parameters(), raw):
        torch.testing.assert_close(e, 0.9 * torch.ones_like(p) + 0.1 * p)


@pytest.mark.parametrize("exp", ["cyclegan_edges", "stargan_fashion"])
def test_sample_raw_translates_with_the_trained_generator_and_default_with_the_average(
    exp: str, mnist_root, tmp_path
) -> None:
    from gan_lightning.checkpoint import load_model
    from gan_lightning.sample import sample_data_space
    from tests.conftest import data_overrides

    result = run(f"exp={exp}", *data_overrides(exp, mnist_root, tmp_path), "model.ema.decay=0.5", "steps=2", "out=e")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    averaged, _ = sample_data_space(ckpt, 6)
    raw, model = sample_data_space(ckpt, 6, raw=True)
    assert not torch.equal(averaged, raw)
    direction = model.directions[0]
    assert all(p.requires_grad for p in model.nets_for(direction).parameters())  # the trained nets translated
    assert not any(p.requires_grad for p in load_model(ckpt, "cpu").nets_for(direction).parameters())  # averages


def test_evaluate_of_a_translator_with_an_ema_also_measures_its_raw_generators(mnist_root) -> None:
    """As for z-generators: the EMA's measures under their names, the trained nets' under raw/ (what a
    translation by the trained nets scores), and --no-raw leaves them out."""
    from gan_lightning.checkpoint import load_model
    from gan_lightning.evaluate import evaluate_checkpoint
    from gan_lightning.metrics.translation import translation_metrics

    args = ("exp=cyclegan_edges", *data_args(mnist_root), "model.ema.decay=0.5", "steps=3", "out=er")
    result = run(*args, "metrics.n=60")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    values = evaluate_checkpoint(ckpt, None, 60, data_dir=str(mnist_root))["values"]
    final = result.summary["final"]
    averaged = {k: v for k, v in values.items() if not k.startswith("raw/")}
    assert averaged == pytest.approx({k: final[k] for k in averaged}, rel=1e-6)
    model = load_model(ckpt)
    model.use_raw_generators()
    dm = build_datamodule(model.cfg)
    dm.prepare()
    by_trained_nets = translation_metrics(model, dm, 60)
    assert {f"raw/{k}" for k in by_trained_nets} <= set(values)
    for key in ("ab/l1", "ba/l1", "ab/round_trip_l1"):
        assert values[f"raw/{key}"] == pytest.approx(by_trained_nets[key], rel=1e-6)
        assert values[f"raw/{key}"] != values[key]  # decay 0.5 after 3 steps: another net
    skipped = evaluate_checkpoint(ckpt, None, 60, data_dir=str(mnist_root), raw_too=False)["values"]
    assert not any(k.startswith("raw/") for k in skipped)


def test_a_diverged_translation_run_ends_diverged_not_failed(mnist_root) -> None:
    """The translation metrics had no divergence guard: NaN translations at an evaluation step reached the FID's
    eigendecomposition, which raised, so the run ended 'failed' (under DDP rank 0 crashed while the others
    waited in the broadcast)."""
    from tests.test_reliability import NanAfter

    args = ("exp=pix2pix_edges", *data_args(mnist_root), "steps=6", "metrics.every=2", "metrics.n=60", "out=nan")
    s = run(*args, extra_callbacks=[NanAfter(1)]).summary
    assert s["status"] == "diverged" and s["diverged_at"] == 2, s.get("error")

"""StarGAN (Choi et al. 2018) and the fashion_domains task: the paper's loss wiring, n_critic,
the domains' ground truth, label tiling, training, grids, metrics and exact resume."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.data.domains import domain_pairs
from gan_lightning.models import build_model
from gan_lightning.models.noise import NoiseSource
from gan_lightning.nets.stargan import LabelConditioned, StarDiscriminator, tile_label
from gan_lightning.registry import ConfigError
from tests.helpers import assert_bitwise_equal, run, weights

SMALL = ["nets.g_width=4", "nets.d_width=4", "nets.resnet_blocks=1", "model.n_critic=2", "metrics.names=[]"]


def args(root) -> list[str]:
    return ["exp=stargan_fashion", f"data.data_dir={root}", "data.download=false", *SMALL]


# ----------------------------------------------------------------------------- the domains' ground truth
def sobel_edges_f64(img: np.ndarray, threshold: float) -> np.ndarray:
    """Sobel magnitude of the [0, 1] image (replicated border, kernels / 4) > threshold, in float64."""
    x = np.pad(img.astype(np.float64) / 255, 1, mode="edge")
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64) / 4
    h, w = img.shape
    gx, gy = np.zeros((h, w)), np.zeros((h, w))
    for i in range(3):
        for j in range(3):
            gx += kx[i, j] * x[i : i + h, j : j + w]
            gy += kx.T[i, j] * x[i : i + h, j : j + w]
    return np.where(np.sqrt(gx**2 + gy**2) > threshold, 255, 0)


def gaussian_blur_f64(img: np.ndarray, sigma: float) -> np.ndarray:
    """The 2-d Gaussian (radius ceil(3 sigma), normalised), zero outside, as a direct sum."""
    r = int(np.ceil(3 * sigma))
    t = np.arange(-r, r + 1)
    k = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    k /= k.sum()
    x = np.pad(img.astype(np.float64), r)
    h, w = img.shape
    out = sum(k[i, j] * x[i : i + h, j : j + w] for i in range(2 * r + 1) for j in range(2 * r + 1))
    return np.clip(np.round(out), 0, 255)


def test_domains_are_their_definitions_and_every_test_image_has_all_four(mnist_root) -> None:
    dm = build_datamodule(load_config([*args(mnist_root), "data.blur_sigma=1.5"]))
    assert dm.info.domains == ["image", "edges", "inverted", "blurred"] and dm.info.kind == "pair"
    views, labels = dm.test_domains()
    assert views.shape == (4, 500, 1, 28, 28) and views.dtype == torch.uint8 and len(labels) == 500
    images = views[0, :20, 0].numpy()
    edges = np.stack([sobel_edges_f64(im, 0.2) for im in images])
    blurred = np.stack([gaussian_blur_f64(im, 1.5) for im in images])
    assert (views[1, :20, 0].numpy() != edges).mean() < 1e-3  # a float32 Sobel may flip a tie at the threshold
    assert np.array_equal(views[2, :20, 0].numpy(), 255 - images)
    diff = np.abs(views[3, :20, 0].numpy().astype(int) - blurred)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float64 both ways: only a rounding tie may differ
    assert blurred.std() < images.std()  # a blur, not a copy
    a, b, y = dm.test_pairs()  # grids and `sample`: the first direction, image -> edges
    assert torch.equal(a, views[0]) and torch.equal(b, views[1]) and torch.equal(y, labels)


def test_training_batches_take_each_image_in_a_seeded_random_source_domain(mnist_root) -> None:
    dm = build_datamodule(load_config(args(mnist_root)))
    dm.prepare()
    batch = dm.global_batch(3, 64)
    assert torch.equal(batch.x, dm.global_batch(3, 64).x)  # a pure function of (seed, step)
    assert not torch.equal(batch.domain, dm.global_batch(4, 64).domain)
    assert set(batch.domain.tolist()) == {0, 1, 2, 3}
    views, labels = dm._train
    idx = dm._index.take(3 * 64, 64)
    expected = views[batch.domain, idx].float() / 127.5 - 1
    assert torch.equal(batch.x, expected) and torch.equal(batch.y, labels[idx])
    chunks = dm.rank_batch(0, 2, 0, 1)  # n_critic batches per G step
    b = int(dm.dcfg.batch_size)
    assert chunks.x.shape == (2, b, 1, 28, 28) and chunks.domain.shape == (2, b)


# ----------------------------------------------------------------------------- nets
def test_target_label_is_tiled_one_hot_channels() -> None:
    x = torch.randn(3, 2, 5, 6)
    planes = tile_label(torch.tensor([2, 0, 3]), 4, x)
    assert planes.shape == (3, 4, 5, 6)
    for i, k in enumerate([2, 0, 3]):
        expected = torch.zeros(4, 5, 6)
        expected[k] = 1
        assert torch.equal(planes[i], expected)
    g = LabelConditioned(torch.nn.Identity(), 4)  # G sees [x, planes] along channels
    assert torch.equal(g(x, torch.tensor([2, 0, 3])), torch.cat([x, planes], 1))


def test_critic_has_a_patch_head_and_a_domain_head() -> None:
    d = StarDiscriminator(1, 4, 28, width=4, layers=3)  # 28 -> 14 -> 7 -> 3
    src, cls = d(torch.randn(2, 1, 28, 28))
    assert src.shape == (2, 1, 3, 3) and cls.shape == (2, 4)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in d.modules())  # per-sample GP


# ----------------------------------------------------------------------------- losses against the paper
def built(root, *extra: str):
    cfg = load_config([*args(root), *extra])
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm.info)
    model.noise = NoiseSource(0)
    grads: dict[str, list[bool]] = {}

    def backward_step(opt, loss) -> None:  # record who gets gradients; no optimizer step
        for net in ("G", "D"):
            getattr(model, net).zero_grad(set_to_none=True)
        loss.backward()
        for net in ("G", "D"):
            grads[net] = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in getattr(model, net).parameters()]

    model.backward_step = backward_step
    return model, grads


def test_each_step_trains_only_its_net_with_the_papers_terms(mnist_root) -> None:
    model, grads = built(mnist_root)
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    source, target = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1, 2, 3, 0, 2, 3])
    s = model.critic_step(x, source, target, None)
    assert all(grads["D"]) and not any(grads["G"])  # D's step: D's parameters only
    with torch.no_grad():  # D_cls on *real* images with their source labels (nothing was stepped)
        real_src, real_cls = model.D(x)
        fake_src = model.D(model.G(x, target))[0]
    torch.testing.assert_close(s["d/cls"], F.cross_entropy(real_cls, source))
    torch.testing.assert_close(s["d/adv"], fake_src.mean() - real_src.mean())  # WGAN: E D(G(x,c')) - E D(x)
    torch.testing.assert_close(s["loss/d"], s["d/adv"] + 1.0 * s["d/cls"] + 10.0 * s["d/penalty"])
    assert float(s["d/penalty"]) > 0

    g = model.generator_step(x, source, target, None)
    assert all(grads["G"]) and not any(grads["D"])  # G's step: G's parameters only
    with torch.no_grad():
        fake = model.G(x, target)
        fake_src, fake_cls = model.D(fake)
        rec = (model.G(fake, source) - x).abs().mean()  # back to the *source* domain
        rec_wrong = (model.G(fake, target) - x).abs().mean()
    torch.testing.assert_close(g["g/cls"], F.cross_entropy(fake_cls, target))  # D_cls on fakes, target labels
    torch.testing.assert_close(g["g/adv"], -fake_src.mean())
    torch.testing.assert_close(g["g/rec"], rec)
    assert not torch.isclose(rec, rec_wrong)
    torch.testing.assert_close(g["loss/g"], g["g/adv"] + 1.0 * g["g/cls"] + 10.0 * g["g/rec"])


def test_cycle_noise_perturbs_only_the_intermediate_of_the_round_trip(mnist_root) -> None:
    """model.cycle_noise=s: L_rec = |x - G(G(x, c') + s * eps, c)| with eps ~ N(0, 1) from the run's noise
    (Bashkirova et al. 2019's defence against hidden codes); adversarial and class terms see the clean fake."""
    model, grads = built(mnist_root, "model.cycle_noise=0.3")
    model.noise = NoiseSource(5)
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    source, target = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1, 2, 3, 0, 2, 3])
    g = model.generator_step(x, source, target, None)
    assert all(grads["G"]) and not any(grads["D"])
    eps = NoiseSource(5).normal(6, 1, 28, 28)
    with torch.no_grad():
        fake = model.G(x, target)
        fake_src, fake_cls = model.D(fake)
        rec = (model.G(fake + 0.3 * eps, source) - x).abs().mean()
        rec_clean = (model.G(fake, source) - x).abs().mean()
    torch.testing.assert_close(g["g/rec"], rec)
    assert not torch.isclose(rec, rec_clean)
    torch.testing.assert_close(g["g/adv"], -fake_src.mean())
    torch.testing.assert_close(g["g/cls"], F.cross_entropy(fake_cls, target))


def test_identity_term_maps_each_image_to_its_own_domain_unchanged(mnist_root) -> None:
    """model.identity_weight=w (not in the paper; CycleGAN's identity loss): L_G gains w * |G(x, c) - x|_1 with c
    the source domain, which also trains the same-domain translation the grids show."""
    model, grads = built(mnist_root, "model.identity_weight=5")
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    source, target = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1, 2, 3, 0, 2, 3])
    g = model.generator_step(x, source, target, None)
    assert all(grads["G"]) and not any(grads["D"])
    with torch.no_grad():
        identity = (model.G(x, source) - x).abs().mean()
    torch.testing.assert_close(g["g/identity"], identity)
    torch.testing.assert_close(g["loss/g"], g["g/adv"] + g["g/cls"] + 10.0 * g["g/rec"] + 5.0 * identity)
    assert "g/identity" not in built(mnist_root)[0].generator_step(x, source, target, None)  # 0: the paper


def test_random_targets_are_other_domains_uniformly(mnist_root) -> None:
    model, _ = built(mnist_root)
    source = torch.arange(4).repeat(3000)
    target = model.random_targets(source)
    assert not bool((target == source).any())
    counts = torch.bincount(target[source == 1], minlength=4).double() / 3000
    assert counts[1] == 0 and torch.allclose(counts[[0, 2, 3]], torch.full((3,), 1 / 3).double(), atol=0.04)


def test_papers_defaults() -> None:
    from gan_lightning.models.stargan import StarGAN, StarGANConfig

    m, d = StarGANConfig(), StarGAN.defaults
    assert (m.n_critic, m.cls_weight, m.rec_weight, m.loss) == (5, 1.0, 10.0, "wasserstein")
    assert (m.penalty.name, m.penalty.weight) == ("gp", 10.0)
    assert d["optim"]["lr_g"] == d["optim"]["lr_d"] == 1e-4 and d["optim"]["betas"] == [0.5, 0.999]
    assert (d["nets"]["g"], d["nets"]["resnet_blocks"], d["nets"]["g_norm"]) == ("stargan", 6, "instance")


def test_the_label_reaches_the_generator_output(mnist_root) -> None:
    """A tiled label is a constant plane: behind the paper's zero-padded first convolution it still
    changes G's output under instance norm; behind the reflection-padded CycleGAN ResNet it could
    not (refused by validate)."""
    model, _ = built(mnist_root)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    outs = [model.G(x, torch.full((2,), k)) for k in range(4)]
    assert all((outs[0] - o).abs().max() > 1e-3 for o in outs[1:])
    from gan_lightning.nets.translation import ResnetGenerator

    blind = LabelConditioned(ResnetGenerator(1 + 4, 1, 1, 4, "instance"), 4)
    torch.testing.assert_close(blind(x, torch.zeros(2)), blind(x, torch.full((2,), 3)))
    with pytest.raises(ConfigError, match="never see the target domain"):
        load_config(["exp=stargan_fashion", "nets.g=resnet"])


def test_each_translators_blindness_to_a_tiled_label_is_what_its_capability_says() -> None:
    """For every registered translator with instance norm: its output is the same for two tiled labels
    exactly when its class says ``blind_to_constant_planes_with_instance_norm`` (the capability
    StarGAN's config check reads)."""
    from omegaconf import OmegaConf

    from gan_lightning.models.translation import TRANSLATORS, translator_capability
    from gan_lightning.schema import NetsConfig

    nets = OmegaConf.merge(OmegaConf.structured(NetsConfig), {"g_width": 4, "resnet_blocks": 1, "g_norm": "instance"})
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    blind_ones = []
    for name in TRANSLATORS.names():
        torch.manual_seed(0)
        net = LabelConditioned(TRANSLATORS[name](nets, 1 + 4, 1, 32), 4)
        same = bool(torch.allclose(net(x, torch.zeros(2)), net(x, torch.full((2,), 3)), atol=1e-5))
        assert same == translator_capability(name, "blind_to_constant_planes_with_instance_norm", False), name
        if same:
            blind_ones.append(name)
    assert blind_ones == ["resnet"]


# ----------------------------------------------------------------------------- public API
def untrained_classifier(view, verbose: bool = False, **_):
    """A domain classifier stand-in (the metrics' wiring, not their values, is under test here)."""
    from gan_lightning.metrics.classifier import ClassifierFeatures, DomainClassifier

    torch.manual_seed(0)
    return ClassifierFeatures(DomainClassifier(10), {"dataset": view.info.name, "fingerprint": "", "test_accuracy": 0})


def test_trains_with_pair_metrics_grid_and_sampling(mnist_root, monkeypatch) -> None:
    import gan_lightning.metrics.classifier as classifier

    monkeypatch.setattr(classifier, "get_classifier", untrained_classifier)
    seen = {}

    class Count(L.Callback):
        def on_train_end(self, trainer, pl_module) -> None:
            opt_g, opt_d = pl_module.optimizers()
            seen["global_step"] = trainer.global_step
            seen["d_steps"] = int(opt_d.optimizer.state[next(pl_module.D.parameters())]["step"])
            seen["g_steps"] = int(opt_g.optimizer.state[next(pl_module.G.parameters())]["step"])

    result = run(
        *args(mnist_root),
        "metrics.names=[translation]",
        "metrics.n=40",
        "steps=2",
        "model.n_critic=3",
        "out=s",
        "log.sample_every=2",
        extra_callbacks=[Count()],
    )
    assert result.status == "completed"
    assert seen == {"global_step": 2 * (3 + 1), "d_steps": 6, "g_steps": 2}  # n_critic D steps per G step
    final = result.summary["final"]
    pairs = [name for _, _, name in domain_pairs(["image", "edges", "inverted", "blurred"])]
    assert len(pairs) == 12
    for key in ("l1", "agreement", "agreement_share", "agreement_ceiling", "fid", "round_trip_l1", "hidden_code_ratio"):
        assert all(f"{p}/{key}" in final for p in pairs)
        expected = float(np.mean([final[f"{p}/{key}"] for p in pairs]))
        torch.testing.assert_close(final[f"mean/{key}"], expected, equal_nan=True)
    from PIL import Image

    w, h = Image.open(result.run_dir / "samples" / "step_0000002.png").size
    assert abs(w / h - 5 / 8) < 0.05  # 8 inputs, each beside its translation to the 4 domains
    from gan_lightning.sample import sample_data_space

    x, model = sample_data_space(result.run_dir / "checkpoints" / "last.ckpt", 5)
    assert x.shape == (5, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    from gan_lightning.sample import sample_to_file

    png = sample_to_file(result.run_dir / "checkpoints" / "last.ckpt", 5, result.run_dir / "s.png")
    assert Image.open(png).size[0] > 5 * 28  # a grid of the translations, not a 2-d scatter plot
    from gan_lightning.evaluate import evaluate_checkpoint

    # `gan-lightning evaluate` of the last checkpoint measures what the run measured at its end
    evaluated = evaluate_checkpoint(result.run_dir / "checkpoints" / "last.ckpt", None, 40, data_dir=str(mnist_root))
    assert evaluated["g_step"] == 2 and set(evaluated["values"]) == {k for k in final if "_to_" in k or "mean/" in k}
    for key, value in evaluated["values"].items():
        assert value == pytest.approx(final[key], rel=1e-6, nan_ok=True), key
    a = torch.rand(3, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(model.translate(a, "inverted_to_edges"), model.translate(a, "image_to_edges"))


class StubDomains:
    """Two domains, image and inverted (x -> 255 - x), 50 random 16x16 test images."""

    def __init__(self) -> None:
        self.info = type("Info", (), {"domains": ["image", "inverted"]})()
        torch.manual_seed(0)
        image = torch.randint(0, 256, (50, 1, 16, 16), dtype=torch.uint8)
        self.views, self.labels = torch.stack([image, 255 - image]), torch.zeros(50, dtype=torch.long)

    def test_domains(self):
        return self.views, self.labels


class Translator:
    """``translate`` of a stub model: ``to[target](x)`` in model space [-1, 1]."""

    def __init__(self, to):
        self.to = to

    def translate(self, x, direction):
        return self.to[direction.rsplit("_to_", 1)[-1]](x)


def test_hidden_code_ratio_is_one_for_a_true_translator_and_large_for_a_hiding_one() -> None:
    from gan_lightning.metrics.translation import domain_pair_metrics

    dm = StubDomains()
    honest = domain_pair_metrics(Translator({"inverted": lambda x: -x, "image": lambda x: -x + 0.1}), dm, 50, {})
    # honest: image -> inverted exact, inverted -> image off by 0.1 in [-1, 1], i.e. 0.05 in [0, 1] (up to clamping)
    rt = honest["image_to_inverted/round_trip_l1"]
    torch.testing.assert_close(honest["inverted_to_image/l1"], rt)  # G(true x_inv, image) = G(G(x, inv), image)
    torch.testing.assert_close(honest["image_to_inverted/hidden_code_ratio"], 1.0, rtol=1e-5, atol=0)
    assert 0.04 < rt <= 0.05
    # hiding: the 'inverted' image is a near-constant grey carrying x at amplitude 1e-3, and the way
    # back decodes it exactly: round trip ~0, but the true inverted image decodes to garbage
    hiding = {"inverted": lambda x: 1e-3 * x, "image": lambda x: (x * 1e3).clamp(-1, 1)}
    out = domain_pair_metrics(Translator(hiding), dm, 50, {})
    assert out["image_to_inverted/round_trip_l1"] < 1e-3
    assert out["image_to_inverted/hidden_code_ratio"] > 100
    torch.testing.assert_close(
        out["mean/hidden_code_ratio"],
        (out["image_to_inverted/hidden_code_ratio"] + out["inverted_to_image/hidden_code_ratio"]) / 2,
    )


def test_resume_is_bitwise_exact(mnist_root) -> None:
    from tests.test_resume import SignalAt

    common = [*args(mnist_root), "steps=4", "model.ema.decay=0.5", "model.cycle_noise=0.1"]  # both resume too
    full = run(*common, "out=full")
    run(*common, "out=part", extra_callbacks=[SignalAt(2)])
    resumed = run(*common, "out=part", "resume=auto")
    assert_bitwise_equal(weights(full.run_dir), weights(resumed.run_dir))
    w = weights(full.run_dir)
    averaged = [k for k in w if k.startswith("G_ema.")]
    assert averaged and any(not torch.equal(w[k], w["G." + k[len("G_ema.") :]]) for k in averaged)


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(
    "extra, match",
    [
        (["data=fashion_edges"], "not a multi-domain task; use data=fashion_domains"),
        (["nets.patch_layers=5"], "at most 4 times"),
        (["nets.d_norm=batch"], "no normalisation"),
        (["model.n_critic=0"], "model.n_critic"),
        (["model.rec_weight=-1"], "model.rec_weight"),
        (["model.cycle_noise=-0.1"], "model.cycle_noise"),
        (["model.identity_weight=-1"], "model.identity_weight"),
        (["data.blur_sigma=0"], "data.blur_sigma"),
        (["model.penalty.every=4"], "stargan applies its penalty on every D step"),  # not lazy
        (["model.penalty.weight=-1"], "model.penalty.weight"),
    ],
)
def test_bad_configs(extra: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(["exp=stargan_fashion", *extra])


def test_two_domain_models_refuse_multi_domain_data() -> None:
    with pytest.raises(ConfigError, match="translates images: use data=fashion_edges"):
        load_config(["exp=stargan_fashion", "model=pix2pix"])


class ThreeDomains(StubDomains):
    """StubDomains with a third domain, the image upside down."""

    def __init__(self) -> None:
        super().__init__()
        self.info.domains = ["image", "inverted", "flipped"]
        self.views = torch.cat([self.views, self.views[:1].flip(-2)])


class CountingClassifier(nn.Module):
    """A stand-in domain classifier: features and class probabilities that depend on the images; counts what it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(256, 3)
        self.images_seen = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.images_seen += len(x)
        feats = self.proj(x.flatten(1))
        return feats, feats.softmax(1)


def test_the_targets_features_are_computed_once_per_target_domain_and_reused_by_later_evaluations() -> None:
    """The test split's target images never change during a run: with a memo, each target domain's images go
    through the feature net once (not once per pair), and a second evaluation runs it on the translations only,
    with the same values as without the memo."""
    from gan_lightning.metrics.translation import domain_pair_metrics

    torch.manual_seed(0)
    dm, clf = ThreeDomains(), CountingClassifier()
    classifiers = {name: clf for name in dm.info.domains}
    model = Translator({"inverted": lambda x: -x, "image": lambda x: -x + 0.1, "flipped": lambda x: x.flip(-2)})
    plain = domain_pair_metrics(model, dm, 50, classifiers)
    assert clf.images_seen == (6 + 3) * 50  # six pairs' translations, three target domains (not six)
    memo: dict = {}
    clf.images_seen = 0
    first = domain_pair_metrics(model, dm, 50, classifiers, memo=memo)
    assert clf.images_seen == (6 + 3) * 50
    second = domain_pair_metrics(model, dm, 50, classifiers, memo=memo)
    assert clf.images_seen == (6 + 3 + 6) * 50
    assert first == plain and second == plain
    domain_pair_metrics(model, dm, 40, classifiers, memo=memo)  # another n: other targets, computed anew
    assert clf.images_seen == (6 + 3 + 6 + 6 + 3) * 50 - (6 + 3) * 10

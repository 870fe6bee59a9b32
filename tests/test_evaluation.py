"""Domain classifier, reference cache, the metrics callback, `evaluate` and `fid` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_lightning.config import load_config
from gan_lightning.data import build_datamodule
from gan_lightning.metrics import Evaluator
from gan_lightning.metrics import classifier as clf
from gan_lightning.metrics import reference as refmod
from gan_lightning.registry import ConfigError
from tests.helpers import run


def fashion_dm(mnist_root, *extra: str):
    dm = build_datamodule(load_config(["exp=quickstart", f"data.data_dir={mnist_root}", "data.download=false", *extra]))
    dm.prepare()
    return dm


@pytest.mark.usefixtures("private_cache")
def test_classifier_trains_caches_and_reloads(mnist_root, monkeypatch) -> None:
    dm = fashion_dm(mnist_root)
    ex = clf.get_classifier(dm, verbose=False)
    assert ex.meta["test_accuracy"] >= 0.95  # the synthetic classes are easy
    path = clf.classifier_path(ex.meta["fingerprint"])
    assert path.is_file() and str(path).startswith(str(clf.cache_dir()))

    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    again = clf.get_classifier(dm, verbose=False)
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(ex(x)[0], again(x)[0])
    feats, probs = again(torch.rand(4, 1, 32, 32))  # 32x32 (padded) input is cropped back
    assert feats.shape == (4, 128) and probs.shape == (4, 10)
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"unreadable.*train-evaluator"):
        clf.get_classifier(dm, verbose=False)


@pytest.mark.usefixtures("private_cache")
def test_training_a_classifier_leaves_the_global_rng_alone(mnist_root) -> None:
    """A classifier first built mid-run (a metric that needs it at the first evaluation) must not reseed the
    run: whether the run's random stream changes would depend on whether the cache held the classifier."""
    dm = fashion_dm(mnist_root)
    torch.manual_seed(3)
    clf.get_classifier(dm, verbose=False)  # trained: the private cache is empty
    after = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(3))
    torch.manual_seed(4)
    clf.get_classifier(dm, verbose=False)  # loaded from the cache: building the net draws no weights either
    cached_after = torch.rand(3)
    torch.manual_seed(4)
    assert torch.equal(cached_after, torch.rand(3))


class Retrained(Exception):
    pass


@pytest.mark.usefixtures("private_cache")
def test_classifier_cache_is_keyed_by_training_data_not_dataset_name(mnist_root, monkeypatch) -> None:
    """fashion_edges' clothes side trains on Fashion-MNIST's images: it reuses their classifier."""
    from gan_lightning.data.translation import EdgeView

    ex = clf.get_classifier(fashion_dm(mnist_root), verbose=False)
    cached = sorted((clf.cache_dir() / "evaluators").glob("*.pt"))

    def no_training(*a, **k):
        raise Retrained

    monkeypatch.setattr(clf, "train_classifier", no_training)
    edges = build_datamodule(load_config(["exp=pix2pix_edges", f"data.data_dir={mnist_root}", "data.download=false"]))
    assert edges.fashion.info.name == "fashion_edges"  # another name, the same training images
    clothes = clf.get_classifier(edges.fashion, verbose=False)
    assert sorted((clf.cache_dir() / "evaluators").glob("*.pt")) == cached and clothes.key == ex.key
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(clothes(x)[1], ex(x)[1])
    with pytest.raises(Retrained):  # the edge maps are other data: their classifier is another
        clf.get_classifier(EdgeView(edges), verbose=False)
    fp = ex.meta["fingerprint"]
    clf.classifier_path(fp).rename(clf.cache_dir() / "evaluators" / f"classifier-fashion_mnist-{fp}.pt")
    assert clf.get_classifier(edges.fashion, verbose=False).key == ex.key  # as older versions named it


@pytest.mark.usefixtures("private_cache")
def test_missing_classifier_without_training_says_what_to_run(mnist_root) -> None:
    with pytest.raises(ConfigError, match="gan-lightning train-evaluator data=fashion_mnist"):
        clf.get_classifier(fashion_dm(mnist_root), train_if_missing=False)


@pytest.mark.usefixtures("private_cache")
def test_reference_statistics_are_cached_by_key(mnist_root, monkeypatch) -> None:
    dm = fashion_dm(mnist_root)
    ev = Evaluator(["fid"], dm.info, dm, n_ref=300).prepare()
    ref = ev.reference
    assert ref.n == 300 and ref.key.startswith("fashion_mnist-train-classifier-v1-") and "-n300-" in ref.key
    assert refmod.reference_path(ref.key).is_file()
    monkeypatch.setattr(refmod, "compute_reference", lambda *a, **k: (_ for _ in ()).throw(AssertionError("cached")))
    again = Evaluator(["fid"], dm.info, dm, n_ref=300).prepare().reference
    torch.testing.assert_close(again.sigma, ref.sigma)
    assert again.key == ref.key
    other = Evaluator(["fid"], dm.info, dm, n_ref=200, ref_split="test")
    monkeypatch.undo()
    assert other.prepare().reference.key != ref.key


def test_a_large_references_kept_features_are_a_random_share_not_a_prefix() -> None:
    """Over 10,000 reference images the features kept for KID/PRDC/1-NN are a seeded random 10,000 (review):
    a prefix of a class-sorted split held only its first classes. Rows stay paired with their labels."""
    labels = torch.arange(10).repeat_interleave(1500)  # 15,000 images stored class by class
    images = labels.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).to(torch.uint8).contiguous()
    ref = refmod.cached_reference(
        "t", "train", images, labels, "ex", lambda x: x.flatten(1)[:, :1] * 255, 15000, use_cache=False
    )
    assert ref.n == 15000 and len(ref.feats) == 10000 and ref.labels is not None
    counts = torch.bincount(ref.labels, minlength=10)
    assert (counts - 1000).abs().max() < 100, counts  # hypergeometric sd ~ 17 per class
    assert torch.equal(ref.feats[:, 0].round().long(), ref.labels)
    assert float(ref.mu[0]) == pytest.approx(4.5)  # the mean still over all 15,000


def test_fid_orders_real_data_before_noise(mnist_root) -> None:
    dm = fashion_dm(mnist_root)
    ev = Evaluator(
        ["fid", "kid", "prdc", "is", "classes"],
        dm.info,
        dm,
        n_ref=500,
        ref_split="train",
        kid_subsets=10,
        kid_subset_size=200,
    ).prepare()
    test_images = dm.split(train=False)[0][:500].float() / 127.5 - 1  # model space
    real = ev.compute(ev.extract(test_images))
    noise = ev.compute(ev.extract(torch.rand(500, 1, 28, 28) * 2 - 1))
    assert real["fid"] < noise["fid"] / 10 and real["kid"] < noise["kid"]
    assert real["prdc/precision"] > noise["prdc/precision"] and real["classes/covered"] == 10
    assert set(real) == {
        "fid",
        "kid",
        "kid_std",
        "prdc/precision",
        "prdc/recall",
        "prdc/density",
        "prdc/coverage",
        "is",
        "is_std",
        "classes/covered",
        "classes/kl",
    }


def test_metric_needs_the_right_data_kind() -> None:
    dm = build_datamodule(load_config(["exp=gmm_ring"]))
    with pytest.raises(ConfigError, match="metric 'fid' needs image") as e:
        Evaluator(["fid"], dm.info, dm)
    assert "its data's metrics: modes" in str(e.value)  # the fix, not only the problem (review)


def test_training_logs_metrics_of_ema_and_raw_generators(mnist_root) -> None:
    result = run(
        "exp=quickstart",
        f"data.data_dir={mnist_root}",
        "data.download=false",
        "steps=4",
        "out=m",
        "metrics.names=[fid,classes]",
        "metrics.every=2",
        "metrics.n=200",
        "metrics.n_ref=300",
        "model.ema.decay=0.9",
    )
    s = result.summary
    assert {"fid", "raw/fid", "classes/covered", "raw/classes/covered"} <= set(s["final"])
    assert s["primary"] == "fid" and s["best"]["fid"]["step"] in (2, 4)
    assert s["metrics"]["features"] == "classifier" and s["metrics"]["reference"].startswith("fashion_mnist-train")
    assert s["metrics"]["classifier"]["test_accuracy"] >= 0.95
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"fid", "raw/fid", "time/metrics_s"} <= set(header)
    ckpt = torch.load(result.run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"G", "D", "G_ema"}  # no extractor in checkpoints
    assert ckpt["gan_lightning"]["g_step"] == s["best"]["fid"]["step"]


def test_evaluate_command_writes_json(mnist_root, tmp_path) -> None:
    result = run("exp=quickstart", f"data.data_dir={mnist_root}", "data.download=false", "steps=2", "out=e")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan_lightning",
            "evaluate",
            str(ckpt),
            "--metrics",
            "fid,classes",
            "--n",
            "300",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((result.run_dir / "evaluate-last-step2-n300.json").read_text())
    assert data["g_step"] == 2 and data["n"] == 300 and "fid" in data["values"] and "classes/covered" in data["values"]
    assert "fid" in out.stdout


def test_evaluations_of_one_checkpoint_keep_each_other(mnist_root) -> None:
    """A second `evaluate` of a checkpoint loses nothing the first wrote: other metrics at the same
    settings join its file; other settings (n, features, split) or a later step get their own file."""
    from gan_lightning.evaluate import evaluate_checkpoint

    result = run("exp=quickstart", f"data.data_dir={mnist_root}", "data.download=false", "steps=2", "out=e")
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    first = evaluate_checkpoint(ckpt, ["fid"], 300, data_dir=str(mnist_root), raw_too=False)
    second = evaluate_checkpoint(ckpt, ["classes"], 300, data_dir=str(mnist_root), raw_too=False)
    assert second["written_to"] == first["written_to"] and "fid" not in second["values"]  # it returns its own
    both = json.loads(Path(first["written_to"]).read_text())
    assert both["values"]["fid"] == first["values"]["fid"] and "classes/covered" in both["values"]
    assert both["metrics"] == ["fid", "classes"] and both["reference"] == first["reference"]  # the FID's provenance
    other = evaluate_checkpoint(ckpt, ["fid"], 200, data_dir=str(mnist_root), raw_too=False)
    assert other["written_to"] != first["written_to"]
    assert json.loads(Path(first["written_to"]).read_text())["values"]["fid"] == first["values"]["fid"]
    assert json.loads(Path(other["written_to"]).read_text())["n"] == 200
    names = sorted(p.name for p in result.run_dir.glob("evaluate-*.json"))
    assert names == ["evaluate-last-step2-n200.json", "evaluate-last-step2-n300.json"], names


def test_fid_command_on_arrays_folders_and_splits(mnist_root, tmp_path, capsys) -> None:
    from PIL import Image

    from gan_lightning.cli import main

    rng = np.random.default_rng(0)
    a = rng.random((60, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(a):
        Image.fromarray((img[0] * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")

    def fid(*args: str) -> float:  # the command in this process (a subprocess per call costs its start-up)
        capsys.readouterr()
        assert main(["fid", *args, "--device", "cpu", "--data-dir", str(mnist_root)]) == 0
        return float(capsys.readouterr().out.split()[1])

    same = fid(str(tmp_path / "a.npy"), str(folder), "--features", "classifier", "--classifier-data", "fashion_mnist")
    assert abs(same) < 1e-6  # the PNGs hold exactly the quantised array
    split = fid("fashion_mnist:train", "fashion_mnist:test", "--features", "classifier", "--n", "400")
    noise = fid("fashion_mnist:test", str(tmp_path / "a.npy"), "--features", "classifier")
    assert 0 < split < noise
    bad = subprocess.run(  # the exit code of the real program
        [sys.executable, "-m", "gan_lightning", "fid", "nothing_here", "x.npy"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "not a .npy file, an image folder, or a dataset split" in bad.stderr


def test_metric_callbacks_move_their_extractors_to_the_models_device() -> None:
    """Extractors are prepared before the fit, on "cuda", i.e. the first GPU; under DDP (or with
    trainer.devices=[1]) the model lives on another one. At the fit's start each callback moves
    them to the model's device. The meta device stands in for a second GPU here."""
    from types import SimpleNamespace

    from torch import nn

    from gan_lightning.callbacks.metrics import GenerativeMetrics
    from gan_lightning.callbacks.neighbours import NearestNeighbours
    from gan_lightning.callbacks.translation import TranslationMetrics

    class Moves:
        directions: dict[str, str] = {}

        def __init__(self) -> None:
            self.device: torch.device | None = None

        def default_primary(self) -> str:
            return "fid"

        def to(self, device: torch.device) -> Moves:
            self.device = torch.device(device)
            return self

    model = SimpleNamespace(device=torch.device("meta"))
    trainer = SimpleNamespace(is_global_zero=False)
    for make in (
        lambda ev: GenerativeMetrics(ev, every=1, steps=1, n=1),
        lambda ev: NearestNeighbours(ev, Path("."), steps=1, state=None),  # type: ignore[arg-type]
    ):
        callback = make(Moves())
        callback.on_train_start(trainer, model)
        assert callback.evaluator.device == torch.device("meta")
    translation = TranslationMetrics.__new__(TranslationMetrics)  # its constructor trains domain classifiers
    translation.classifiers, translation.inception = {"b": nn.Linear(2, 2)}, nn.Linear(2, 2)
    translation.on_train_start(trainer, model)
    assert translation.classifiers["b"].weight.device.type == "meta" and translation.inception.weight.is_meta


def test_a_retrained_classifier_does_not_reuse_the_old_ones_reference(tmp_path, monkeypatch) -> None:
    """The reference cache key named the training data's fingerprint only: a classifier retrained on the same data
    (train-evaluator --epochs 10, another device) reused the statistics of the old network's features."""
    from gan_lightning.metrics.classifier import ClassifierFeatures, DomainClassifier, fingerprint
    from gan_lightning.metrics.reference import cached_reference

    monkeypatch.setenv("GAN_LIGHTNING_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (200, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (200,), generator=g)
    meta = {"format": 1, "fingerprint": fingerprint(images, labels), "dataset": "x", "test_accuracy": 0.0}
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(ClassifierFeatures(DomainClassifier(), dict(meta)))
    a, b = nets
    assert a.key != b.key and a.key.startswith("classifier-v1-")
    ra = cached_reference("x", "test", images, labels, a.key, lambda x: a(x)[0], 200)
    rb = cached_reference("x", "test", images, labels, b.key, lambda x: b(x)[0], 200)
    fresh = cached_reference("x", "test", images, labels, b.key, lambda x: b(x)[0], 200, use_cache=False)
    assert not torch.equal(ra.mu, rb.mu) and torch.equal(rb.mu, fresh.mu)
    torch.manual_seed(1)  # the same weights again: the same key, the cache is used
    assert ClassifierFeatures(DomainClassifier(), dict(meta)).key == a.key


def test_the_reference_class_histogram_is_the_whole_splits_with_every_class() -> None:
    """`classes` and `cond` compare with the reference split's class histogram. It came from the n-image subset
    when a feature metric (fid) was also asked for and from the whole split otherwise (the same checkpoint
    scored two class KLs), and without the last class when that subset lacked it (an IndexError)."""
    from types import SimpleNamespace

    from gan_lightning.data.base import DataInfo
    from gan_lightning.metrics.reference import Reference

    info = DataInfo("x", "image", (1, 28, 28), num_classes=10, class_names=[str(i) for i in range(10)])
    labels = torch.arange(90) % 9  # class 9 is absent from the split
    images = torch.zeros(90, 1, 28, 28, dtype=torch.uint8)
    dm = SimpleNamespace(info=info, split=lambda train=True, size=None: (images, labels))
    evaluator = Evaluator(["classes"], info, dm, n_ref=4)
    expected = torch.bincount(labels, minlength=10).double()
    assert torch.equal(evaluator.reference_class_hist, expected)
    # a feature metric's reference statistics hold the labels of their 4 images only
    subset = labels[:4]
    evaluator._reference = Reference(
        "k", torch.zeros(2), torch.eye(2), 4, torch.zeros(4, 2), torch.bincount(subset).double(), subset
    )
    assert torch.equal(evaluator.reference_class_hist, expected)

"""The evaluation table's measures through the evaluator, and the metric of metrics: each
measure against known degradations of real (synthetic) data, where the right answer is known."""

from __future__ import annotations

import json

import torch

from gan_lightning.cli import main
from gan_lightning.config import load_config
from gan_lightning.metrics.bins import ndb, nearest_centroid
from gan_lightning.metrics.degradations import DEGRADATIONS, degraded_sets, run_measures
from gan_lightning.metrics.evaluator import Evaluator
from gan_lightning.metrics.measures import ndb_halves

N = 240


def test_the_table_detects_what_each_degradation_breaks(mnist_root, tmp_path) -> None:
    data = ["data=fashion_mnist", f"data.data_dir={mnist_root}", "data.download=false"]
    cfg = load_config(["exp=quickstart", *data, "metrics.ndb_bins=10"])
    names = ["nn1", "mmd", "ndb", "spectrum", "classes", "fid"]
    table = run_measures(cfg, names, N, "classifier", tmp_path / "measures", verbose=False)
    rows, worse = table["rows"], table["worse"]
    assert set(rows) == {"real", *DEGRADATIONS}
    # held-out real images: the 1-NN two-sample test near its ideal 0.5 (Xu et al. 2018)
    assert abs(rows["real"]["nn1/accuracy"] - 0.5) < 0.12
    # memorised training images: every point's nearest other point is its twin in the other set,
    # so every point is misclassified: accuracy exactly 0 (the gap 0.5 flags memorisation)
    assert rows["memorised"]["nn1/accuracy"] == 0.0 and worse["memorised"]["nn1"] is True
    assert abs(rows["memorised"]["fid"]) < 1e-6 and worse["memorised"]["fid"] is False  # FID cannot see it
    assert rows["collapse"]["nn1/accuracy"] > 0.9  # two images per class: nearly separable
    # (collapse is not asserted for FID and MMD: on these synthetic images the classifier's features
    # ignore the within-class noise, so two images per class look like the class to them)
    for row in ("drop_classes", "noise", "blur"):
        assert worse[row]["mmd"] and worse[row]["fid"], row
    assert rows["drop_classes"]["classes/covered"] <= 6  # half of the 10 classes kept
    assert rows["blur"]["spectrum"] > 5 * rows["real"]["spectrum"]
    md = (tmp_path / "measures" / "measures.md").read_text()
    assert "| nn1 (`nn1/gap`) |" in md and "✓" in md
    saved = json.loads((tmp_path / "measures" / "measures.json").read_text())
    assert saved["rows"]["real"]["mmd"] == rows["real"]["mmd"] and saved["n"] == N

    # NDB through the evaluator (bins fitted on one half of the reference, the other half
    # compared): every bin whose held-out members all belong to dropped classes is flagged
    from gan_lightning.data import build_datamodule

    dm = build_datamodule(cfg)
    dm.prepare()
    ev = Evaluator(["ndb"], dm.info, dm, n_ref=N, prdc_n=N, ndb_bins=10, verbose=False).prepare()
    sets = degraded_sets(dm.split(train=False), dm.split(train=True), N)
    fake = ev.extract(sets["drop_classes"][0] * 2 - 1)["feats"]
    value = ev.compute({"feats": fake})["ndb"]
    ref = ev.reference
    _, held = ndb_halves(len(ref.feats))
    centroids = next(v for k, v in ev._cache.items() if k.startswith("ndb_centroids"))
    out = ndb(ref.feats[held], fake, 10, centroids=centroids)
    assert value == out["ndb"] > 0
    dropped = torch.tensor(sorted(set(sets["real"][1].tolist()) - set(sets["drop_classes"][1].tolist())))
    bins, labels = nearest_centroid(ref.feats[held], centroids)[0], ref.labels[held]
    flagged = set(torch.as_tensor(out["bins_different"]).tolist())
    only_dropped = [b for b in range(10) if (bins == b).sum() >= 5 and torch.isin(labels[bins == b], dropped).all()]
    assert only_dropped and set(only_dropped) <= flagged


def test_measures_refuses_what_a_set_of_images_cannot_take(mnist_root, capsys) -> None:
    data = ["data=fashion_mnist", f"data.data_dir={mnist_root}", "data.download=false"]
    assert main(["measures", *data, "--metrics", "recon"]) == 2
    assert "needs a generator" in capsys.readouterr().err


def test_cas_of_the_real_training_images_equals_its_real_baseline(mnist_root) -> None:
    """CAS trains the classifier recipe on the 'generated' images with their requested labels, and
    beside it the same recipe on as many real training images (seeded draw): given exactly those
    real images and labels, the two accuracies are the same number and the ratio is 1."""
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.measures import _cas

    dm = build_datamodule(load_config(["exp=cgan_mnist", f"data.data_dir={mnist_root}", "data.download=false"]))
    dm.prepare()
    ev = Evaluator(["cas"], dm.info, dm, verbose=False)
    images, labels = dm.split(train=True, size=28)
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:300]
    out = _cas(ev, {"pixels": images[idx].float() / 255, "requested": labels[idx]})
    assert out["cas"] == out["cas_real"] and out["cas_ratio"] == 1.0
    assert out["cas"] > 0.5  # the synthetic classes are learnable from 300 images


def test_non_finite_samples_give_nan_values_not_a_crash(mnist_root) -> None:
    """A generator that has just diverged gives NaN images: every measure reports NaN (the run then
    ends as 'diverged', not 'failed'), including those that refuse non-finite input themselves."""
    from gan_lightning.data import build_datamodule

    dm = build_datamodule(cfg_quickstart(mnist_root))
    dm.prepare()
    ev = Evaluator(["mmd", "nn1", "fid", "spectrum"], dm.info, dm, n_ref=100, prdc_n=100, verbose=False).prepare()
    data = ev.extract(torch.full((20, 1, 28, 28), float("nan")))
    values = ev.compute(data)
    assert set(values) == set(ev.directions) and all(v != v for v in values.values())


def test_cas_leaves_the_global_random_state_alone(mnist_root) -> None:
    """The classifier CAS trains is seeded locally: training draws after an evaluation are the same
    as without one (checkpointed RNG states do not depend on whether metrics ran)."""
    from gan_lightning.data import build_datamodule
    from gan_lightning.metrics.measures import _cas

    dm = build_datamodule(load_config(["exp=cgan_mnist", f"data.data_dir={mnist_root}", "data.download=false"]))
    dm.prepare()
    images, labels = dm.split(train=True, size=28)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ev = Evaluator(["cas"], dm.info, dm, verbose=False)
    _cas(ev, {"pixels": images[:50].float() / 255, "requested": labels[:50]})
    assert torch.equal(torch.rand(3), expected)


def test_a_measure_the_model_cannot_take_fails_before_training(mnist_root, tmp_path) -> None:
    """cas and cond need a class-conditional model: refused when the run starts, not after its
    last step at the final evaluation."""
    import pytest

    from gan_lightning.registry import ConfigError
    from tests.helpers import run

    data = [f"data.data_dir={mnist_root}", "data.download=false"]
    with pytest.raises(ConfigError, match="'cas' needs a class-conditional model"):
        run("exp=quickstart", *data, "metrics.names=[fid,cas]", "steps=2", "out=r")
    assert not (tmp_path / "r" / "metrics.csv").exists()  # no step was trained


def cfg_quickstart(mnist_root):
    return load_config(["exp=quickstart", "data=fashion_mnist", f"data.data_dir={mnist_root}", "data.download=false"])

"""What a run reports when things go wrong: divergence messages, refusing non-finite samples,
and JSON files that strict parsers accept."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from gan_lightning.callbacks.run import outcome_line
from gan_lightning.evaluate import evaluate_checkpoint
from gan_lightning.files import json_text, write_json
from gan_lightning.registry import ConfigError
from gan_lightning.sample import sample_to_file
from tests.helpers import run


def strict_json(path: Path) -> Any:
    """Parse as a strict JSON parser would: NaN, Infinity and -Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise ValueError(f"{path.name} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


class NanAfter(L.Callback):
    """Sets one G weight to NaN after G step k: every later loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if pl_module.g_step == self.step:
            with torch.no_grad():
                next(pl_module.G.parameters()).view(-1)[0] = float("nan")


def test_divergence_before_any_checkpoint_does_not_claim_one_was_kept() -> None:
    s = run("exp=gmm_ring", "steps=50", "out=early", "metrics.names=[]", extra_callbacks=[NanAfter(1)]).summary
    assert s["status"] == "diverged" and s["diverged_at"] == 2 and s["checkpoints"] == []
    line = outcome_line(s)
    assert "non-finite at step 2" in line and "no checkpoint was written before it" in line
    assert "kept" not in line


def test_divergence_after_a_checkpoint_names_what_is_kept() -> None:
    s = run(
        "exp=gmm_ring", "steps=50", "log.ckpt_every=2", "out=late", "metrics.names=[]", extra_callbacks=[NanAfter(3)]
    ).summary
    assert s["diverged_at"] == 4 and s["checkpoints"] == ["last.ckpt"]
    assert "checkpoints written before it are kept: last.ckpt" in outcome_line(s)


def test_outcome_line_of_a_completed_run_with_a_non_finite_metric() -> None:
    summary = {"status": "completed", "steps_done": 3, "steps": 3, "final": {"step": 3, "fid": 1.5, "kl": None}}
    assert outcome_line(summary) == "completed: 3/3 G steps | fid=1.5, kl=non-finite"


@pytest.fixture
def nan_checkpoint() -> Path:
    """A checkpoint whose generators (raw and EMA) hold NaN weights, in a run marked diverged."""
    result = run("exp=gmm_ring", "steps=2", "out=toy", "model.ema.decay=0.9", "metrics.names=[]")
    ckpt = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in ckpt["state_dict"].items():
        if key.startswith("G") and value.is_floating_point():
            value.fill_(float("nan"))
    path = result.run_dir / "checkpoints" / "nan.ckpt"
    torch.save(ckpt, path)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    write_json(result.run_dir / "summary.json", {**summary, "status": "diverged", "diverged_at": 2})
    return path


def test_sample_refuses_non_finite_samples(nan_checkpoint, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nan\.ckpt.*non-finite samples.*status 'diverged'.*step 2"):
        sample_to_file(nan_checkpoint, 10, tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()
    out = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "sample", str(nan_checkpoint), "--n", "10", "--out", "y.npy"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and "non-finite samples" in out.stderr, out.stderr
    assert not (tmp_path / "y.npy").exists()


def test_json_text_writes_non_finite_numbers_as_null(tmp_path) -> None:
    data = {"a": math.inf, "b": [float("nan"), -math.inf, 1.5], "c": torch.tensor(2.5), "d": np.float32("inf")}
    write_json(tmp_path / "x.json", data)
    assert strict_json(tmp_path / "x.json") == {"a": None, "b": [None, None, 1.5], "c": 2.5, "d": None}
    assert json.loads(json_text({"e": np.float64(3.0)})) == {"e": 3.0}


def test_summary_and_evaluate_json_are_strict_json_with_an_infinite_kl(tmp_path) -> None:
    # two G steps from initialisation: no sample lies within 3 std of a mode, so the mode KL is infinite
    result = run("exp=gmm_ring", "steps=2", "out=kl", "metrics.names=[modes]", "metrics.n=200")
    s = strict_json(result.run_dir / "summary.json")
    assert s["final"]["modes/high_quality"] == 0 and s["final"]["modes/kl"] is None
    evaluate_checkpoint(result.run_dir / "checkpoints" / "last.ckpt", ["modes"], n=200, out=tmp_path / "e.json")
    e = strict_json(tmp_path / "e.json")
    assert e["values"]["modes/kl"] is None and e["values"]["modes/high_quality"] == 0

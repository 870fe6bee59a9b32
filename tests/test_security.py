"""Files given by a user (weights, checkpoints) are never unpickled beyond plain tensors: a file
that would run code when unpickled is refused unread, at every entry point."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_lightning.checkpoint import CheckpointError, read_checkpoint
from gan_lightning.evaluate import evaluate_checkpoint
from gan_lightning.metrics.features import FeatureError, InceptionLogits
from gan_lightning.sample import sample_to_file
from tests.helpers import run

NOT_PLAIN = "is not a plain weights file"


class Payload:
    """Unpickling this object runs code: it writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def crafted(path: Path, marker: Path, zip_format: bool = True) -> Path:
    """A weights file / checkpoint look-alike whose unpickling writes ``marker``."""
    blob = {"state_dict": {"w": torch.zeros(2)}, "gan_lightning": Payload(marker)}
    if zip_format:
        torch.save(blob, path)
    else:
        path.write_bytes(pickle.dumps(blob))
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran.txt"


@pytest.mark.parametrize("zip_format", [True, False])
def test_the_crafted_file_does_run_code_when_fully_unpickled(tmp_path, zip_format: bool) -> None:
    probe = tmp_path / "probe.txt"
    path = crafted(tmp_path / "probe.pt", probe, zip_format)
    if zip_format:
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert probe.read_text() == "ran"  # so the refusals below are real


@pytest.mark.parametrize("zip_format", [True, False])
def test_inception_score_weights_that_run_code_are_refused(tmp_path, marker, zip_format: bool) -> None:
    path = crafted(tmp_path / "weights.pth", marker, zip_format)
    with pytest.raises(FeatureError, match=rf"weights\.pth {NOT_PLAIN}.*exec"):
        InceptionLogits(path)
    assert not marker.exists()


def test_metrics_is_weights_in_a_training_config_is_refused(tmp_path, marker, mnist_root) -> None:
    path = crafted(tmp_path / "weights.pth", marker)
    with pytest.raises(FeatureError, match=NOT_PLAIN):
        run(
            "exp=quickstart",
            f"data.data_dir={mnist_root}",
            "data.download=false",
            "steps=1",
            "out=w",
            "metrics.names=[is]",
            f"metrics.is_weights={path}",
        )
    assert not marker.exists()


def test_evaluate_cli_refuses_is_weights_that_run_code(tmp_path, marker, mnist_root) -> None:
    result = run("exp=quickstart", f"data.data_dir={mnist_root}", "data.download=false", "steps=1", "out=e")
    path = crafted(tmp_path / "weights.pth", marker)
    out = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "evaluate", str(result.run_dir / "checkpoints" / "last.ckpt"),
         "--metrics", "is", "--n", "20", "--is-weights", str(path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and NOT_PLAIN in out.stderr, out.stderr
    assert not marker.exists()


def test_checkpoints_that_run_code_are_refused_by_every_command(tmp_path, marker) -> None:
    ckpt = crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match=rf"evil\.ckpt {NOT_PLAIN}.*exec"):
        read_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match=NOT_PLAIN):
        sample_to_file(ckpt, 4, tmp_path / "s.npy")
    with pytest.raises(CheckpointError, match=NOT_PLAIN):
        evaluate_checkpoint(ckpt, ["fid"], n=10)
    with pytest.raises(CheckpointError, match=NOT_PLAIN):
        run("exp=gmm_ring", "steps=2", f"resume={ckpt}", "out=r")
    raw = crafted(tmp_path / "raw.ckpt", marker, zip_format=False)
    with pytest.raises(CheckpointError, match=rf"raw\.ckpt {NOT_PLAIN}.*exec"):
        read_checkpoint(raw)
    out = subprocess.run(
        [sys.executable, "-m", "gan_lightning", "sample", str(ckpt), "--n", "4", "--out", str(tmp_path / "s.npy")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2 and f"evil.ckpt {NOT_PLAIN}" in out.stderr, out.stderr
    assert not marker.exists() and not (tmp_path / "s.npy").exists()


def inception_state_dict() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict of torch-fidelity's InceptionV3 (built without weights)."""
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None),
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"])
    return net.state_dict()


def test_plain_inception_score_weights_still_load_and_others_are_refused(tmp_path) -> None:
    pytest.importorskip("torch_fidelity")
    state = inception_state_dict()
    torch.save(state, tmp_path / "ok.pth")
    ex = InceptionLogits(tmp_path / "ok.pth")
    torch.testing.assert_close(ex.net.fc.weight, state["fc.weight"])
    logits, probs = ex(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 1008) and torch.allclose(probs.sum(1), torch.ones(2))
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(FeatureError, match=r"other\.pth do not fit torch-fidelity's InceptionV3"):
        InceptionLogits(tmp_path / "other.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(FeatureError, match=rf"list\.pth {NOT_PLAIN}.*state dict"):
        InceptionLogits(tmp_path / "list.pth")

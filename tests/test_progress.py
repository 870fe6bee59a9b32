"""Progress bars: tqdm on a terminal, a line per 10% of training in a log file, the env override,
and the long loops (reference statistics, classifier training) reporting through the helper."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import gan_lightning.progress as progress_mod
from gan_lightning.callbacks.progress import StepProgressBar
from gan_lightning.progress import ENV, progress, progress_enabled


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's environment decides nothing here."""
    for key in (ENV, "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_log_gets_a_line_per_tenth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gan_lightning.cli import main

    args = ["exp=gmm_ring", "steps=40", "log.every=1", f"out={tmp_path / 'r'}", "metrics.names=[]"]
    assert main(["train", *args, "log.interpolate=false", "log.sample_every=0"]) == 0
    err = capsys.readouterr().err  # pytest's capture is not a terminal: a log file
    lines = [line for line in err.splitlines() if "G step" in line]
    assert 5 <= len(lines) <= 12, err[-2000:]
    assert "\r" not in err
    assert lines[-1].startswith("gmm_ring: G step 40/40 (100%), ") and "G steps/s" in lines[-1]
    assert "d=" in lines[-1] and "g=" in lines[-1]


def test_helper_is_quiet_off_a_terminal_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    def disabled(**kw: Any) -> bool:
        with progress(total=3, desc="test", **kw) as bar:
            return bool(bar.disable)  # (close() sets disable)

    assert disabled()  # stderr is pytest's capture, not a terminal
    monkeypatch.setenv(ENV, "1")
    assert not disabled() and progress_enabled()
    assert disabled(verbose=False)  # a caller asked for silence
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP worker other than rank 0
    assert disabled()
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv(ENV, "0")
    assert disabled()
    monkeypatch.setattr("sys.stderr", Terminal())
    assert disabled()  # forced off even on a terminal
    monkeypatch.delenv(ENV)
    assert not disabled()  # a terminal by default
    assert disabled(verbose=False)


def step_bar_output(monkeypatch: pytest.MonkeyPatch, start: int, stop: int, steps: int = 25) -> str:
    """What StepProgressBar writes to stderr over G steps start+1..stop of a ``steps``-step run."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    module = SimpleNamespace(g_step=start, cfg=SimpleNamespace(exp="toy"))
    trainer = SimpleNamespace(is_global_zero=True, progress_bar_metrics={"d": torch.tensor(-0.5), "g": 0.25})
    cb = StepProgressBar(steps)
    cb.on_train_start(trainer, module)  # type: ignore[arg-type]
    for step in range(start + 1, stop + 1):
        module.g_step = step
        cb.on_train_batch_end(trainer, module, None, None, step)  # type: ignore[arg-type]
    cb.on_train_end(trainer, module)  # type: ignore[arg-type]
    return err.getvalue()


@pytest.mark.parametrize(
    "start, stop, n_lines, first, last",
    [
        (0, 25, 10, "toy: G step 3/25 (12%)", "toy: G step 25/25 (100%)"),
        (13, 25, 5, "toy: G step 15/25 (60%)", "toy: G step 25/25 (100%)"),  # resumed at 52%
        (0, 17, 7, "toy: G step 3/25 (12%)", "toy: G step 17/25 (68%)"),  # stopped early: where it stopped
    ],
)
def test_step_bar_lines(
    monkeypatch: pytest.MonkeyPatch, start: int, stop: int, n_lines: int, first: str, last: str
) -> None:
    lines = step_bar_output(monkeypatch, start, stop).splitlines()
    assert len(lines) == n_lines and lines[0].split(",")[0] == first and lines[-1].split(",")[0] == last
    assert lines[-1].endswith(", d=-0.500 g=0.250") and " G steps/s" in lines[-1]
    monkeypatch.setenv(ENV, "1")  # forced on: a tqdm bar, no lines
    out = step_bar_output(monkeypatch, start, stop)
    assert "G step " not in out and "toy G steps" in out and "\r" in out


def recording(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Any]:
    """Replace ``module.progress`` with the real helper that records the bars it makes."""
    bars: list[Any] = []

    def recorder(*args: Any, **kwargs: Any) -> Any:
        bars.append(progress_mod.progress(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(module, "progress", recorder)
    monkeypatch.setenv(ENV, "1")  # enabled, so that the bars count what they are told
    return bars


def test_reference_statistics_report_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from gan_lightning.metrics import reference

    bars = recording(monkeypatch, reference)
    images = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    ref = reference.compute_reference(images, None, lambda x: x.flatten(1)[:, :3], "key", batch_size=8, verbose=True)
    assert ref.n == 30 and len(bars) == 1
    assert bars[0].total == 30 and bars[0].n == 30 and bars[0].unit == "img"
    bars.clear()
    reference.compute_reference(images, None, lambda x: x.flatten(1)[:, :3], "key", batch_size=8)
    assert bars[0].total == 30 and bars[0].n == 0  # verbose=False: a disabled bar, which counts nothing


def test_classifier_training_reports_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from gan_lightning.metrics import classifier

    bars = recording(monkeypatch, classifier)
    g = torch.Generator().manual_seed(0)
    train = (torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(64) % 3)
    test = (train[0][:16], train[1][:16])
    classifier.train_classifier(train, test, "toy", epochs=2, batch_size=16)
    assert len(bars) == 1 and bars[0].total == 2 * (64 // 16) and bars[0].n == 8 and bars[0].unit == "batch"

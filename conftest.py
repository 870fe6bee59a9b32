"""Settings for the whole test run (tests/ and notebooks/): offline, small, isolated outputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# One thread per process: pytest-xdist runs 2 workers (and notebook kernels, subprocess runs) on
# 2 cores, and oversubscribed OpenMP threads slow CPU training several times over.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("NB_SMALL", "1")  # notebooks read it: a few steps instead of minutes of training
_scratch = Path(tempfile.gettempdir()) / f"gan_lightning_nb_{os.getuid()}"
os.environ.setdefault("NB_OUT", str(_scratch / "runs"))
os.environ.setdefault("GAN_LIGHTNING_CACHE", str(_scratch / "cache"))  # tests/ override it per test


def pytest_sessionstart(session: pytest.Session) -> None:
    """Notebook runs start fresh each session (a stale run would be resumed, not retrained)."""
    import shutil

    if os.environ["NB_OUT"] == str(_scratch / "runs") and not hasattr(session.config, "workerinput"):
        shutil.rmtree(_scratch / "runs", ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebooks share one worker (they reuse the cached domain classifier in turn). The slow
    quality tests (minutes each) and the notebooks (on a fresh machine the first one trains the
    classifier, ~7 minutes) come first, so pytest-xdist starts them early and the short tests
    fill the workers around them, instead of one long test running alone at the end."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("notebooks"))
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: collection order otherwise

"""Settings for the whole test run (tests/ and notebooks/): offline, small, isolated outputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("NB_SMALL", "1")  # notebooks read it: a few steps instead of minutes of training
_scratch = Path(tempfile.gettempdir()) / f"gan_lightning_nb_{os.getuid()}"
os.environ.setdefault("NB_OUT", str(_scratch / "runs"))
os.environ.setdefault("GAN_LIGHTNING_CACHE", str(_scratch / "cache"))  # tests/ override it per test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebooks share one worker (they reuse the cached domain classifier in turn)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("notebooks"))

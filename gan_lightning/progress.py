"""Progress bars for long loops: tqdm on a terminal, silent in a log file.

A bar is shown when stderr is a terminal (and this is the rank-zero process); in a log file
(nohup, a study's seed logs, CI) it is disabled, so a log never fills with one line per update.
``GAN_LIGHTNING_PROGRESS=1`` forces bars on, ``GAN_LIGHTNING_PROGRESS=0`` forces them off.
Imports nothing heavy: tqdm, os and sys only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

ENV = "GAN_LIGHTNING_PROGRESS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def forced() -> bool | None:
    """``GAN_LIGHTNING_PROGRESS``: True (forced on), False (forced off) or None (not set)."""
    value = os.environ.get(ENV, "").strip().lower()
    return True if value in _ON else False if value in _OFF else None


def is_terminal() -> bool:
    """Whether stderr (as it is now: pytest and notebooks replace it) is a terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def progress_enabled(verbose: bool = True) -> bool:
    """Whether a bar is shown: never when ``verbose`` is False nor on a DDP rank other than 0;
    else as ``GAN_LIGHTNING_PROGRESS`` forces it, else only when stderr is a terminal."""
    from gan_lightning.distributed import launched_as_rank_zero

    if not verbose or not launched_as_rank_zero():
        return False
    force = forced()
    return is_terminal() if force is None else force


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str,
    unit: str = "it",
    leave: bool = False,
    verbose: bool = True,
    **kwargs: Any,
) -> tqdm[Any]:
    """A tqdm bar on stderr over ``iterable`` (or updated by hand up to ``total``); disabled, so
    silent and nearly free, unless :func:`progress_enabled` (``kwargs`` go to tqdm)."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        disable=not progress_enabled(verbose),
        **kwargs,
    )

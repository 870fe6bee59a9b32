"""`gan-lightning bench` and `make bench` run the same benchmark scripts: every one in benchmarks/."""

from __future__ import annotations

import re
from pathlib import Path

from gan_lightning.cli import BENCHMARKS

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_and_make_bench_run_every_benchmark_script_in_one_order() -> None:
    scripts = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(BENCHMARKS) == scripts
    recipe = (ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"benchmarks/bench_(\w+)\.py", recipe) == list(BENCHMARKS)

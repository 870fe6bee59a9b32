"""metrics.csv in the run directory: one row per logged step, every scalar a column.

Unlike Lightning's CSVLogger it keeps the rows of earlier sessions of a resumed run (dropping
only rows past the resume point) and writes straight into the run directory.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class MetricsCSV(Logger):
    def __init__(self, run_dir: Path, resume_step: int | None = None):
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["step"]
        self._dirty = False
        if resume_step is not None:  # keep what earlier sessions logged up to the checkpoint
            for row in read_rows(self.path):
                if row.get("step") not in (None, "") and int(float(row["step"])) <= resume_step:
                    self._add({k: v for k, v in row.items() if v not in (None, "")})
        elif self.path.is_file():
            self.path.unlink()

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    def _add(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        if self.rows and str(self.rows[-1].get("step")) == str(row.get("step")):
            self.rows[-1].update(row)  # several log calls at one step share a row
        else:
            self.rows.append(dict(row))

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._add({"step": step, **{k: float(v) for k, v in metrics.items()}})
        self._dirty = True
        self.save()  # small files: rewriting keeps the file whole and readable at any moment

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is config.yaml in the run directory

    @rank_zero_only
    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(self.rows)
            tmp.replace(self.path)
        except BaseException:  # e.g. a full disk: keep the last whole file, leave no temporary one
            tmp.unlink(missing_ok=True)
            raise
        self._dirty = False

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()

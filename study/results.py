"""THE Parquet schema of per-epoch results (one place), and atomic per-trial files.

One row per trial per epoch (DESIGN.md, "Parquet"); fractions in [0, 1], not percent. A trial's
rows live in one file, `<dir>/<trial_id>.parquet`, rewritten atomically (temporary file, then
rename) on every epoch so `pandas.read_parquet(dir)` works while a study runs. Rows are keyed on
(trial_id, epoch): a re-reported epoch replaces its row, so rows are never duplicated.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1

STATUS_OK, STATUS_DIVERGED, STATUS_ERROR = "ok", "diverged", "error"

# (column, arrow type, meaning). Metric columns are null on "diverged"/"error" rows.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("study", pa.string(), "study name ('trial' for `study trial`)"),
    ("trial_id", pa.string(), "trial id, unique within a study"),
    ("dataset", pa.string(), "dataset name"),
    ("model", pa.string(), "model name"),
    ("method", pa.string(), "method name"),
    ("pretrained", pa.bool_(), "ImageNet-pretrained backbone"),
    ("alpha", pa.float64(), "Beta(α, α) parameter; null where the method has none"),
    ("margin", pa.float64(), "MIT's Δλ margin; null where the method has none or constraint off"),
    ("seed", pa.int64(), "training seed (the split seed is in config_json)"),
    ("epoch", pa.int64(), "1-based epoch"),
    ("epochs", pa.int64(), "planned epochs"),
    ("status", pa.string(), "ok | diverged | error"),
    ("message", pa.string(), "why a trial diverged or errored; empty when ok"),
    ("lr", pa.float64(), "learning rate used this epoch"),
    ("train_loss", pa.float64(), "mean training loss of the epoch"),
    ("train_acc", pa.float64(), "training accuracy (MIT: of the decoupled out_a)"),
    ("val_acc", pa.float64(), "validation accuracy"),
    ("val_nll", pa.float64(), "validation NLL, raw logits"),
    ("val_ece", pa.float64(), "validation ECE, raw logits"),
    ("val_cal_ece", pa.float64(), "validation ECE after TS, two-fold cross-fitted T"),
    ("test_acc", pa.float64(), "test accuracy"),
    ("test_nll", pa.float64(), "test NLL, raw logits"),
    ("test_ece", pa.float64(), "test ECE, raw logits"),
    ("test_cal_ece", pa.float64(), "test ECE of logits / T, T fitted on validation"),
    ("test_opt_ece", pa.float64(), "test ECE of logits / T*, T* fitted on test (a lower bound)"),
    ("test_conf", pa.float64(), "mean max-softmax confidence on test, raw logits"),
    ("test_brier", pa.float64(), "Brier score on test, raw logits"),
    ("temperature", pa.float64(), "T fitted on validation"),
    ("opt_temperature", pa.float64(), "T* fitted on test"),
    ("epoch_seconds", pa.float64(), "wall seconds of the epoch (training and evaluation)"),
    ("samples_per_second", pa.float64(), "training samples per second"),
    ("device", pa.string(), "torch device"),
    ("hostname", pa.string(), "host that ran the epoch"),
    ("node_id", pa.string(), "Ray node id; empty outside Ray"),
    ("config_json", pa.string(), "the full TrialConfig as JSON"),
    ("schema_version", pa.int64(), "version of this schema"),
]
SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype, _ in COLUMNS])
COLUMN_NAMES = [name for name, _, _ in COLUMNS]


def to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows (missing keys → null) as an Arrow table of exactly SCHEMA."""
    rows = list(rows)
    unknown = {k for r in rows for k in r} - set(COLUMN_NAMES)
    if unknown:
        raise KeyError(f"columns not in the results schema: {sorted(unknown)}")
    return pa.Table.from_pylist(
        [{name: r.get(name) for name in COLUMN_NAMES} for r in rows], schema=SCHEMA
    )


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TrialRows:
    """The rows of one trial, keyed by epoch, persisted to one Parquet file on every change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict[int, dict[str, Any]] = {}
        if self.path.exists():
            for row in pq.read_table(self.path).to_pylist():
                self.rows[row["epoch"]] = row

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]`, then rewrite the file atomically."""
        self.rows[int(row["epoch"])] = {**row, "schema_version": SCHEMA_VERSION}
        write_atomic(to_table(self.rows[e] for e in sorted(self.rows)), self.path)

    @property
    def last_epoch(self) -> int:
        ok = [e for e, r in self.rows.items() if r.get("status") == STATUS_OK]
        return max(ok, default=0)

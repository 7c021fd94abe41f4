"""THE Parquet schema of per-epoch results (one place): columns, statuses, file names.

One row per trial per epoch (docs/study.md "Results"); fractions in [0, 1], not percent. Rows
are keyed on (trial_id, epoch). The bottom of the results layer: the training side
(study.train.identity) and every results module import it, and it imports only pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

# 1: v0.1. 2: + constraint; + test_ace/test_cw_ece/test_smece and their after-TS twins (issue
# "beyond the paper"); + gpu_ids (issue 8); `dataset` holds `dataset.label` when one is set.
# Files of version 1 still read (the new columns come back null).
SCHEMA_VERSION = 2

STATUS_OK, STATUS_DIVERGED, STATUS_ERROR = "ok", "diverged", "error"
__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "COMPACTED",
    "IDENTITY",
    "NO_MESSAGE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SHORTLIST",
    "STATUS_DIVERGED",
    "STATUS_ERROR",
    "STATUS_OK",
    "last_line",
    "to_table",
]

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
    ("constraint", pa.bool_(), "MIT's margin constraint on (Algorithm line 6); null for others"),
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
    ("test_ace", pa.float64(), "adaptive (equal-mass bins) ECE on test, raw logits"),
    ("test_cal_ace", pa.float64(), "adaptive ECE of logits / T, T fitted on validation"),
    ("test_cw_ece", pa.float64(), "classwise ECE (Kull et al., 2019) on test, raw logits"),
    ("test_cal_cw_ece", pa.float64(), "classwise ECE of logits / T, T fitted on validation"),
    ("test_smece", pa.float64(), "smooth ECE (Błasiok & Nakkiran, 2023) on test, raw logits"),
    ("test_cal_smece", pa.float64(), "smooth ECE of logits / T, T fitted on validation"),
    ("test_conf", pa.float64(), "mean max-softmax confidence on test, raw logits"),
    ("test_brier", pa.float64(), "Brier score on test, raw logits"),
    ("test_bin_count", pa.list_(pa.int64()), "reliability: test samples per ECE bin, raw"),
    ("test_bin_acc", pa.list_(pa.float64()), "reliability: accuracy per bin, raw (NaN if empty)"),
    ("test_bin_conf", pa.list_(pa.float64()), "reliability: mean confidence per bin, raw"),
    ("test_cal_bin_count", pa.list_(pa.int64()), "reliability: samples per bin after TS"),
    ("test_cal_bin_acc", pa.list_(pa.float64()), "reliability: accuracy per bin after TS"),
    ("test_cal_bin_conf", pa.list_(pa.float64()), "reliability: mean confidence per bin after TS"),
    ("temperature", pa.float64(), "T fitted on validation"),
    ("opt_temperature", pa.float64(), "T* fitted on test"),
    ("epoch_seconds", pa.float64(), "wall seconds of the epoch (training and evaluation)"),
    ("samples_per_second", pa.float64(), "training samples per second"),
    ("device", pa.string(), "torch device"),
    ("hostname", pa.string(), "host that ran the epoch"),
    ("node_id", pa.string(), "Ray node id; empty outside Ray"),
    ("gpu_ids", pa.string(), "GPU ids Ray assigned the trial (comma-separated); empty if none"),
    ("config_json", pa.string(), "the full TrialConfig as JSON"),
    ("schema_version", pa.int64(), "version of this schema"),
]
COMPACTED = "compacted.parquet"  # a results directory's merged file (study.results.compact)
SHORTLIST = "_shortlist.parquet"  # its rows whose bins the analysis reads (study.results.compact)
# the columns naming what a trial trains (study.train.identity): also an error row's identity
IDENTITY = (
    "dataset",
    "model",
    "method",
    "pretrained",
    "alpha",
    "margin",
    "constraint",
    "seed",
    "epochs",
    "config_json",
)
NO_MESSAGE = "the trial failed without an error message"  # an error row whose error file is empty
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


def last_line(text: str) -> str:
    """The last non-blank line of an error file's text (e.g. "ValueError: boom"): the message
    of an error row; NO_MESSAGE when there is none."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else NO_MESSAGE

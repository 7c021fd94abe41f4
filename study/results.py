"""THE Parquet schema of per-epoch results (one place), and atomic per-trial files.

One row per trial per epoch (DESIGN.md, "Parquet"); fractions in [0, 1], not percent. A trial's
rows live in one file, `<dir>/<trial_id>.parquet`, rewritten atomically (temporary file, then
rename) on every epoch so `pandas.read_parquet(dir)` works while a study runs. Rows are keyed on
(trial_id, epoch): a re-reported epoch replaces its row, so rows are never duplicated.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# 1: v0.1. 2: + constraint; + test_ace/test_cw_ece/test_smece and their after-TS twins (issue
# "beyond the paper"); + gpu_ids (issue 8); `dataset` holds `dataset.label` when one is set.
# Files of version 1 still read (the new columns come back null).
SCHEMA_VERSION = 2

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
COMPACTED = "compacted.parquet"  # a results directory's merged file (study.compact)
SHORTLIST = "_shortlist.parquet"  # the rows of it the analysis reads the bins of (study.compact)
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


def write_atomic(table: pa.Table, path: Path, filesystem: pafs.FileSystem | None = None) -> None:
    """Write `table` to `path` via a temporary file in the same directory and a rename (the
    file's mode follows the umask, like every other file of a study); on a remote `filesystem`
    (study.storage: S3 and the like) with one upload, which an object store makes visible whole
    or not at all."""
    if filesystem is not None:
        pq.write_table(table, str(path), filesystem=filesystem)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TrialRows:
    """The rows of one trial, keyed by epoch, persisted to one Parquet file on every change."""

    def __init__(self, path: Path, filesystem: pafs.FileSystem | None = None):
        self.path, self.filesystem = Path(path), filesystem
        self.rows: dict[int, dict[str, Any]] = {}
        if filesystem is not None:  # remote storage: an upload is whole or absent
            if _exists(self.path, filesystem):
                for row in pq.read_table(str(self.path), filesystem=filesystem).to_pylist():
                    self.rows[row["epoch"]] = row
        elif self.path.exists():
            from study import quarantine  # a damaged file: set aside, rows from the checkpoint

            why = quarantine.problem(self.path)
            if why is not None:
                quarantine.set_aside(self.path, why)
            found = (
                quarantine.checkpoint_rows(self.path.parent.parent, self.path.stem)
                if why
                else pq.read_table(self.path).to_pylist()
            )
            for row in found:
                self.rows[row["epoch"]] = row

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]`, then rewrite the file atomically."""
        self.rows[int(row["epoch"])] = {**row, "schema_version": SCHEMA_VERSION}
        rows = to_table(self.rows[e] for e in sorted(self.rows))
        write_atomic(rows, self.path, self.filesystem)

    @property
    def last_epoch(self) -> int:
        ok = [e for e, r in self.rows.items() if r.get("status") == STATUS_OK]
        return max(ok, default=0)


def _exists(path: Path, filesystem: pafs.FileSystem | None) -> bool:
    if filesystem is None:
        return path.exists()
    return filesystem.get_file_info(str(path)).type != pafs.FileType.NotFound


def _parquet_files(directory: Path, filesystem: pafs.FileSystem | None) -> list[Path]:
    """The `*.parquet` files directly in `directory` (local, or on a remote filesystem)."""
    if filesystem is None:
        return sorted(Path(directory).glob("*.parquet"))
    found = filesystem.get_file_info(pafs.FileSelector(str(directory), allow_not_found=True))
    return sorted(Path(f.path) for f in found if f.is_file and f.path.endswith(".parquet"))


def trial_columns(cfg: Any) -> dict[str, Any]:
    """The columns naming what a trial trains (a TrialConfig's identity), with α and the margin
    null where its method has none (DESIGN.md, "Parquet"): also the identity of an error row."""
    from study import methods

    m = methods.get(cfg.method.name).normalise(cfg.method)
    return {
        "dataset": cfg.dataset.label or cfg.dataset.name,
        "model": cfg.model.name,
        "method": m.name,
        "pretrained": cfg.model.pretrained,
        "alpha": m.alpha,
        "margin": m.margin,
        "constraint": m.constraint if methods.get(m.name).takes_margin else None,
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "config_json": cfg.to_json(),
    }


def error_message(trial: Any) -> str:
    """The last line of a Tune trial's error file (e.g. "ValueError: boom"), or a generic line."""
    path = getattr(trial, "error_file", None)
    text = Path(path).read_text() if path and Path(path).exists() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed without an error message"


class ResultsWriter:
    """The driver-side Tune callback of a study (mixed with `ray.tune.Callback` in study.tune,
    so this module needs no Ray): every reported epoch's row → `<dir>/<trial_id>.parquet`.

    Rows are keyed on (trial_id, epoch) and flushed on every report, so an epoch redone after a
    restore replaces its row and nothing is lost when the driver dies. A trial that errors gets
    one more row, status "error", at the epoch it failed in, with the error's last line.
    """

    def __init__(
        self, directory: Path, study: str, spec: Any, filesystem: pafs.FileSystem | None = None
    ):
        self.directory, self.study, self.spec = Path(directory), study, spec
        self.filesystem = filesystem  # None: local; else where `directory` is (study.storage)
        self._trials: dict[str, TrialRows] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_trials": {}}  # a restored writer reads the files again

    def rows(self, trial_id: str) -> TrialRows:
        if trial_id not in self._trials:
            path = self.directory / f"{trial_id}.parquet"
            self._trials[trial_id] = TrialRows(path, self.filesystem)
        return self._trials[trial_id]

    def put(self, trial_id: str, row: dict[str, Any]) -> None:
        self.rows(trial_id).put({**row, "study": self.study, "trial_id": trial_id})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if result.get("row"):
            self.put(trial.trial_id, result["row"])

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        rows = self.rows(trial.trial_id)
        try:
            identity = trial_columns(self.spec.trial_config(trial.config))
        except ValueError:  # the config itself is what failed
            identity = {}
        epoch = max(rows.rows, default=0) + 1
        message = error_message(trial)
        self.put(
            trial.trial_id, {**identity, "epoch": epoch, "status": STATUS_ERROR, "message": message}
        )

    def on_experiment_end(self, trials: list, **info) -> None:
        """Set aside files of trials the study no longer has (started just before a driver
        crash, then replaced on resume), so the results hold exactly the study's trials."""
        known = {t.trial_id for t in trials}
        fs = self.filesystem or pafs.LocalFileSystem()
        for path in _parquet_files(self.directory, self.filesystem):
            if path.stem not in known and path.name not in (COMPACTED, SHORTLIST):
                target = self.directory.parent / "orphaned_results" / path.name
                fs.create_dir(str(target.parent), recursive=True)
                fs.move(str(path), str(target))

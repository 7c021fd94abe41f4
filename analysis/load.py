"""Read per-epoch Parquet results (docs/study.md, "Results") into tidy pandas DataFrames.

The schema is `study.results` (one place) and the reading of files is `study.results.read`
(shared with the study's end summary and the compaction): a study directory, its `results/`,
one file, or any URI pyarrow's filesystems open (`s3://bucket/study`); the compacted file
first, then the per-trial files; bad or foreign files skipped and named (`Results.skipped`),
missing columns as nulls.

Only public engines read: many local per-trial files in polars scans, a compacted file, a
URI, or files polars doubts by pyarrow's Parquet reader, file by file, checked one by one
(benchmarks/bench_analysis.py --compare measures pyarrow.dataset, DuckDB and polars; docs/
analysis.md says why these). Only the columns asked for are read, strings as dictionaries
(pandas categoricals). The reliability-bin list columns are wanted at one row per trial: per-
trial files are scanned with them a batch at a time and only each batch's chosen rows kept;
a compacted file's come from its shortlist (each trial's last and best-val_acc rows,
study.results.compact); any other row, from the files (and row groups) holding it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis import ece_bias, variants
from study.results import files as results_files
from study.results import read as results_read
from study.results import rows as results_rows
from study.results.files import ResultsError
from study.results.schema import COLUMN_NAMES, COLUMNS, STATUS_OK

EPOCHS = ("last", "all", "best")
TRIAL_KEYS = ["study", "trial_id"]
LABEL_KEYS = ["dataset", *variants.VARIANT_KEYS, *variants.BACKBONE_KEYS]
SELECTION_KEYS = [*TRIAL_KEYS, "epoch", "status"]
LIST_COLUMNS = [name for name, dtype, _ in COLUMNS if pa.types.is_list(dtype)]
METRIC_COLUMNS = [
    name for name in COLUMN_NAMES if name.startswith(("val_", "test_")) and name not in LIST_COLUMNS
]

__all__ = ["Results", "ResultsError", "aggregate", "load_results", "read_results", "read_rows"]


@dataclass(frozen=True)
class Results:
    """What `read_results` read: the files, the selected rows, every epoch (if asked), and the
    files skipped as unreadable or not results, with why."""

    files: list[str]
    selected: pd.DataFrame
    every: pd.DataFrame | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def result_files(path: str | os.PathLike) -> list[str]:
    """The results files `load_results(path)` reads, in its order (the compacted file first)."""
    return results_files.locate(path)[1]


def load_results(
    path: str | os.PathLike,
    epochs: str = "last",
    *,
    columns: Sequence[str] | None = None,
    best_by: str = "val_acc",
) -> pd.DataFrame:
    """The results under `path` as a tidy DataFrame: contract columns + `variant` + `backbone`.

    epochs:
      - "last": each trial's last reported epoch (its `status` says whether it finished ok);
      - "all": every epoch of every trial;
      - "best": each trial's ok epoch with the best validation metric `best_by` (never a test
        metric: choosing the epoch on test would leak test labels into the reported number);
        ties go to the earliest epoch, and a trial without ok epochs keeps its last row.
    columns: the contract columns to read (default all); the keys needed for the labels and the
    epoch choice are always read. `variant` ("ERM", "Mixup (α=0.1)", "MIT-A (Δλ>0.5)", …) and
    `backbone` (model, with "†" when pretrained) are ordered categoricals in the tables' order;
    other strings are categoricals too. Metric columns are null on "diverged" and "error" rows,
    so means skip those rows. List columns (reliability bins) are numpy arrays per row (None
    where null), read at the chosen rows only. Rows come grouped by trial in file order, epochs
    ascending; a (trial, epoch) reported twice counts once, with its last row (a per-trial
    file's over the compacted file's). Files that are not results are skipped with a warning.
    Raises ResultsError (a user error) when `path` holds no results.
    """
    return read_results(path, epochs, columns=columns, best_by=best_by).selected


def read_results(
    path: str | os.PathLike,
    epochs: str = "last",
    *,
    columns: Sequence[str] | None = None,
    every: Sequence[str] | None = None,
    best_by: str = "val_acc",
    threads: int | None = None,
) -> Results:
    """`load_results(path, epochs, columns=…)` and, when `every` names columns, also every
    epoch's rows of those columns (no list columns), from one read of each file.

    `threads`: files read at once (default: the CPU count, at most 8, on a local disk; 32 on
    object storage: study.results.files.io_threads). Read again when a compaction changed the
    files meanwhile (study.results.read.settled).
    """
    read = functools.partial(_read_results, path, epochs, columns, every, best_by, threads)
    return results_read.settled(path, read)


def _read_results(
    path: str | os.PathLike,
    epochs: str,
    columns: Sequence[str] | None,
    every: Sequence[str] | None,
    best_by: str,
    threads: int | None,
) -> Results:
    if epochs not in EPOCHS:
        raise ValueError(f"epochs must be one of {', '.join(EPOCHS)}; got {epochs!r}")
    columns = _known(COLUMN_NAMES if columns is None else columns)
    keys = [*SELECTION_KEYS, *([_validation_metric(best_by)] if epochs == "best" else [])]
    selected = _in_order({*columns, *keys, *LABEL_KEYS})
    wide = _in_order({*_known(every or []), *SELECTION_KEYS, *LABEL_KEYS}) if every else []
    if set(wide) & set(LIST_COLUMNS):
        raise ValueError(f"list columns are read at the selected rows only, not {every}")
    lists = [c for c in selected if c in LIST_COLUMNS]
    scalars = _in_order({*selected, *wide} - set(LIST_COLUMNS))

    def choose(batch: pa.Table) -> np.ndarray:  # each batch's choice: most often the choice
        return _select_rows(_trial_codes(batch), batch, epochs, best_by)

    keep = results_read.Keep(lists, choose) if lists and epochs != "all" else None
    read = results_read.read(path, scalars, threads, dictionary=True, keep=keep)
    table = read.table
    if not len(table):
        raise ResultsError(f"no results in {path}: the Parquet files hold no rows")
    trial = _trial_codes(table)
    rows = _select_rows(trial, table, epochs, best_by)
    chosen = table.select([c for c in selected if c not in lists]).take(pa.array(rows))
    if lists:
        bins = results_rows.read_rows(read, lists, rows)
        for name in lists:
            chosen = chosen.append_column(name, bins[name])
    frames = [_frame(chosen.select(selected))]
    if wide:
        order = rows if epochs == "all" else _select_rows(trial, table, "all", best_by)
        same = len(order) == len(table) and bool((np.diff(order) == 1).all())
        frames.append(_frame(table.select(wide) if same else table.select(wide).take(order)))
    return Results(read.files, frames[0], frames[1] if wide else None, read.skipped)


def read_rows(path: str | os.PathLike, columns: Sequence[str], rows: np.ndarray) -> pa.Table:
    """`columns` at the row positions `rows` (over the good files in order, as `read_results`
    reads them), reading only the files that hold them; absent columns as nulls."""
    read = results_read.read(path, ["epoch"])
    return results_rows.read_rows(read, _known(columns), np.asarray(rows, dtype=np.int64))


def _known(columns: Sequence[str]) -> list[str]:
    unknown = sorted(set(columns) - set(COLUMN_NAMES))
    if unknown:
        raise ValueError(f"not result columns: {unknown}; valid: {', '.join(COLUMN_NAMES)}")
    return list(columns)


def _in_order(columns: set[str]) -> list[str]:
    return [c for c in COLUMN_NAMES if c in columns]


DERIVED = ("test_cal_ece_debiased", "test_cal_ece_floor")  # from the bins (analysis.ece_bias)


def _frame(table: pa.Table) -> pd.DataFrame:
    """The rows as pandas with `variant` and `backbone`, and where the after-TS bins were read
    the debiased calibrated ECE and its noise floor (`DERIVED`, analysis.ece_bias)."""
    df = table.to_pandas()
    df["variant"] = variants.variant_column(df)
    df["backbone"] = variants.backbone_column(df)
    if f"{ece_bias.STAGE}count" in df:
        df[DERIVED[0]], df[DERIVED[1]] = ece_bias.per_row(df)
    return df


def _validation_metric(best_by: str) -> str:
    if not best_by.startswith("val_"):
        raise ValueError(
            f"best_by must be a validation metric (val_*), not {best_by!r}: "
            "choosing the epoch on the test split would overstate test results"
        )
    variants.get_metric(best_by)
    return best_by


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Dictionary indices of a dictionary-encoded column, nulls as one more code."""
    encoded = column.chunk(0) if column.num_chunks else pa.array([], column.type)
    return encoded.indices.fill_null(len(encoded.dictionary)).to_numpy().astype(np.int64)


def _trial_codes(table: pa.Table) -> np.ndarray:
    """0, 1, 2, … per distinct (study, trial_id) in order of first appearance."""
    study, trial = _codes(table["study"]), _codes(table["trial_id"])
    return pd.factorize(study * (int(trial.max(initial=0)) + 2) + trial)[0].astype(np.int64)


def _choose(
    trial: np.ndarray,
    epoch: np.ndarray,
    epochs: str,
    ok: np.ndarray | None = None,
    score: np.ndarray | None = None,
    best_by: str | None = None,
) -> np.ndarray:
    """Row positions of the chosen epochs, grouped by trial (codes in order of appearance) and
    sorted by epoch; a duplicated (trial, epoch) keeps its last row. For "best", `ok` and
    `score` (best_by's values, NaN where null) of every row. Integer keys and numpy sorts (a
    no-op check when the rows are already in order) keep this fast on millions of rows."""
    epoch = epoch.astype(np.int64)
    key = trial * (int(epoch.max(initial=0)) + 1) + epoch
    order = np.arange(len(key)) if (np.diff(key) > 0).all() else np.argsort(key, kind="stable")
    order = order[np.r_[key[order][1:] != key[order][:-1], True]]  # duplicates: last wins
    if epochs == "all":
        return order
    if epochs == "best":
        sign = 1.0 if variants.get_metric(best_by).higher_is_better else -1.0
        usable = ok[order] & ~np.isnan(score[order])
        ranked = np.where(usable, sign * score[order], -np.inf)
        e = epoch[order]
        order = order[np.lexsort((np.where(usable, -e, e), ranked, trial[order]))]
    last_of_trial = np.r_[trial[order][1:] != trial[order][:-1], True]
    return order[last_of_trial]  # by trial (order of first appearance), as "all" is


def _select_rows(trial: np.ndarray, table: pa.Table, epochs: str, best_by: str) -> np.ndarray:
    """`_choose` over the columns read (see load_results)."""
    epoch = pc.fill_null(table["epoch"], 0).to_numpy()
    ok = score = None
    if epochs == "best":
        status = table["status"].chunk(0)  # dictionary-encoded
        is_ok = pc.equal(status.dictionary, STATUS_OK).to_numpy(zero_copy_only=False)
        ok = np.r_[is_ok, False][_codes(table["status"])]
        score = pc.fill_null(table[best_by], np.nan).to_numpy()
    return _choose(trial, epoch, epochs, ok, score, best_by)


def aggregate(
    df: pd.DataFrame, metrics: Sequence[str] | None = None, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean, std and n over seeds of each metric, per dataset, backbone and variant.

    `by` defaults to (dataset, backbone, variant), plus `epoch` when `df` holds several epochs
    of a trial (load_results(..., epochs="all")). Only ok rows count; `n` is the number of
    trials averaged. Columns are a MultiIndex (metric, "mean" | "std" | "n").
    """
    metrics = [m for m in (metrics or METRIC_COLUMNS) if m in df.columns]
    if by is None:
        several = df.duplicated([*TRIAL_KEYS]).any()
        by = ["dataset", "backbone", "variant", *(["epoch"] if several else [])]
    ok = df[df["status"] == STATUS_OK]
    stats = ok.groupby(list(by), observed=True)[metrics].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}, level=1)

"""Read per-epoch Parquet results (DESIGN.md, "Parquet") into a tidy pandas DataFrame.

The schema is `study.results` (one place): this module never lists result columns itself. Only
the requested columns are read (Arrow projection), string columns come back dictionary-encoded
(pandas categoricals), and the epoch selection is a sort and a `drop_duplicates` over a few key
columns, so millions of rows load in seconds. List columns (the reliability bins) are read after
the selection, one file at a time and kept only at the chosen rows, so one row per trial of
them costs no more memory than the rows themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from analysis import variants
from study.results import COLUMN_NAMES, COLUMNS, SCHEMA_VERSION, STATUS_OK

EPOCHS = ("last", "all", "best")
TRIAL_KEYS = ["study", "trial_id"]
LABEL_KEYS = ["dataset", *variants.VARIANT_KEYS, *variants.BACKBONE_KEYS]
SELECTION_KEYS = [*TRIAL_KEYS, "epoch", "status"]
STRING_COLUMNS = [name for name, dtype, _ in COLUMNS if pa.types.is_string(dtype)]
READ_SCHEMA = pa.schema(
    [
        pa.field(name, pa.dictionary(pa.int32(), pa.string()) if name in STRING_COLUMNS else t)
        for name, t, _ in COLUMNS
    ]
)
LIST_COLUMNS = [name for name, dtype, _ in COLUMNS if pa.types.is_list(dtype)]
METRIC_COLUMNS = [
    name for name in COLUMN_NAMES if name.startswith(("val_", "test_")) and name not in LIST_COLUMNS
]


class ResultsError(ValueError):
    """The path holds no results of this schema: a user error, reported in one line."""


def result_files(path: str | Path) -> list[Path]:
    """The `*.parquet` files of a results directory (or the one file given); hidden ones skipped.

    Subdirectories are not searched, so a report written beside the results is never read back.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ResultsError(f"no results at {path}: no such file or directory")
    files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise ResultsError(f"no results in {path}: it holds no .parquet files")
    return files


def check_results(path: str | Path) -> list[Path]:
    """The results files under `path` after checking their schema version (one cheap column);
    ResultsError otherwise."""
    read_table(path, [])
    return result_files(path)


def read_table(path: str | Path, columns: Sequence[str]) -> pa.Table:
    """The named contract columns of every results file, after checking the schema version."""
    files = result_files(path)
    dataset = ds.dataset(
        [str(f) for f in files],
        schema=READ_SCHEMA,
        format=ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=STRING_COLUMNS)
        ),
    )
    wanted = list(dict.fromkeys([*columns, "schema_version"]))
    try:
        table = dataset.to_table(columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as err:
        first_line = str(err).strip().splitlines()[0]
        raise ResultsError(f"not results of schema version {SCHEMA_VERSION}: {first_line}") from err
    _check_version(dataset, table)
    return table


def _check_version(dataset: ds.Dataset, table: pa.Table) -> None:
    versions = pd.unique(table["schema_version"].to_numpy(zero_copy_only=False))
    if len(table) and set(versions) <= {SCHEMA_VERSION}:
        return
    if not len(table):
        raise ResultsError("no results: the Parquet files hold no rows")
    bad = ~(ds.field("schema_version") == SCHEMA_VERSION) | ds.field("schema_version").is_null()
    first = dataset.to_table(columns=["schema_version", "__filename"], filter=bad).slice(0, 1)
    name, version = first["__filename"][0].as_py(), first["schema_version"][0].as_py()
    found = "no schema_version" if version is None else f"schema version {version}"
    raise ResultsError(
        f"{name} is not a results file of schema version {SCHEMA_VERSION} ({found}); "
        "regenerate it or use the analysis of its version"
    )


def load_results(
    path: str | Path,
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
    `backbone` (model, with "†" when pretrained) are ordered categoricals in the tables' order.
    Metric columns are null on "diverged" and "error" rows, so means skip those rows. List
    columns (reliability bins) are numpy arrays per row (None where null), read only at the
    chosen rows (`read_rows`).
    Raises ResultsError (a user error) when `path` holds no results of this schema version.
    """
    if epochs not in EPOCHS:
        raise ValueError(f"epochs must be one of {', '.join(EPOCHS)}; got {epochs!r}")
    columns = list(COLUMN_NAMES if columns is None else columns)
    unknown = sorted(set(columns) - set(COLUMN_NAMES))
    if unknown:
        raise ValueError(f"not result columns: {unknown}; valid: {', '.join(COLUMN_NAMES)}")
    keys = [*SELECTION_KEYS, *([_validation_metric(best_by)] if epochs == "best" else [])]
    needed = [c for c in COLUMN_NAMES if c in {*columns, *keys, *LABEL_KEYS}]
    table = read_table(path, [c for c in needed if c not in LIST_COLUMNS])
    rows = _select_rows(table.select(keys).to_pandas(), epochs, best_by)
    in_order = len(rows) == len(table) and bool((np.diff(rows) == 1).all())
    df = (table if in_order else table.take(pa.array(rows))).to_pandas()  # files are sorted
    lists = [c for c in needed if c in LIST_COLUMNS]
    if lists:
        df[lists] = read_rows(path, lists, rows).to_pandas()
        df = df[[c for c in COLUMN_NAMES if c in df]]  # the schema's order
    df["variant"] = variants.variant_column(df)
    df["backbone"] = variants.backbone_column(df)
    return df


def read_rows(path: str | Path, columns: Sequence[str], rows: np.ndarray) -> pa.Table:
    """`columns` at the row positions `rows` (over the files in order, as `read_table` reads
    them), one file at a time: peak memory is one file's columns plus the rows kept. A column a
    file lacks (written before the schema had it) reads as nulls."""
    schema = pa.schema([READ_SCHEMA.field(c) for c in columns])
    order = np.argsort(rows, kind="stable")
    ascending = rows[order]
    parts, start = [schema.empty_table()], 0
    for file in result_files(path):
        reader = pq.ParquetFile(file)
        stop = start + reader.metadata.num_rows
        local = ascending[np.searchsorted(ascending, start) : np.searchsorted(ascending, stop)]
        local = local - start
        if len(local):
            parts.append(_read_columns(reader, schema).take(pa.array(local)))
        start = stop
    return pa.concat_tables(parts).combine_chunks().take(pa.array(np.argsort(order)))


def _read_columns(reader: pq.ParquetFile, schema: pa.Schema) -> pa.Table:
    """The columns of `schema` from one file, nulls for those it lacks, cast to `schema`."""
    present = reader.schema_arrow.names
    # One thread: per-file tables are small, and threads only contend on a busy machine.
    table = reader.read(columns=[c for c in schema.names if c in present], use_threads=False)
    columns = [table[f.name] if f.name in present else pa.nulls(len(table), f.type) for f in schema]
    return pa.table(columns, names=schema.names).cast(schema)


def _validation_metric(best_by: str) -> str:
    if not best_by.startswith("val_"):
        raise ValueError(
            f"best_by must be a validation metric (val_*), not {best_by!r}: "
            "choosing the epoch on the test split would overstate test results"
        )
    variants.get_metric(best_by)
    return best_by


def _select_rows(keys: pd.DataFrame, epochs: str, best_by: str) -> np.ndarray:
    """Row positions of the chosen epochs, grouped by trial in file order and sorted by epoch;
    a duplicated (trial, epoch) keeps its last row. Integer keys and numpy sorts (a no-op
    check when the files are already in order) keep this fast on millions of rows."""
    trial = variants.combination_codes(keys, TRIAL_KEYS).astype(np.int64)
    epoch = keys["epoch"].to_numpy(dtype=np.int64)
    key = trial * (int(epoch.max(initial=0)) + 1) + epoch
    order = np.arange(len(key)) if (np.diff(key) > 0).all() else np.argsort(key, kind="stable")
    order = order[np.r_[key[order][1:] != key[order][:-1], True]]  # duplicates: last wins
    if epochs == "all":
        return order
    if epochs == "best":
        order = order[_by_validation(keys.iloc[order], trial[order], best_by)]
    last_of_trial = np.r_[trial[order][1:] != trial[order][:-1], True]
    return np.sort(order[last_of_trial])


def _by_validation(keys: pd.DataFrame, trial: np.ndarray, best_by: str) -> np.ndarray:
    """An order of `keys` in which each trial's chosen epoch comes last (see load_results)."""
    sign = 1.0 if variants.get_metric(best_by).higher_is_better else -1.0
    usable = keys["status"].eq(STATUS_OK).to_numpy() & keys[best_by].notna().to_numpy()
    score = np.where(usable, sign * keys[best_by].to_numpy(dtype=float, na_value=np.nan), -np.inf)
    epoch = keys["epoch"].to_numpy(dtype=float)
    return np.lexsort((np.where(usable, -epoch, epoch), score, trial))


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

"""Read per-epoch Parquet results (DESIGN.md, "Parquet") into tidy pandas DataFrames.

The schema is `study.results` (one place): this module never lists result columns itself.

A study writes one small file per trial (`<trial_id>.parquet`, 200 rows for 200 epochs), so a
study of 10,000 trials is 10,000 files, and what costs is the work per file and per column
chunk, not the rows. Hence:

- Each file is opened once, by the Parquet reader itself (no dataset scanner, no per-file
  pandas), with only the needed columns, in a pool of threads (the reader runs without the
  GIL), a group of files per task.
- A column the footer's statistics show to hold one value in the whole file (a trial's
  dataset, model, method, seed, …; "ok" and "" in the status and message of a trial that
  finished) is not read at all: its value is taken from the statistics. Floating-point columns
  are read (statistics skip NaN), but for α and the margin where all null.
- Every row is kept for the small columns only. The list columns (reliability bins) are
  decoded with the rest of a file (Parquet cannot skip to a row) and kept only at the rows the
  file's own epoch selection picks (a trial's last or best epoch), so they never exist for all
  rows at once. Those are the rows the selection over all files picks, unless a trial's rows
  are spread over several files (the same epoch reported in two files): its bins then come from
  a second read of just the files it needs.
- Strings come back dictionary-encoded (pandas categoricals), built once per column.

`read_results` gives both the selected rows and every epoch's small columns from one read;
`load_results` is its selected rows alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The reader `pq.ParquetFile` wraps, without the per-file Python set-up (path resolution and a
# map of nested paths: ~0.1 ms a file, a second per 10,000 files).
from pyarrow._parquet import ParquetReader

from analysis import variants
from study.results import COLUMN_NAMES, COLUMNS, SCHEMA_VERSION, STATUS_OK

EPOCHS = ("last", "all", "best")
TRIAL_KEYS = ["study", "trial_id"]
LABEL_KEYS = ["dataset", *variants.VARIANT_KEYS, *variants.BACKBONE_KEYS]
SELECTION_KEYS = [*TRIAL_KEYS, "epoch", "status"]
TYPES = {name: dtype for name, dtype, _ in COLUMNS}
STRING_COLUMNS = [name for name, dtype, _ in COLUMNS if pa.types.is_string(dtype)]
LIST_COLUMNS = [name for name, dtype, _ in COLUMNS if pa.types.is_list(dtype)]
METRIC_COLUMNS = [
    name for name in COLUMN_NAMES if name.startswith(("val_", "test_")) and name not in LIST_COLUMNS
]
VERSION = "schema_version"
WHOLE_FILE = 4 * 1024**2  # files up to this size are read in one go (a trial's: ~130 KB)
GROUP_FILES = 256  # most files per read task (their bins, until it copies the chosen rows)


class ResultsError(ValueError):
    """The path holds no results of this schema: a user error, reported in one line."""


@dataclass(frozen=True)
class Results:
    """What `read_results` read: the files, the selected rows and (if asked) every epoch."""

    files: list[Path]
    selected: pd.DataFrame
    every: pd.DataFrame | None


def result_files(path: str | Path) -> list[Path]:
    """The `*.parquet` files of a results directory (or the one file given); hidden ones skipped.

    Subdirectories are not searched, so a report written beside the results is never read back.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ResultsError(f"no results at {path}: no such file or directory")
    names = sorted(e.name for e in os.scandir(path) if e.name.endswith(".parquet"))
    files = [path / name for name in names if not name.startswith((".", "_"))]
    if not files:
        raise ResultsError(f"no results in {path}: it holds no .parquet files")
    return files


def check_results(path: str | Path) -> list[Path]:
    """The results files under `path` after checking their schema version (from the footers
    where they can tell); ResultsError otherwise."""
    files = result_files(path)
    counts = _read(files, _Spec((VERSION,), (), "last", None), _threads(None)).counts
    if not counts.sum():
        raise ResultsError("no results: the Parquet files hold no rows")
    return files


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
    columns (reliability bins) are numpy arrays per row (None where null), kept only at the
    chosen rows. Rows come grouped by trial in file order, epochs ascending; a (trial, epoch)
    reported twice counts once, with its last row.
    Raises ResultsError (a user error) when `path` holds no results of this schema version.
    """
    return read_results(path, epochs, columns=columns, best_by=best_by).selected


def read_results(
    path: str | Path,
    epochs: str = "last",
    *,
    columns: Sequence[str] | None = None,
    every: Sequence[str] | None = None,
    best_by: str = "val_acc",
    threads: int | None = None,
) -> Results:
    """`load_results(path, epochs, columns=…)` and, when `every` names columns, also every
    epoch's rows of those columns (no list columns), from one read of each file.

    `threads`: files read at once (default: the CPU count).
    """
    if epochs not in EPOCHS:
        raise ValueError(f"epochs must be one of {', '.join(EPOCHS)}; got {epochs!r}")
    columns = _known(COLUMN_NAMES if columns is None else columns)
    keys = [*SELECTION_KEYS, *([_validation_metric(best_by)] if epochs == "best" else [])]
    selected = _in_order({*columns, *keys, *LABEL_KEYS})
    wide = _in_order({*_known(every or []), *SELECTION_KEYS, *LABEL_KEYS}) if every else []
    if set(wide) & set(LIST_COLUMNS):
        raise ValueError(f"list columns are read at the selected rows only, not {every}")
    lists = [c for c in selected if c in LIST_COLUMNS]
    scalars = _in_order({*selected, *wide, VERSION} - set(LIST_COLUMNS))
    files = result_files(path)
    spec = _Spec(tuple(scalars), tuple(lists), epochs, best_by if epochs == "best" else None)
    read = _read(files, spec, _threads(threads))
    if not read.counts.sum():
        raise ResultsError("no results: the Parquet files hold no rows")
    values = {c: read.column(c) for c in scalars if c in {*keys, *wide}}  # at every row
    trial = _trial_codes(values)
    rows = _select_rows(trial, values, epochs, best_by)
    index = pa.array(rows)
    table = pa.table(
        {
            c: values[c].take(index) if c in values else read.column(c, rows)
            for c in selected
            if c not in lists
        }
    )
    if lists:
        for name, column in zip(lists, read.lists_at(rows).columns, strict=True):
            table = table.append_column(name, column)
    frames = [_frame(table.select(selected))]
    if wide:
        order = rows if epochs == "all" else _select_rows(trial, values, "all", best_by)
        same = len(order) == len(trial) and bool((np.diff(order) == 1).all())
        frames.append(
            _frame(pa.table({c: values[c] if same else values[c].take(order) for c in wide}))
        )
    return Results(files, frames[0], frames[1] if wide else None)


def read_rows(path: str | Path, columns: Sequence[str], rows: np.ndarray) -> pa.Table:
    """`columns` at the row positions `rows` (over the files in order, as `read_results` reads
    them), reading only the files that hold them. A column a file lacks (written before the
    schema had it) reads as nulls."""
    files = result_files(path)
    counts = np.array([pq.read_metadata(f).num_rows for f in files], dtype=np.int64)
    return _read_at(files, counts, list(columns), np.asarray(rows, dtype=np.int64))


def _known(columns: Sequence[str]) -> list[str]:
    unknown = sorted(set(columns) - set(COLUMN_NAMES))
    if unknown:
        raise ValueError(f"not result columns: {unknown}; valid: {', '.join(COLUMN_NAMES)}")
    return list(columns)


def _in_order(columns: set[str]) -> list[str]:
    return [c for c in COLUMN_NAMES if c in columns]


def _threads(threads: int | None) -> int:
    return max(1, threads or min(8, os.cpu_count() or 1))


def _frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    df["variant"] = variants.variant_column(df)
    df["backbone"] = variants.backbone_column(df)
    return df


# ---------------------------------------------------------------- reading the files


@dataclass(frozen=True)
class _Spec:
    """What to read: scalar columns of every row, list columns at the selected rows."""

    scalars: tuple[str, ...]
    lists: tuple[str, ...]
    epochs: str
    best_by: str | None


@dataclass
class _Layout:
    """Where the contract's columns sit in files of one Parquet schema."""

    schema: pq.ParquetSchema
    leaf: dict[str, int]  # column → its (first) leaf column index
    exact: frozenset[str]  # non-float columns stored as the contract's own type
    checks: dict[_Spec, list[tuple[str, int, bool]]]  # see _checks


@dataclass
class _File:
    """What one file gave: its rows, the columns its statistics settled (`known`), the other
    scalar columns as read, and its list columns at its candidate rows."""

    rows: int
    known: dict[str, Any]  # column → its one value (None: all null or absent)
    table: pa.Table | None = None  # the other scalar columns, in the contract's types
    names: tuple[str, ...] = ()  # their names
    candidates: np.ndarray | None = None  # the rows its own epoch selection picks
    lists: pa.Table | None = None  # the list columns at `candidates`


@dataclass
class _Columns:
    """The columns of one file: `known` ones (one value each) and `table` ones (as read)."""

    rows: int
    known: dict[str, Any]
    table: pa.Table | None
    names: tuple[str, ...]

    def numbers(self, name: str, missing: float) -> np.ndarray:
        """A numeric column as numpy, nulls as `missing`."""
        if name in self.known:
            value = self.known[name]
            return np.full(self.rows, missing if value is None else value)
        values = self.table.column(self.names.index(name))
        if values.null_count:
            return pc.fill_null(values, missing).to_numpy()
        return values.chunk(0).to_numpy() if values.num_chunks == 1 else values.to_numpy()

    def array(self, name: str) -> pa.Array:
        """A column as an Arrow array (strings dictionary-encoded)."""
        if name in self.known:
            one = pa.array([self.known[name]], TYPES[name])
            values = one.take(pa.array(np.zeros(self.rows, dtype=np.int64)))
        else:
            values = self.table.column(self.names.index(name)).combine_chunks()
        return values.dictionary_encode() if pa.types.is_string(TYPES[name]) else values


@dataclass
class _Batch:
    """The rows of some files, all read with the same columns."""

    files: np.ndarray  # their positions (in the group; later over all files)
    table: pa.Table


@dataclass
class _Group:
    """What one read task got from its files (positions local to the group)."""

    counts: np.ndarray  # rows per file
    constant: dict[str, list]  # column → per file: its one value (None: all null, or read)
    batches: list[_Batch]
    candidates: np.ndarray  # rows whose list columns are kept
    lists: pa.Table | None
    error: ResultsError | None = None


class _Read:
    """Every group's result, and the columns over all files."""

    def __init__(self, files: list[Path], groups: list[_Group], spec: _Spec):
        self.files, self.groups, self.spec = files, groups, spec
        self.counts = np.concatenate([g.counts for g in groups])
        first_file = np.cumsum([0] + [len(g.counts) for g in groups])
        first_row = np.cumsum([0] + [int(g.counts.sum()) for g in groups])
        self.batches = [
            _Batch(b.files + first, b.table)
            for g, first in zip(groups, first_file, strict=False)
            for b in g.batches
        ]
        self.candidates = np.concatenate(
            [first + g.candidates for g, first in zip(groups, first_row, strict=False)]
        )
        self._index: dict = {}

    def column(self, name: str, rows: np.ndarray | None = None) -> pa.Array:
        """One scalar column over every row of every file, or at `rows` of them."""
        constant = [v for g in self.groups for v in g.constant[name]]
        return _gather(name, self.counts, constant, self.batches, self._index, rows)

    def lists_at(self, rows: np.ndarray) -> pa.Table:
        """The list columns at `rows`, from the files' candidates; rows that are not (a trial
        spread over files) are read again from the files holding them."""
        lists = list(self.spec.lists)
        kept = [g.lists for g in self.groups if g.lists is not None]
        table = pa.concat_tables(kept) if kept else _empty(lists)
        position = np.searchsorted(self.candidates, rows)
        found = position < len(self.candidates)
        found[found] = self.candidates[position[found]] == rows[found]
        if not found.all():
            missing = rows[~found]
            again = _read_at(self.files, self.counts, lists, missing)
            position[~found] = len(table) + np.arange(len(missing))
            table = pa.concat_tables([table, again])
        return table.take(pa.array(position)).combine_chunks()


def _empty(columns: list[str]) -> pa.Table:
    return pa.schema([pa.field(c, TYPES[c]) for c in columns]).empty_table()


def _read(files: list[Path], spec: _Spec, threads: int) -> _Read:
    """Read `files` in groups, `threads` groups at a time."""
    size = max(1, min(GROUP_FILES, -(-len(files) // (4 * threads))))
    parts = [files[i : i + size] for i in range(0, len(files), size)]
    layouts: dict = {}  # shared by the threads

    def task(part: list[Path]) -> _Group:
        return _read_group(part, spec, layouts)

    if threads == 1 or len(parts) == 1:
        groups = [task(p) for p in parts]
    else:
        with ThreadPoolExecutor(threads) as pool:
            groups = list(pool.map(task, parts))
    errors = [g.error for g in groups if g.error]
    if errors:
        raise errors[0]  # the first bad file in file order
    return _Read(files, groups, spec)


def _read_group(files: list[Path], spec: _Spec, layouts: dict) -> _Group:
    counts = np.zeros(len(files), dtype=np.int64)
    constant: dict[str, list] = {c: [None] * len(files) for c in spec.scalars}
    same: dict[tuple[str, ...], tuple[list[int], list[pa.Table]]] = {}  # by columns read
    candidates, lists, first_row = [], [], 0
    try:
        for i, path in enumerate(files):
            file = _read_file(path, spec, layouts)
            counts[i] = file.rows
            for name, value in file.known.items():
                constant[name][i] = value
            if file.table is not None:
                where, tables = same.setdefault(file.names, ([], []))
                where.append(i)
                tables.append(file.table)
            if file.lists is not None:
                candidates.append(file.candidates + first_row)
                lists.append(file.lists)
            first_row += file.rows
    except ResultsError as err:
        return _Group(counts, constant, [], np.zeros(0, np.int64), None, err)
    batches = [
        _Batch(np.array(where), pa.concat_tables(tables).combine_chunks())
        for where, tables in same.values()
    ]
    return _Group(
        counts,
        constant,
        batches,
        np.concatenate(candidates) if candidates else np.zeros(0, np.int64),
        pa.concat_tables(lists).combine_chunks() if lists else None,
    )


def _read_file(path: Path, spec: _Spec, layouts: dict) -> _File:
    """One file: the columns its footer's statistics show to hold one value are taken from
    them; the others are read, and the list columns kept at the file's own selected rows."""
    try:
        reader = _open(path)
    except (pa.ArrowException, OSError) as err:
        raise _not_results(path, str(err).strip().splitlines()[0]) from err
    meta = reader.metadata
    n = meta.num_rows
    if not n:
        return _File(0, {})
    layout = _layout(meta, layouts)
    if VERSION not in layout.leaf:
        raise _not_results(path, f"no {VERSION}")
    known = _statistics(meta, _checks(layout, spec))
    if VERSION in known:
        _check_version(path, known[VERSION])
    wanted, lists = [], []
    for name in spec.scalars:
        if name not in layout.leaf:  # written before the schema had it: null
            known[name] = None
        elif name not in known:
            wanted.append(name)
    lists = [c for c in spec.lists if c in layout.leaf]
    names = tuple(sorted([*wanted, *lists], key=layout.leaf.__getitem__))  # read_all's order
    table = None
    if names:
        try:
            indices = [layout.leaf[c] for c in names]
            table = reader.read_all(column_indices=indices, use_threads=False)
            schema = _schema(names)
            if not table.schema.equals(schema):
                table = table.cast(schema)
        except (pa.ArrowException, OSError) as err:
            raise _not_results(path, str(err).strip().splitlines()[0]) from err
        if VERSION not in known:
            for version in pc.unique(table[VERSION]).to_pylist():
                _check_version(path, version)
    file = _File(n, known, table, names)
    if spec.lists:
        columns = _Columns(n, known, table, names)
        file.candidates = _candidates(columns, spec)
        file.lists = _lists_at(columns, file.candidates, spec.lists, lists)
        if lists:  # keep the scalars only
            file.table = table.drop_columns(lists) if wanted else None
            file.names = tuple(c for c in names if c not in lists)
    return file


def _open(path: Path) -> ParquetReader:
    """A Parquet reader of `path`. A small file (a trial's) is read whole, in one system call,
    instead of one per column chunk and two for the footer."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size <= WHOLE_FILE else None
    finally:
        os.close(fd)
    reader = ParquetReader()
    if data is not None and len(data) == size:
        reader.open(pa.BufferReader(data), pre_buffer=False)
    else:
        reader.open(str(path), pre_buffer=False)
    return reader


def _candidates(file: _Columns, spec: _Spec) -> np.ndarray:
    """The file's rows its own epoch selection picks: the selection over all files only ever
    picks these, unless a trial's rows are spread over several files."""
    epoch = file.numbers("epoch", 0)
    single = "study" in file.known and "trial_id" in file.known
    if single and spec.epochs == "last" and epoch[-1] == epoch.max():
        return _LAST_ROW[file.rows] if file.rows < len(_LAST_ROW) else np.array([file.rows - 1])
    if single:
        trial = np.zeros(file.rows, dtype=np.int64)
    else:
        trial = _trial_codes({k: file.array(k) for k in TRIAL_KEYS})
    ok = score = None
    if spec.epochs == "best":
        status = file.array("status")
        is_ok = pc.equal(status.dictionary, STATUS_OK).to_numpy(zero_copy_only=False)
        ok = np.r_[is_ok, False][status.indices.fill_null(len(is_ok)).to_numpy()]
        score = file.numbers(spec.best_by, np.nan)
    return np.sort(_choose(trial, epoch, spec.epochs, ok, score, spec.best_by))


_LAST_ROW = [np.array([n - 1]) for n in range(1024)]  # one trial, its last row: its last epoch


def _lists_at(
    file: _Columns, rows: np.ndarray, names: tuple[str, ...], present: list[str]
) -> pa.Table:
    """The list columns `names` at `rows` of a file (nulls for those it lacks): a slice for
    consecutive rows, copied (and the rest freed) when its group puts them together."""
    if len(present) == len(names):
        table = file.table.select(list(names))
    else:
        got = {c: file.table.column(file.names.index(c)) for c in present}
        table = pa.table({c: got.get(c, pa.nulls(file.rows, TYPES[c])) for c in names})
    k = len(rows)
    if k and rows[-1] - rows[0] == k - 1:
        return table.slice(int(rows[0]), k)
    return table.take(pa.array(rows))


_SCHEMAS: dict[tuple[str, ...], pa.Schema] = {}


def _schema(names: tuple[str, ...]) -> pa.Schema:
    """The contract's types of `names` (cached: one per set of columns read)."""
    if names not in _SCHEMAS:
        _SCHEMAS[names] = pa.schema([pa.field(n, TYPES[n]) for n in names])
    return _SCHEMAS[names]


def _layout(meta: pq.FileMetaData, layouts: dict) -> _Layout:
    """The layout of a file's columns (files of a study share one), found by the Arrow schema
    pyarrow stores in the footer; else by the Parquet schema (`meta.schema` is a reference
    cycle: left to files without an Arrow schema and to the first file of each)."""
    key = (meta.metadata or {}).get(b"ARROW:schema")
    if key is not None and key in layouts:
        return layouts[key]
    schema = meta.schema
    for layout in layouts.values():
        if layout.schema.equals(schema):
            return layout
    arrow = schema.to_arrow_schema()
    leaf: dict[str, int] = {}
    for j in range(len(schema)):
        name = schema.column(j).path.split(".")[0]
        if name in TYPES:
            leaf.setdefault(name, j)
    exact = frozenset(
        c
        for c in leaf
        if not _floating_or_list(TYPES[c])
        and arrow.get_field_index(c) >= 0
        and arrow.field(c).type == TYPES[c]
    )
    layout = _Layout(schema, leaf, exact, {})
    layouts[key if key is not None else id(layout)] = layout  # threads may add it twice
    return layout


def _checks(layout: _Layout, spec: _Spec) -> list[tuple[str, int, bool]]:
    """(column, leaf, exact) of the columns whose statistics are worth a look: the non-float
    ones, and α and the margin (all null where the method has none); `exact` where one value
    in the statistics can stand for the column (not floats: statistics skip NaN)."""
    if spec not in layout.checks:
        layout.checks[spec] = [
            (c, layout.leaf[c], c in layout.exact)
            for c in spec.scalars
            if c in layout.leaf and (c in layout.exact or c in variants.VARIANT_KEYS)
        ]
    return layout.checks[spec]


def _floating_or_list(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_list(dtype)


def _statistics(meta: pq.FileMetaData, checks: list[tuple[str, int, bool]]) -> dict[str, Any]:
    """The columns of `checks` whose statistics show one value in every row of the file
    (None: all null), with that value."""
    known: dict[str, Any] = {}
    if meta.num_row_groups != 1:  # rare: every row group must agree
        groups = [meta.row_group(k) for k in range(meta.num_row_groups)]
        for check in checks:
            values = {_one_value(g, check) for g in groups}
            if len(values) == 1 and _UNKNOWN not in values:
                known[check[0]] = values.pop()
        return known
    group = meta.row_group(0)
    for check in checks:
        value = _one_value(group, check)
        if value is not _UNKNOWN:
            known[check[0]] = value
    return known


_UNKNOWN = object()


def _one_value(group: pq.RowGroupMetaData, check: tuple[str, int, bool]) -> Any:
    """The one value of a column chunk by its statistics (None: all null), else _UNKNOWN."""
    _, leaf, exact = check
    stats = group.column(leaf).statistics
    if stats is None or not stats.has_null_count:
        return _UNKNOWN
    nulls = stats.null_count
    if nulls == group.num_rows:
        return None
    if exact and not nulls and stats.has_min_max:
        value = stats.min
        if value == stats.max:
            return value
    return _UNKNOWN


def _check_version(path: Path, version: Any) -> None:
    if version != SCHEMA_VERSION:
        found = f"no {VERSION}" if version is None else f"schema version {version}"
        raise _not_results(path, found, "regenerate it or use the analysis of its version")


def _not_results(path: Path, why: str, hint: str = "") -> ResultsError:
    message = f"{path.name} is not a results file of schema version {SCHEMA_VERSION} ({why})"
    return ResultsError(message + (f"; {hint}" if hint else ""))


def _gather(
    name: str,
    counts: np.ndarray,
    constant: list,
    batches: list[_Batch],
    cache: dict,
    rows: np.ndarray | None = None,
) -> pa.Array:
    """One column over the files (at `rows` of them, if given): file i's rows hold
    `constant[i]` unless a batch read them. Strings come back dictionary-encoded. `cache`
    keeps the row index of each set of batches (most columns share one)."""
    dtype = TYPES[name]
    having = [b for b in batches if name in b.table.schema.names]
    pieces = [pa.array(constant, dtype), *(c for b in having for c in b.table[name].chunks)]
    source = pa.concat_arrays(pieces)
    if pa.types.is_string(dtype):
        source = source.dictionary_encode()
    key = tuple(id(b) for b in having)
    if key not in cache:
        cache[key] = _row_index(counts, having)
    return source.take(pa.array(cache[key] if rows is None else cache[key][rows]))


def _row_index(counts: np.ndarray, having: list[_Batch]) -> np.ndarray:
    """Where each row is in [one value per file, *the rows of the batches `having`]."""
    start = np.full(len(counts), -1, dtype=np.int64)  # where a read file's rows start
    at = len(counts)
    for batch in having:
        sizes = counts[batch.files]
        start[batch.files] = at + np.cumsum(sizes) - sizes
        at += int(sizes.sum())
    read = start >= 0
    first_row = np.cumsum(counts) - counts
    index = np.repeat(np.where(read, start - first_row, np.arange(len(counts))), counts)
    if read.any():
        index += np.arange(len(index)) * np.repeat(read, counts)
    return index


def _read_at(
    files: list[Path], counts: np.ndarray, columns: list[str], rows: np.ndarray
) -> pa.Table:
    """`columns` at global `rows` (in that order), reading only the files that hold them."""
    starts = np.cumsum(counts) - counts
    file_of = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(rows, kind="stable")
    parts = [_empty(columns)]
    for f in np.unique(file_of):
        local = rows[order][file_of[order] == f] - starts[f]
        reader = _open(files[f])
        layout = _layout(reader.metadata, {})
        present = [c for c in columns if c in layout.leaf]
        indices = [layout.leaf[c] for c in present]
        table = reader.read_all(column_indices=indices, use_threads=False)
        got = {
            c: table[c].cast(TYPES[c]) if c in present else pa.nulls(len(table), TYPES[c])
            for c in columns
        }
        parts.append(pa.table(got).take(pa.array(local)))
    return pa.concat_tables(parts).combine_chunks().take(pa.array(np.argsort(order)))


# ---------------------------------------------------------------- choosing the epochs


def _validation_metric(best_by: str) -> str:
    if not best_by.startswith("val_"):
        raise ValueError(
            f"best_by must be a validation metric (val_*), not {best_by!r}: "
            "choosing the epoch on the test split would overstate test results"
        )
    variants.get_metric(best_by)
    return best_by


def _trial_codes(values: dict[str, pa.Array]) -> np.ndarray:
    """0, 1, 2, … per distinct (study, trial_id) in order of first appearance (null a value);
    the arrays are dictionary-encoded."""
    codes = np.zeros(len(values["trial_id"]), dtype=np.int64)
    for key in TRIAL_KEYS:
        encoded = values[key]
        width = len(encoded.dictionary) + 1
        codes = codes * width + encoded.indices.fill_null(width - 1).to_numpy().astype(np.int64)
    return pd.factorize(codes)[0].astype(np.int64)


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
    return np.sort(order[last_of_trial])


def _select_rows(
    trial: np.ndarray, values: dict[str, pa.Array], epochs: str, best_by: str | None
) -> np.ndarray:
    """`_choose` over the columns of every file (see load_results)."""
    epoch = pc.fill_null(values["epoch"], 0).to_numpy()
    ok = score = None
    if epochs == "best":
        status = values["status"]  # dictionary-encoded
        is_ok = pc.equal(status.dictionary, STATUS_OK).to_numpy(zero_copy_only=False)
        codes = status.indices.fill_null(len(status.dictionary)).to_numpy()
        ok = np.r_[is_ok, False][codes]
        score = pc.fill_null(values[best_by], np.nan).to_numpy()
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

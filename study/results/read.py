"""Reading every results file under a path at once, for the study's end summary, compaction
and the analysis alike (one file's reading and checks: study.results.files).

Two paths, one result (`Read`: the rows of the good files in file order, rows per file, the
files skipped with why):
- the fast path, for many local files (a study's per-trial files): polars scans, in Rust
  threads, checked afterwards. Any doubt (a file polars cannot read or cast, a null key,
  another schema version) sends every file down the careful path, which names the bad ones;
- the careful path: pyarrow, file by file (results_files.read_one), for a URI, a single
  (compacted) file, or files the fast path doubted.

The analysis wants, besides every row's scalar columns, the reliability-bin list columns at
one row per trial (its chosen epoch). Decoding a Parquet page decodes all its rows, so on the
fast path the lists are decoded once, with the scalars, BATCH_FILES files at a time, and kept
only at the rows `Keep.choose` picks in each batch (`Read.kept`); a compacted file never has
its lists decoded here (its shortlist serves them: study.results.compact). study.results.rows takes
the rows it is asked for from `Read.kept` where they are there, and reads the rest.

A compaction may run while a reader reads (docs/study.md "Compaction"): the files listed may
then vanish or the compacted file change before they are read (a listed file gone reads as
"not a results file"). `settled` runs a whole read again when the listing taken after it
lost a file of the one before, or shows another compacted file; a running study's per-trial
files, rewritten atomically on every epoch, or new ones, are no reason to read again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from study.results.files import (
    COMPACTED,
    KEYS,
    STRINGS,
    TYPES,
    ResultsError,
    conform,
    io_threads,
    locate,
    log,
    read_one,
    schema_of,
)
from study.results.schema import SCHEMA_VERSION

ATTEMPTS = 8  # reads of a path whose files a compaction keeps changing, before giving up
BATCH_FILES = 500  # small files per polars scan with lists (~70 MB of decoded bins)
ROW = "__row"  # the position of a kept row over all rows read
FILE = "__file"


@dataclass(frozen=True)
class Keep:
    """List columns to keep at some rows while reading: `choose` gets each batch's table (the
    columns read) and returns the positions in it whose `columns` to keep."""

    columns: Sequence[str]
    choose: Callable[[pa.Table], np.ndarray]


@dataclass
class Read:
    """What `read` got: the rows of the good files (in file order), and the files skipped."""

    table: pa.Table
    files: list[str]  # the files read, in order
    counts: np.ndarray  # rows per file read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    fs: pafs.FileSystem = field(default_factory=pafs.LocalFileSystem)
    kept: pa.Table | None = None  # ROW (ascending) and Keep.columns at the rows kept


def read(
    path: str | os.PathLike,
    columns: Sequence[str],
    threads: int | None = None,
    dictionary: bool = False,
    keep: Keep | None = None,
) -> Read:
    """`columns` of every good results file under `path`, in file order, in the schema's types
    (nulls where a file lacks a column; strings as dictionary<string> when `dictionary`: what
    the analysis groups on, read without a Python string per row), and `keep`'s list columns
    at the rows it chooses where they come cheaply (see the module docstring); bad files
    skipped, named and logged. ResultsError when no file is good."""
    fs, files = locate(path)
    local = isinstance(fs, pafs.LocalFileSystem) and len(files) > 1
    bulk = _bulk(files, columns, dictionary, keep) if local else None
    if bulk is not None:
        return Read(bulk[0], files, bulk[1], [], fs, bulk[2])
    threads = max(1, threads or io_threads(fs))

    def one(f: str) -> pa.Table | str:
        try:
            return read_one(fs, f, columns, dictionary=dictionary)
        except ValueError as err:
            return str(err)

    if threads == 1 or len(files) == 1:
        got = [one(f) for f in files]
    else:
        with ThreadPoolExecutor(threads) as pool:
            got = list(pool.map(one, files, chunksize=64))
    skipped = [(f, why) for f, why in zip(files, got, strict=True) if isinstance(why, str)]
    for f, why in skipped:
        log.warning("skipping %s: not a results file (%s)", f, why)
    good = [(f, t) for f, t in zip(files, got, strict=True) if not isinstance(t, str)]
    if not good:
        name, why = Path(skipped[0][0]).name, skipped[0][1]
        more = f"; and {len(skipped) - 1} more files" if len(skipped) > 1 else ""
        raise ResultsError(f"no results in {path}: {name} is not a results file ({why}){more}")
    tables = [t for _, t in good]
    table = pa.concat_tables(tables).combine_chunks()  # dictionaries unified into one
    counts = np.array([len(t) for t in tables], dtype=np.int64)
    return Read(table, [f for f, _ in good], counts, skipped, fs)


T = TypeVar("T")


def settled(path: str | os.PathLike, attempt: Callable[[], T]) -> T:
    """`attempt()` (a whole read of the results under `path`), again while a compaction changed
    the files under it meanwhile (see the module docstring); its error raised only when nothing
    changed. ResultsError after ATTEMPTS changed reads."""
    for n in range(ATTEMPTS):
        before = _listing(path)
        try:
            got, error = attempt(), None
        except (ValueError, OSError) as err:  # ResultsError included
            got, error = None, err
        after = _listing(path)
        if not _changed(before, after):
            if error is not None:
                raise error
            return got
        time.sleep(0.02 * (n + 1))
    raise ResultsError(f"the results in {path} changed during {ATTEMPTS} reads; read again")


def _listing(path: str | os.PathLike) -> dict[str, tuple[int, int]] | None:
    """Each results file's (size, mtime) under `path`; None when there are none."""
    try:
        fs, files = locate(path)
    except ResultsError:
        return None
    return {i.path: (i.size, i.mtime_ns) for i in fs.get_file_info(files)}


def _changed(before: dict | None, after: dict | None) -> bool:
    """A file listed before is gone, or the compacted file is another one (or there were
    results files before or after, not both)."""
    if before is None or after is None:
        return before is not after
    compacted = [f for f in {*before, *after} if f.endswith(f"/{COMPACTED}")]
    return any(f not in after for f in before) or any(
        before.get(f) != after.get(f) for f in compacted
    )


def polars_scan(files: list[str], **options):
    """A polars scan of `files` in the schema's types (missing columns as nulls)."""
    import polars as pl

    schema = pl.from_arrow(pa.schema([pa.field(c, t) for c, t in TYPES.items()]).empty_table())
    cast = pl.ScanCastOptions(
        integer_cast="upcast", float_cast="upcast", categorical_to_string="allow"
    )
    return pl.scan_parquet(
        files,
        schema=schema.schema,
        missing_columns="insert",
        extra_columns="raise",
        cast_options=cast,
        glob=False,
        **options,
    )


def _bulk(
    files: list[str], columns: Sequence[str], dictionary: bool, keep: Keep | None
) -> tuple[pa.Table, np.ndarray, pa.Table | None] | None:
    """`columns` of `files`, the rows per file and the rows kept, by polars; None when polars
    is not installed or a file needs the careful path. The next batch is decoded (in polars'
    threads) while this one is converted."""
    try:
        import polars  # noqa: F401
    except ImportError:
        return None
    batches = [files] if keep is None else _batches(files)
    lists = [c for c in keep.columns if c not in columns] if keep else []
    scalars = [*dict.fromkeys([*columns, *KEYS])]

    def collect(batch: list[str]) -> Any:  # a compacted file's lists: never decoded whole
        return _collect(batch, scalars if _compacted(batch) else [*scalars, *lists])

    tables, counts, kept, offset = [], [], [], 0
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(collect, batches[0])
        for i, batch in enumerate(batches):
            df = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(collect, batches[i + 1])
            if df is None:
                return None
            bins = df.select([c for c in lists if c in df.columns])
            table, n = _convert(df.drop(bins.columns), batch, columns, dictionary)
            if bins.width:  # converted at the chosen rows only
                at = np.sort(np.asarray(keep.choose(table), dtype=np.int64))
                bins = conform(bins[at].to_arrow(), lists)
                kept.append(bins.add_column(0, ROW, pa.array(at + offset)))
            tables.append(table)
            counts.append(n)
            offset += len(table)
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()
    held = pa.concat_tables(kept).combine_chunks() if kept else None
    return table, np.concatenate(counts), held


def _compacted(batch: list[str]) -> bool:
    return batch[0].endswith(f"/{COMPACTED}")


def _batches(files: list[str]) -> list[list[str]]:
    """The compacted file alone (its lists are never decoded whole), the rest BATCH_FILES at
    a time, in file order."""
    first = [[files[0]]] if _compacted(files) else []
    rest = files[len(first) :]
    return first + [rest[i : i + BATCH_FILES] for i in range(0, len(rest), BATCH_FILES)]


def _collect(files: list[str], wanted: list[str]) -> Any:
    """`wanted` of `files` and each row's file, decoded by one polars scan, checked; None when
    polars cannot read or cast a file, or a key is null, or a schema version unknown."""
    try:
        df = polars_scan(files, include_file_paths=FILE).select([*wanted, FILE]).collect()
    except Exception:  # polars' own errors for a file it cannot read or cast
        return None
    version = df["schema_version"]
    if any(df[k].null_count() for k in KEYS) or not version.is_between(1, SCHEMA_VERSION).all():
        return None
    return df


def _convert(
    df: Any, files: list[str], columns: Sequence[str], dictionary: bool
) -> tuple[pa.Table, np.ndarray]:
    """`columns` of a polars scan of `files` as Arrow in the schema's types, and rows per file."""
    import polars as pl

    runs = df.drop_in_place(FILE).rle()  # the files' rows are contiguous, in file order
    per_file = dict(zip(runs.struct.field("value"), runs.struct.field("len"), strict=True))
    counts = np.array([per_file.get(f, 0) for f in files], dtype=np.int64)
    schema = schema_of(tuple(columns), dictionary)
    arrays = {}
    for name in dict.fromkeys(columns):  # a column at a time, freed once converted (≤ 1 copy)
        column = df.drop_in_place(name)
        if dictionary and name in STRINGS:
            column = column.cast(pl.Categorical)  # values once, not a string per row
        arrays[name] = column.to_arrow().cast(schema.field(name).type)
    return pa.Table.from_arrays([arrays[c] for c in columns], schema=schema), counts

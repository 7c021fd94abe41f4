"""Some rows of a study's results files, all columns wanted, without reading the rest.

Two readers need a few rows' worth of the heavy columns of many files: the analysis (the
reliability bins of the epochs it chose, analysis.load) and the compaction (every column, a
row group's worth of trials at a time, study.results.compact). Both give `read_rows` the row
positions over the files of a `results_read.read` (its file order), in any order, and get a
table in that order, in the schema's types. Rows the read kept from its own scan
(`Read.kept`) come from there. Of the rest, only the files that hold rows are opened; a large
file (a compacted one) only at the row groups holding them; runs of small local files
(per-trial ones) in polars scans of results_read.BATCH_FILES files each, which bound the
memory (a scan decodes its files' columns whole), and checked, or else file by file by
pyarrow (study.results.files.read_one), which names a file that changed or went bad. Rows of a
compacted file that are all in its shortlist (study.results.compact: each trial's last and best
epoch) come from the shortlist, when its token is the compacted file's and `read` holds the
keys to find them by.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.results import files as results_files
from study.results import read as results_read
from study.results.read import ROW, Read, polars_scan

LARGE_ROWS = 20_000  # a file with more rows is read by its row groups (a trial's: ~200 rows)


def read_rows(read: Read, columns: Sequence[str], rows: np.ndarray) -> pa.Table:
    """`columns` at the row positions `rows` of `read` (over its files in order), in the order
    of `rows`: those `read` kept from its own scan, the rest reading only the files (and row
    groups of large files) that hold them."""
    rows = np.asarray(rows, dtype=np.int64)
    hit, at = _kept(read, columns, rows)
    if not hit.any():
        return _read(read, columns, rows)
    kept = read.kept.select(list(columns)).take(pa.array(at[hit]))
    if hit.all():
        return kept
    table = pa.concat_tables([kept, _read(read, columns, rows[~hit])]).combine_chunks()
    return table.take(pa.array(np.argsort(np.r_[np.flatnonzero(hit), np.flatnonzero(~hit)])))


def _kept(read: Read, columns: Sequence[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of `rows` `read.kept` holds (with `columns`), and where."""
    held = read.kept[ROW].to_numpy() if read.kept is not None else np.array([], np.int64)
    if not len(held) or not set(columns) <= set(read.kept.column_names):
        return np.zeros(len(rows), bool), np.zeros(len(rows), np.int64)
    at = np.minimum(np.searchsorted(held, rows), len(held) - 1)
    return held[at] == rows, at


def _read(read: Read, columns: Sequence[str], rows: np.ndarray) -> pa.Table:
    """`columns` at `rows` from the files."""
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    starts = np.cumsum(read.counts) - read.counts
    file_of = np.searchsorted(starts, wanted, side="right") - 1
    scan = isinstance(read.fs, pafs.LocalFileSystem) and _polars()
    empty = pa.schema([pa.field(c, results_files.TYPES[c]) for c in columns]).empty_table()
    parts = [empty]
    with ThreadPoolExecutor(results_files.io_threads(read.fs)) as pool:
        for group in _groups(np.unique(file_of), read.counts):
            lo = np.searchsorted(file_of, group[0], side="left")
            hi = np.searchsorted(file_of, group[-1], side="right")
            at, where = wanted[lo:hi] - starts[file_of[lo:hi]], file_of[lo:hi]
            part = _scan(read, columns, group, at, where) if scan and len(group) > 1 else None
            if len(group) == 1 and read.files[group[0]].endswith(f"/{results_files.COMPACTED}"):
                part = _shortlisted(read, columns, read.files[group[0]], wanted[lo:hi])
            parts.append(part if part is not None else _each(read, columns, at, where, pool))
    table = pa.concat_tables(parts).combine_chunks()
    return table.take(pa.array(np.argsort(order)))


def _polars() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def _groups(files: np.ndarray, counts: np.ndarray) -> Iterator[np.ndarray]:
    """`files` (ascending) in runs of at most results_read.BATCH_FILES small files; a large
    file alone."""
    run: list[int] = []
    for f in files.tolist():
        if counts[f] > LARGE_ROWS:
            if run:
                yield np.array(run)
                run = []
            yield np.array([f])
            continue
        run.append(f)
        if len(run) == results_read.BATCH_FILES:
            yield np.array(run)
            run = []
    if run:
        yield np.array(run)


def _scan(
    read: Read, columns: Sequence[str], group: np.ndarray, at: np.ndarray, where: np.ndarray
) -> pa.Table | None:
    """Rows `at` (within their files `where`, both ascending) of the files `group` by one polars
    scan; None when polars cannot read them or a file no longer has the rows it had."""
    import polars as pl

    counts = read.counts[group]
    offset = np.cumsum(counts) - counts
    inside = offset[np.searchsorted(group, where)] + at
    try:
        scan = polars_scan([read.files[f] for f in group], row_index_name=ROW)
        wanted = pl.col(ROW).is_in(pl.Series(inside, dtype=pl.UInt32).implode())
        df = scan.filter(wanted).select([ROW, *columns]).collect()
    except Exception:  # a file changed since: the careful path says which
        return None
    if not np.array_equal(df[ROW].to_numpy(), inside):
        return None
    table = results_files.conform(df.select(list(columns)).to_arrow(), columns)
    # a copy of just these rows: polars' filtered columns share the buffers the scan decoded
    # (every row of the files), which the rows would otherwise keep alive until the end
    return table.take(pa.array(np.arange(len(table))))


KEY = ["study", "trial_id", "epoch"]


def _shortlisted(
    read: Read, columns: Sequence[str], where: str, rows: np.ndarray
) -> pa.Table | None:
    """`columns` at `rows` (positions over `read`, all in its compacted file `where`) from the
    compacted file's shortlist; None unless every row is there and the shortlist belongs to
    the compacted file (same token)."""
    if not set(KEY) <= set(read.table.column_names):
        return None
    short = where.rsplit("/", 1)[0] + "/" + results_files.SHORTLIST
    try:
        with read.fs.open_input_file(where) as f:
            token = (pq.read_metadata(f).metadata or {}).get(results_files.TOKEN)
        with read.fs.open_input_file(short) as f:
            file = pq.ParquetFile(f)
            if token is None or (file.metadata.metadata or {}).get(results_files.TOKEN) != token:
                return None
            if len(rows) > file.metadata.num_rows:  # (compaction's row groups): cannot all be in it
                return None
            found = file.read(columns=[*KEY, *columns])
    except (OSError, pa.ArrowException):
        return None  # none, or unreadable: the compacted file itself has the rows
    wanted = read.table.select(KEY).take(pa.array(rows)).cast(found.select(KEY).schema)
    wanted = wanted.append_column("__at", pa.array(np.arange(len(rows))))
    found = found.append_column("__in", pa.array(np.arange(len(found))))
    pairs = wanted.join(found.select([*KEY, "__in"]), KEY, join_type="inner").sort_by("__at")
    if len(pairs) != len(rows):  # the shortlist's keys are unique: one match or none
        return None
    return results_files.conform(found.take(pairs["__in"]), columns)


def _each(
    read: Read, columns: Sequence[str], at: np.ndarray, where: np.ndarray, pool: Executor
) -> pa.Table:
    """Rows `at` of the files `where` (both ascending) file by file by pyarrow, a large file
    only at the row groups holding them."""
    files = np.unique(where)

    def one(f: int) -> pa.Table:
        return results_files.read_one(read.fs, read.files[f], columns, at[where == f])

    return pa.concat_tables(list(pool.map(one, files.tolist())))

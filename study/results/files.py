"""Results files, one at a time: where they are, which are results, reading one robustly.

Where the results are: a study directory (its `results/`), a results directory, or one file, on
a local path or any URI pyarrow's filesystems open (`s3://…`, `gs://…`, `file://…`: see
`pyarrow.fs.FileSystem.from_uri`). A results directory holds one `<trial_id>.e<epoch>.parquet`
per trial and epoch while a study runs (study.results.trial_rows; a study written before that
layout: one `<trial_id>.parquet` per trial) and, once compacted (study.results.compact),
`compacted.parquet`: it is read first, so a file written later wins for the (trial, epoch) rows
both hold.

Which files are results: a table is taken only if its columns are columns of
`study.results.SCHEMA`, it has the key columns (study, trial_id, epoch, status,
schema_version), every column casts to the schema's type, and its schema version is one this
code reads (1 to SCHEMA_VERSION). A file that cannot be read (truncated, empty) or is not
results (foreign, another schema) is skipped and named — one warning line each on the
"study.results" logger, and in `study.results.read.Read.skipped` — and every good file is
used. Columns a file lacks (written before the schema had them) come back null.

This module is the single file (where, which, one file's columns); study.results.read reads
all of them at once.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study import credentials
from study.results.schema import COLUMNS, COMPACTED, SCHEMA_VERSION
from study.results.schema import SHORTLIST as SHORTLIST  # the file names: study.results

TYPES = {name: dtype for name, dtype, _ in COLUMNS}

TOKEN = b"study.compaction"  # metadata key: one value in a compacted file and its shortlist
KEYS = ("study", "trial_id", "epoch", "status", "schema_version")  # every results file has them
# an epoch's file: one row, so no statistics, no dictionary pages, no stored Arrow schema (it
# reads back as the schema all the same): 6.9 kB instead of 18.7 kB for a row with its bins
LEAN = {"write_statistics": False, "use_dictionary": False, "store_schema": False}
REMOTE_THREADS = 32  # files read (or removed) at once on object storage: each request waits there
WHOLE_FILE = 4 * 1024**2  # a file up to this size is fetched in one read (a trial's: ~130 KB)
log = logging.getLogger("study.results")


def io_threads(fs: pafs.FileSystem) -> int:
    """Threads for reading (or removing) many small files of `fs` at once: on a local disk the
    CPUs (decoding is the cost), on object storage REMOTE_THREADS (each request's latency is)."""
    local = isinstance(fs, pafs.LocalFileSystem)
    return min(8, os.cpu_count() or 1) if local else REMOTE_THREADS


class ResultsError(ValueError):
    """The path holds no results: a user error, reported in one line."""


def locate(path: str | os.PathLike) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the results files under `path`: the compacted file first, then the
    per-trial files by name; hidden (`.`, `_`) names and subdirectories are not read. A URI
    keeps its query options (`?endpoint_override=…`); one carrying credentials is refused
    (ResultsError, the secret masked: study.credentials)."""
    text = os.fspath(path)
    refused = credentials.refusal(text, "results at")
    if refused:
        raise ResultsError(refused)
    if "://" in text:
        fs, where = pafs.FileSystem.from_uri(text)
    else:
        fs, where = pafs.LocalFileSystem(), os.path.abspath(text)
    info = fs.get_file_info(where)
    if info.type == pafs.FileType.File:
        return fs, [where]
    if info.type != pafs.FileType.Directory:
        raise ResultsError(f"no results at {text}: no such file or directory")
    inner = f"{where.rstrip('/')}/results"
    if fs.get_file_info(inner).type == pafs.FileType.Directory:
        where = inner  # a study directory
    found = fs.get_file_info(pafs.FileSelector(where))
    names = sorted(
        i.base_name
        for i in found
        if i.type == pafs.FileType.File
        and i.base_name.endswith(".parquet")
        and not i.base_name.startswith((".", "_"))
    )
    names.sort(key=lambda n: n != COMPACTED)  # stable: the rest stay by name
    if not names:
        raise ResultsError(f"no results in {text}: it holds no .parquet files")
    return fs, [f"{where.rstrip('/')}/{n}" for n in names]


def not_results(schema: pa.Schema) -> str | None:
    """Why a table of `schema` is not results (None: it is); cached per schema (the files of a
    study share one)."""
    key = schema.to_string(show_schema_metadata=False)
    if key not in _CHECKED:
        _CHECKED[key] = _why_not(schema)
    return _CHECKED[key]


_CHECKED: dict[str, str | None] = {}


def _why_not(schema: pa.Schema) -> str | None:
    foreign = [n for n in schema.names if n not in TYPES]
    if foreign:
        return f"columns not in the results schema: {', '.join(foreign[:3])}"
    missing = [k for k in KEYS if k not in schema.names]
    if missing:
        return f"no {', '.join(missing)} column"
    for f in schema:
        if _kind(f.type) != _kind(TYPES[f.name]):
            return f"column {f.name} is {f.type}, not {TYPES[f.name]}"
    return None


def _kind(t: pa.DataType) -> str:
    """The family a type casts within without loss of meaning (int32 → int64, large strings
    and dictionaries → strings, float32 → float64, large lists → lists)."""
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list<" + _kind(t.value_type) + ">"
    for name in ("boolean", "integer", "floating", "string", "large_string"):
        if getattr(pa.types, f"is_{name}")(t):
            return "string" if name == "large_string" else name
    return str(t)


def conform(table: pa.Table, columns: Sequence[str], dictionary: bool = False) -> pa.Table:
    """`columns` of a results table in the schema's types (strings as dictionary<string> when
    `dictionary`); absent ones as nulls."""
    want = schema_of(tuple(columns), dictionary)
    n, names = len(table), table.column_names
    if set(columns) <= set(names) and table.select(list(columns)).schema.equals(want):
        return table.select(list(columns))
    types = {f.name: f.type for f in want}
    got = [table[c].cast(types[c]) if c in names else pa.nulls(n, types[c]) for c in columns]
    return pa.Table.from_arrays(got, schema=want)


STRINGS = frozenset(c for c, t in TYPES.items() if pa.types.is_string(t))
DICTIONARY = pa.dictionary(pa.int32(), pa.string())  # a string column, values stored once


@functools.lru_cache(maxsize=64)
def schema_of(columns: tuple[str, ...], dictionary: bool = False) -> pa.Schema:
    kind = {c: DICTIONARY if dictionary and c in STRINGS else TYPES[c] for c in columns}
    return pa.schema([pa.field(c, kind[c]) for c in columns])


def open_file(fs: pafs.FileSystem, path: str, dictionary: bool = False) -> pq.ParquetFile:
    """A Parquet file; a small one (a trial's) fetched whole, in one read; string columns read
    as dictionaries when `dictionary` (no string materialised per row)."""
    source = fs.open_input_file(path)
    if source.size() <= WHOLE_FILE:
        with source:
            source = pa.BufferReader(source.read())
    if not dictionary:
        return pq.ParquetFile(source)
    meta = pq.read_metadata(source)
    strings = [c for c in meta.schema.names if c in STRINGS]
    return pq.ParquetFile(source, metadata=meta, read_dictionary=strings)


def read_one(
    fs: pafs.FileSystem,
    path: str,
    columns: Sequence[str],
    rows: np.ndarray | None = None,
    dictionary: bool = False,
) -> pa.Table:
    """`columns` of one results file (at its rows `rows`, ascending, reading only the row
    groups holding them; default every row), conformed (see `conform`); ValueError saying why
    when it is not a results file this code reads."""
    try:
        file = open_file(fs, path, dictionary)
        schema = file.schema_arrow
        why = not_results(schema)
        if why:
            raise ValueError(why)
        wanted = {*columns, "schema_version"}
        present = [c for c in schema.names if c in wanted]
        if rows is None:
            table = file.read(columns=present, use_threads=file.metadata.num_row_groups > 1)
        else:
            meta = file.metadata
            sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
            first = np.cumsum(sizes) - sizes
            group_of = np.searchsorted(first, rows, side="right") - 1
            parts = [  # a row group at a time: a compacted file's bins never all at once
                file.read_row_group(int(g), columns=present, use_threads=False).take(
                    pa.array(rows[group_of == g] - first[g])
                )
                for g in np.unique(group_of)
            ]
            table = pa.concat_tables(parts) if parts else file.schema_arrow.empty_table()
    except (pa.ArrowException, OSError) as err:
        raise ValueError("unreadable: " + (str(err).strip().splitlines() or ["?"])[0]) from err
    versions = pc.unique(table["schema_version"]).to_pylist()
    bad = [v for v in versions if v is None or not 1 <= v <= SCHEMA_VERSION]
    if bad:
        raise ValueError(f"schema version {bad[0]} (this code reads 1 to {SCHEMA_VERSION})")
    return conform(table, columns, dictionary)


def write_atomic(
    table: pa.Table,
    path: Path,
    filesystem: pafs.FileSystem | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Write `table` to `path` (with `pq.write_table`'s `options`) via a temporary file in the
    same directory and a rename (the file's mode follows the umask, like every other file of a
    study); on a remote `filesystem` (study.tune.storage: S3 and the like) with one upload,
    which an object store makes visible whole or not at all."""
    if filesystem is not None:
        pq.write_table(table, str(path), filesystem=filesystem, **(options or {}))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        pq.write_table(table, tmp, **(options or {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

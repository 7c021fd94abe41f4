"""Compaction: a study's per-trial results files merged into one Parquet file.

While a study runs, each trial's rows live in `results/<trial_id>.parquet` (rewritten on every
epoch), so the results are readable at any moment. Ten thousand small files cost ten thousand
opens to read; once the study ends (and with `study compact DIR` for an interrupted one), they
are merged into `results/compacted.parquet` (study.results_files.COMPACTED), whose row groups
hold whole trials (ROW_GROUP_ROWS rows or so each, a trial never split), so reading some
trials' columns touches only their row groups.

Safe at every step, on a local directory or any pyarrow filesystem URI, and in bounded memory
(a row group's worth of rows at a time, never the whole study):
1. the keys of every good file are read (the compacted one first, bad files are skipped, named
   and left in place) and the rows merged: a (study, trial_id, epoch) in several files keeps
   its last row;
2. the merged rows are read a row group of whole trials at a time (study.results_rows) and
   written to a hidden temporary file beside the results, which is then read back a row group
   at a time and compared with what was written (a digest of every value of every column),
   and every row of every source file is checked to be in it;
3. the temporary file replaces `compacted.parquet` (a rename, atomic on a local filesystem),
   after its shortlist (below) has replaced `_shortlist.parquet`;
4. only then are the per-trial files removed, each only if unchanged since it was read (a
   file rewritten meanwhile stays, and is merged next time).
A crash before 3 leaves the old files as they were (and a temporary file removed on the next
run); after 3 the rows are in both places, which readers deduplicate. Compacting again is then
a no-op except for finishing the removals: compaction is idempotent.

The shortlist (results_files.SHORTLIST) is a small file beside the compacted one: every column
of each trial's last row and of its ok row of best validation accuracy (the earliest of ties),
the rows the analysis reads the reliability bins of (`epochs="last"` and `"best"`), taken from
the compacted file as it was read back and verified. Reading those rows from it spares
decoding every row group's bins (study.results_rows); both files carry one compaction token in
their metadata, and a shortlist whose token is not the compacted file's is never used.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study import results_files, results_read, results_rows
from study.results import COLUMN_NAMES, SCHEMA, STATUS_OK

KEY = ["study", "trial_id", "epoch"]
ROW_GROUP_ROWS = 64 * 1024  # rows per row group (whole trials: a group may hold a few more)
TMP_PREFIX = ".compacting-"


@dataclass(frozen=True)
class Compaction:
    """What `compact` did."""

    path: str  # the compacted file
    rows: int  # rows in it
    merged: int  # files merged into it (the earlier compacted file included)
    removed: int  # per-trial files removed
    skipped: list[tuple[str, str]]  # bad files left in place, with why


def compact(path: str | os.PathLike) -> Compaction:
    """Merge the results files under `path` (a study directory, its results/, or a URI) into
    the results directory's compacted file, then remove the per-trial files (see the module
    docstring for why this never loses a row). Raises results_files.ResultsError when there
    are no results."""
    fs, files = results_files.locate(path)
    directory = files[0].rsplit("/", 1)[0]
    _remove_stale(fs, directory)
    stamps = {i.path: (i.size, i.mtime_ns) for i in fs.get_file_info(files)}
    read = results_read.read(path, KEY)
    order = _merged(read.table)
    cuts = _cuts(read.table.select(["study", "trial_id"]).take(pa.array(order)))
    target = f"{directory}/{results_files.COMPACTED}"
    token = uuid.uuid4().hex
    tmp, tmp_short = (f"{directory}/{TMP_PREFIX}{token}{end}.parquet" for end in ("", "-short"))
    schema = SCHEMA.with_metadata({results_files.TOKEN: token})
    try:
        digests = _write(fs, read, order, cuts, tmp, schema)
        shortlist = _verify(fs, tmp, digests, read, order)
        with fs.open_output_stream(tmp_short) as out:
            pq.write_table(shortlist.replace_schema_metadata(schema.metadata), out)
        _replace(fs, tmp_short, f"{directory}/{results_files.SHORTLIST}")
        _replace(fs, tmp, target)
    except BaseException:
        for t in (tmp, tmp_short):
            fs.delete_file(t) if fs.get_file_info(t).type == pafs.FileType.File else None
        raise
    removed = 0
    for f in read.files:
        if f == target:
            continue
        info = fs.get_file_info(f)
        if (info.size, info.mtime_ns) == stamps.get(f):
            _remove(fs, f)
            removed += 1
    return Compaction(target, len(order), len(read.files), removed, read.skipped)


def _replace(fs: pafs.FileSystem, tmp: str, path: str) -> None:
    fs.move(tmp, path)


def _remove(fs: pafs.FileSystem, path: str) -> None:
    fs.delete_file(path)


def _remove_stale(fs: pafs.FileSystem, directory: str) -> None:
    """Temporary files of a compaction that died."""
    for info in fs.get_file_info(pafs.FileSelector(directory)):
        if info.base_name.startswith(TMP_PREFIX):
            fs.delete_file(info.path)


def _merged(keys: pa.Table) -> np.ndarray:
    """Row positions (over the files read) of the merged rows: grouped by trial (in order of
    first appearance), epochs ascending, each (study, trial_id, epoch) once: its last row."""
    frame = keys.to_pandas()
    trial = frame.groupby(["study", "trial_id"], sort=False, dropna=False).ngroup().to_numpy()
    epoch = frame["epoch"].fillna(-1).to_numpy(dtype=np.int64)
    key = trial * (int(epoch.max(initial=0)) + 2) + epoch + 1
    if (np.diff(key) > 0).all():
        return np.arange(len(key))  # already grouped, each key once (a first compaction)
    order = np.argsort(key, kind="stable")
    return order[np.r_[key[order][1:] != key[order][:-1], True]]


def _cuts(trials: pa.Table) -> list[int]:
    """Row group boundaries over the merged rows (their (study, trial_id), grouped by trial):
    whole trials, about ROW_GROUP_ROWS rows each."""
    trial = trials.to_pandas()
    starts = np.flatnonzero(trial.ne(trial.shift()).any(axis=1).to_numpy())
    cuts, size = [0], 0
    for start, stop in zip(starts, [*starts[1:], len(trial)], strict=True):
        if size and size + (stop - start) > ROW_GROUP_ROWS:
            cuts.append(int(start))
            size = 0
        size += stop - start
    return [*cuts, len(trial)] if len(trial) else cuts


def _write(
    fs: pafs.FileSystem,
    read: results_read.Read,
    order: np.ndarray,
    cuts: list[int],
    path: str,
    schema: pa.Schema,
) -> list[bytes]:
    """The merged rows, a row group of whole trials at a time; the digest of each group."""
    digests = []
    with fs.open_output_stream(path) as out, pq.ParquetWriter(out, schema) as writer:
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            group = results_rows.read_rows(read, COLUMN_NAMES, order[lo:hi])
            writer.write_table(group, row_group_size=hi - lo)
            digests.append(digest(group))
    return digests


def digest(table: pa.Table) -> bytes:
    """A digest of every value of `table`: equal for equal tables however they are chunked or
    sliced, NaN by its bits, nulls apart from the values under them."""
    h = hashlib.blake2b(digest_size=32)
    h.update(repr([(f.name, _type(f.type)) for f in table.schema]).encode())
    for column in table.columns:
        _feed(h, column.combine_chunks() if column.num_chunks else pa.array([], column.type))
    return h.digest()


def _type(t: pa.DataType) -> str:
    """A type's text without the name of a list's item field (Parquet keeps "element")."""
    return f"list<{_type(t.value_type)}>" if pa.types.is_list(t) else str(t)


def _feed(h: Any, x: pa.Array) -> None:
    h.update(len(x).to_bytes(8, "little"))
    h.update(x.is_valid().to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_list(x.type):
        h.update(pc.fill_null(pc.list_value_length(x), 0).to_numpy().tobytes())
        _feed(h, x.flatten())  # the values of the non-null lists, slicing undone
    elif pa.types.is_string(x.type) or pa.types.is_large_string(x.type):
        x = pc.fill_null(x, "")
        h.update(pc.binary_length(x).to_numpy().tobytes())
        if len(x):
            width = np.int64 if pa.types.is_large_string(x.type) else np.int32
            offsets = np.frombuffer(x.buffers()[1], dtype=width)[x.offset : x.offset + len(x) + 1]
            data = x.buffers()[2]
            h.update(memoryview(data)[offsets[0] : offsets[-1]] if data is not None else b"")
    else:  # numbers and booleans; floats by their bits (tobytes)
        fill = False if pa.types.is_boolean(x.type) else 0
        h.update(pc.fill_null(x, fill).to_numpy(zero_copy_only=False).tobytes())


def _verify(
    fs: pafs.FileSystem,
    path: str,
    digests: list[bytes],
    read: results_read.Read,
    order: np.ndarray,
) -> pa.Table:
    """The written file reads back, row group by row group, as written (same digests), holds
    the merged rows' keys in order, and every source row's key is in it. Returns the shortlist
    of the rows read back (see the module docstring)."""
    shortlist = [SCHEMA.empty_table()]
    with fs.open_input_file(path) as f:
        file = pq.ParquetFile(f)
        same = file.num_row_groups == len(digests)
        for g in range(file.num_row_groups if same else 0):
            group = file.read_row_group(g)
            same = same and digest(group) == digests[g]
            shortlist.append(_shortlist(group))
        back = file.read(columns=KEY)
    if not same or not back.equals(read.table.select(KEY).take(pa.array(order))):
        raise RuntimeError(f"compaction: {path} does not read back as written; nothing removed")
    joined = read.table.select(KEY).join(back, KEY, join_type="left anti")
    if len(joined):
        raise RuntimeError(f"compaction: {len(joined)} rows missing from {path}; nothing removed")
    return pa.concat_tables(shortlist).cast(SCHEMA)


def _shortlist(group: pa.Table) -> pa.Table:
    """The rows of `group` (whole trials, epochs ascending) that are a trial's last row or its
    ok row of best validation accuracy (the earliest of ties; none without an ok row)."""
    keys = group.select(["study", "trial_id", "status", "val_acc"]).to_pandas()
    trial = keys.groupby(["study", "trial_id"], sort=False, dropna=False).ngroup().to_numpy()
    last = np.flatnonzero(np.r_[trial[1:] != trial[:-1], True])
    ok = ((keys["status"] == STATUS_OK) & keys["val_acc"].notna()).to_numpy()
    best = keys["val_acc"][ok].groupby(trial[ok]).idxmax().to_numpy()  # first of the maxima
    return group.take(pa.array(np.union1d(last, best).astype(np.int64)))


def compact_cli(args) -> int:
    """`study compact DIR`: one line saying what was merged (and each bad file left, named),
    or one line and exit status 2 when DIR holds no results, 1 when the disk is full."""
    import sys

    from study.diskfull import one_line

    again = f"free space, then run it again: study compact {args.directory}"
    try:
        with one_line(args.directory, again):  # the per-trial files stay until it is verified
            done = compact(args.directory)
    except results_files.ResultsError as err:
        print(f"study compact: error: {err}", file=sys.stderr)
        return 2
    print(describe(done))
    return 0


def describe(done: Compaction) -> str:
    """One line per compaction (and one per bad file left in place)."""
    lines = [
        f"compacted {done.merged:,} files ({done.rows:,} rows) into {done.path}; "
        f"removed {done.removed:,} per-trial files"
    ]
    lines += [f"left {f} in place: not a results file ({why})" for f, why in done.skipped]
    return "\n".join(lines)


def at_study_end(results: str | os.PathLike) -> str:
    """Compaction when a study ends: its line, or why it did not happen (the per-trial files
    are then kept, and `study compact` can be run later); never raises for a bad file."""
    try:
        return describe(compact(results))
    except Exception as err:  # the study's results stay readable as per-trial files
        return f"results not compacted ({err}); they stay readable; run: study compact {results}"

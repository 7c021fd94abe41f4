"""Compaction: a study's per-trial results files merged into one Parquet file.

While a study runs, each trial's rows live in `results/<trial_id>.parquet` (rewritten on every
epoch), so the results are readable at any moment. Ten thousand small files cost ten thousand
opens to read; once the study ends (and with `study compact DIR` for an interrupted one), they
are merged into `results/compacted.parquet` (study.results_files.COMPACTED), whose row groups
hold whole trials (ROW_GROUP_ROWS rows or so each, a trial never split), so reading some
trials' columns touches only their row groups.

Safe at every step, on a local directory or any pyarrow filesystem URI:
1. every good file is read (the compacted one first, bad files are skipped, named and left in
   place) and the rows merged: a (study, trial_id, epoch) in several files keeps its last row;
2. they are written to a hidden temporary file beside the results, read back and compared
   with the merged rows, and every row of every source file is checked to be in it;
3. the temporary file replaces `compacted.parquet` (a rename, atomic on a local filesystem);
4. only then are the per-trial files removed, each only if unchanged since it was read (a
   file rewritten meanwhile stays, and is merged next time).
A crash before 3 leaves the old files as they were (and a temporary file removed on the next
run); after 3 the rows are in both places, which readers deduplicate. Compacting again is then
a no-op except for finishing the removals: compaction is idempotent.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study import results_files
from study.results import COLUMN_NAMES, SCHEMA

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
    read = results_files.read(path, COLUMN_NAMES)
    target = f"{directory}/{results_files.COMPACTED}"
    merged = _merge(read.table)
    tmp = f"{directory}/{TMP_PREFIX}{uuid.uuid4().hex}.parquet"
    try:
        _write(fs, merged, tmp)
        _verify(fs, tmp, merged, read)
        fs.move(tmp, target)
    except BaseException:
        fs.delete_file(tmp) if fs.get_file_info(tmp).type == pafs.FileType.File else None
        raise
    removed = 0
    for f in read.files:
        if f == target:
            continue
        info = fs.get_file_info(f)
        if (info.size, info.mtime_ns) == stamps.get(f):
            _remove(fs, f)
            removed += 1
    return Compaction(target, len(merged), len(read.files), removed, read.skipped)


def _remove(fs: pafs.FileSystem, path: str) -> None:
    fs.delete_file(path)


def _remove_stale(fs: pafs.FileSystem, directory: str) -> None:
    """Temporary files of a compaction that died."""
    for info in fs.get_file_info(pafs.FileSelector(directory)):
        if info.base_name.startswith(TMP_PREFIX):
            fs.delete_file(info.path)


def _merge(table: pa.Table) -> pa.Table:
    """The rows grouped by trial (in order of first appearance), epochs ascending, each
    (study, trial_id, epoch) once: its last row."""
    keys = table.select(KEY).to_pandas()
    trial = keys.groupby(["study", "trial_id"], sort=False, dropna=False).ngroup().to_numpy()
    epoch = keys["epoch"].fillna(-1).to_numpy(dtype=np.int64)
    key = trial * (int(epoch.max(initial=0)) + 2) + epoch + 1
    if (np.diff(key) > 0).all():
        return table  # already grouped, each key once (a first compaction): no copy
    order = np.argsort(key, kind="stable")
    last = np.r_[key[order][1:] != key[order][:-1], True]
    return table.take(pa.array(order[last]))


def _write(fs: pafs.FileSystem, table: pa.Table, path: str) -> None:
    """`table` (grouped by trial) with row groups of whole trials."""
    trial = table.select(["study", "trial_id"]).to_pandas()
    starts = np.flatnonzero(trial.ne(trial.shift()).any(axis=1).to_numpy())
    cuts, size = [0], 0
    for start, stop in zip(starts, [*starts[1:], len(table)], strict=True):
        if size and size + (stop - start) > ROW_GROUP_ROWS:
            cuts.append(int(start))
            size = 0
        size += stop - start
    cuts.append(len(table))
    with fs.open_output_stream(path) as out, pq.ParquetWriter(out, SCHEMA) as writer:
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            if hi > lo:
                writer.write_table(table.slice(lo, hi - lo), row_group_size=hi - lo)


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal tables, NaN equal to NaN (empty reliability bins hold NaN): floats compared by
    their bits, lists by nulls, lengths and values."""
    if not a.schema.equals(b.schema) or len(a) != len(b):
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        x, y = x.combine_chunks(), y.combine_chunks()
        if pa.types.is_list(x.type):
            if not x.is_null().equals(y.is_null()):
                return False
            if not pc.list_value_length(x).equals(pc.list_value_length(y)):
                return False
            x, y = x.flatten(), y.flatten()
        if pa.types.is_floating(x.type):
            x, y = x.view(pa.int64()), y.view(pa.int64())
        if not x.equals(y):
            return False
    return True


def _verify(fs: pafs.FileSystem, path: str, merged: pa.Table, read: results_files.Read) -> None:
    """The written file holds exactly `merged`, and every source row's key is in it with the
    row of its last source (the one `_merge` kept)."""
    with fs.open_input_file(path) as f:
        file, at = pq.ParquetFile(f), 0
        for g in range(file.num_row_groups):  # a row group at a time: one copy in memory
            group = file.read_row_group(g)
            if not _same(group, merged.slice(at, len(group))):
                at = -1
                break
            at += len(group)
        back = file.read(columns=KEY)
    if at != len(merged):
        raise RuntimeError(f"compaction: {path} does not read back as written; nothing removed")
    joined = read.table.select(KEY).join(back, KEY, join_type="left anti")
    if len(joined):
        raise RuntimeError(f"compaction: {len(joined)} rows missing from {path}; nothing removed")
    if pc.sum(pa.array(read.counts)).as_py() < len(back):
        raise RuntimeError(f"compaction: {path} holds rows no source has; nothing removed")


def compact_cli(args) -> int:
    """`study compact DIR`: one line saying what was merged (and each bad file left, named),
    or one line and exit status 2 when DIR holds no results."""
    import sys

    try:
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

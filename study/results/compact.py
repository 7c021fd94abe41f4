"""Compaction: a study's per-trial results files merged into one Parquet file.

While a study runs, each trial's rows live in `results/<trial_id>.e<epoch>.parquet`, a file per
epoch (study.results.trial_rows), so the results are readable at any moment. Ten thousand small
files cost ten thousand opens to read; once the study ends (and with `study compact DIR` for an
interrupted one), they are merged into `results/compacted.parquet` (study.results.files.COMPACTED),
whose row groups hold whole trials (ROW_GROUP_ROWS rows or so each, a trial never split), so reading
some trials' columns touches only their row groups.

Safe at every step, on a local directory or any pyarrow filesystem URI, and in bounded memory
(a row group's worth of rows at a time, never the whole study):
1. the keys of every good file are read (the compacted one first, bad files are skipped, named
   and left in place) and the rows merged: a (study, trial_id, epoch) in several files keeps
   its last row;
2. the merged rows are read a row group of whole trials at a time (study.results.rows) and
   written to a hidden temporary file beside the results, which is then read back a row group
   at a time and compared with what was written (a digest of every value of every column),
   and every row of every source file is checked to be in it;
3. on a local Linux disk, the new compacted file and shortlist are written in a hidden sibling
   of results/, beside hard links of every file that stays, and the two folders are exchanged
   in one rename (study.results.compact_swap): readers see the old folder or the compacted one, each
   (trial_id, epoch) once, at every moment and after a kill at any step (a kill leaves the
   sibling, which the next compaction or `--resume` deletes or finishes cleaning). Elsewhere
   (S3, or a filesystem that cannot exchange folders) the temporary file replaces
   `compacted.parquet` (after its shortlist replaced `_shortlist.parquet`);
4. only then are the per-trial files removed (from the old folder, or from results/ in the
   fallback), each only if unchanged since it was read (a file rewritten meanwhile stays, and
   is merged next time).
In the fallback a kill before 3 leaves the old files as they were (and a temporary file
removed on the next run); after 3 the rows are in both places, which load_results
deduplicates and `pd.read_parquet` does not. Compacting again is then a no-op except for
finishing the removals: compaction is idempotent.

The shortlist (results_files.SHORTLIST) is a small file beside the compacted one: every column
of each trial's last row and of its ok row of best validation accuracy (the earliest of ties),
the rows the analysis reads the reliability bins of (`epochs="last"` and `"best"`), taken from
the compacted file as it was read back and verified. Reading those rows from it spares
decoding every row group's bins (study.results.rows); both files carry one compaction token in
their metadata, and a shortlist whose token is not the compacted file's is never used.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.crashpoints import crash_point
from study.digest import digest
from study.results import (
    compact_swap,
)
from study.results import (
    files as results_files,
)
from study.results import (
    read as results_read,
)
from study.results import (
    rows as results_rows,
)
from study.results.schema import COLUMN_NAMES, SCHEMA, SHORTLIST, STATUS_OK

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
    docstring for why this never loses a row, and what readers see meanwhile). Raises
    results_files.ResultsError when there are no results."""
    fs, files = results_files.locate(path)
    directory = files[0].rsplit("/", 1)[0]
    local = isinstance(fs, pafs.LocalFileSystem)
    if local:
        compact_swap.recover(directory)  # a compaction killed midway: finished or undone
        fs, files = results_files.locate(path)
    _remove_stale(fs, directory)
    stamps = {i.path: (i.size, i.mtime_ns) for i in fs.get_file_info(files)}
    read = results_read.read(path, KEY)
    order = _merged(read.table)
    cuts = _cuts(read.table.select(["study", "trial_id"]).take(pa.array(order)))
    target = f"{directory}/{results_files.COMPACTED}"
    token = uuid.uuid4().hex
    staged = compact_swap.stage(directory, token) if local else None
    where = directory if staged is None else str(staged)
    tmp, tmp_short = (f"{where}/{n}" for n in _names(token, staged is not None))
    schema = SCHEMA.with_metadata({results_files.TOKEN: token})
    swapped = False
    try:
        digests = _write(fs, read, order, cuts, tmp, schema)
        shortlist = _verify(fs, tmp, digests, read, order)
        with fs.open_output_stream(tmp_short) as out:
            pq.write_table(shortlist.replace_schema_metadata(schema.metadata), out)
        crash_point("compact-written")
        if staged is not None:
            covered = {f.rsplit("/", 1)[1]: stamps[f] for f in read.files}
            swapped = _swap(staged, directory, covered, token)
        if not swapped:
            if staged is not None:  # no exchange here: the renames below, from results/
                for a, b in zip((tmp, tmp_short), _names(token, False), strict=True):
                    _replace(fs, a, f"{directory}/{b}")
                tmp, tmp_short = (f"{directory}/{n}" for n in _names(token, False))
                shutil.rmtree(staged)
            _replace(fs, tmp_short, f"{directory}/{SHORTLIST}")
            _replace(fs, tmp, target)
    except BaseException:
        if staged is not None and not swapped:
            shutil.rmtree(staged, ignore_errors=True)
        for t in (tmp, tmp_short):
            if t.startswith(f"{directory}/") and fs.get_file_info(t).type == pafs.FileType.File:
                fs.delete_file(t)
        raise
    if swapped:  # `staged` is now the old folder
        hook = functools.partial(crash_point, "compact-removing")
        removed = compact_swap.clean(staged, directory, token, hook)
        return Compaction(target, len(order), len(read.files), removed, read.skipped)

    def unchanged_removed(f: str) -> bool:
        info = fs.get_file_info(f)
        if (info.size, info.mtime_ns) != stamps.get(f):
            return False
        _remove(fs, f)
        return True

    others = [f for f in read.files if f != target]
    with ThreadPoolExecutor(results_files.io_threads(fs)) as pool:  # a request each, on S3
        removed = sum(pool.map(unchanged_removed, others))
    return Compaction(target, len(order), len(read.files), removed, read.skipped)


def _names(token: str, staged: bool) -> tuple[str, str]:
    """The new compacted file's and shortlist's names while written: their own in the staged
    folder, hidden temporary ones in results/."""
    if staged:
        return results_files.COMPACTED, SHORTLIST
    return f"{TMP_PREFIX}{token}.parquet", f"{TMP_PREFIX}{token}-short.parquet"


def _swap(staged, directory: str, covered: dict[str, tuple[int, int]], token: str) -> bool:
    """compact_swap's steps 1 and 2 (links and manifest, the exchange); False where the
    filesystem cannot exchange (nothing changed in results/ then)."""
    compact_swap.fill(staged, directory, covered, token)
    crash_point("compact-staged")
    done = compact_swap.swap(staged, directory)
    if done:
        crash_point("compact-swapped")
    return done


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

"""A trial's rows on storage, each epoch written once (issue 21):
`<dir>/<trial_id>.e<epoch>.parquet`, one small file per epoch, written atomically (temporary
file, then rename; on object storage one upload) when the epoch is reported, and rewritten only
when that epoch is reported again (a trial restored from a checkpoint redoes the epochs after
it: the file's name is its epoch's, so its row is replaced, never duplicated). So
`pandas.read_parquet(dir)` sees each (trial_id, epoch) once at every moment while a study runs,
and the bytes a trial writes grow with its epochs, O(E): rewriting one file per trial on every
epoch, as before, wrote E/2 times the final file (O(E²); benchmarks/bench_scale.py,
docs/study.md "Scale"). The study's end merges the files into one (study.results.compact).

A trial whose whole file `<dir>/<trial_id>.parquet` exists (a study written before this layout,
resumed) keeps that file, rewritten whole with every row, as before; so does a TrialRows made
with `parts=False` (the benchmark's baseline). A trial never has both.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.results import quarantine
from study.results.files import LEAN, write_atomic
from study.results.names import Listing, listing_of, part_name
from study.results.quarantine import Recover
from study.results.schema import SCHEMA_VERSION, STATUS_OK, to_table


class TrialRows:
    """The rows of one trial, keyed by epoch: `put` sets a row and writes it; `set` changes it in
    memory and `write` (from another thread: study.tune.writer's background threads) puts every
    row set since the last write on storage. `path` is the trial's whole file,
    `<dir>/<trial_id>.parquet` (see the module doc for when it is used). `lazy`: the rows on
    storage are read by the first `write`, not here. `listing(trial_id)`: the names of the
    trial's files (a writer of many trials lists its directory once); default: listed here.
    A damaged local file is quarantined and its rows taken from `recover(study_dir, trial_id)`
    (study.tune.checkpoint.checkpoint_rows: the results layer knows no checkpoint layout)."""

    def __init__(
        self,
        path: Path,
        filesystem: pafs.FileSystem | None = None,
        recover: Recover | None = None,
        lazy: bool = False,
        parts: bool = True,
        listing: Listing | None = None,
    ):
        self.path, self.filesystem, self.recover = Path(path), filesystem, recover
        self.directory, self.trial_id = self.path.parent, self.path.stem
        self.listing = listing or self._list
        self.whole = not parts  # one file rewritten whole (decided again on reading storage)
        self.rows: dict[int, dict[str, Any]] = {}
        self.dirty: set[int] = set()  # epochs set since the last write
        self.lock = threading.Lock()  # `rows` and `dirty` between `set` and a concurrent `write`
        self.changes = self.written = 0  # rows set so far; rows of them on storage
        self.loaded = not lazy
        self._converted: tuple[list[dict[str, Any]], pa.Table | None] = ([], None)
        if not lazy:
            self.rows = self._read()

    def _list(self, trial_id: str) -> list[str]:
        return listing_of(self.directory, self.filesystem).get(trial_id, [])

    def _read(self) -> dict[int, dict[str, Any]]:
        """The rows on storage, by epoch: the whole file's, else every epoch file's. A damaged
        local file is set aside, and the rows the checkpoint holds that no other file of the
        trial has are taken from `recover` (to be written by the next write)."""
        names = self.listing(self.trial_id)
        if self.path.name in names:
            self.whole, names = True, [self.path.name]
        found, damaged = [], False
        for name in names:
            where = self.directory / name
            if self.filesystem is not None:  # remote storage: an upload is whole or absent
                found += pq.read_table(str(where), filesystem=self.filesystem).to_pylist()
                continue
            why = quarantine.problem(where)
            if why is None:
                found += pq.read_table(where).to_pylist()
            elif where.exists():
                quarantine.set_aside(where, why)
                damaged = True
        rows = {row["epoch"]: row for row in found}
        if damaged and self.recover is not None:
            recovered = self.recover(self.directory.parent, self.trial_id)
            for row in recovered:
                if row["epoch"] not in rows:
                    rows[row["epoch"]] = row
                    self.dirty.add(row["epoch"])
        return rows

    def set(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]` in memory."""
        with self.lock:
            epoch = int(row["epoch"])
            self.rows[epoch] = {**row, "schema_version": SCHEMA_VERSION}
            self.dirty.add(epoch)
            self.changes += 1

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]`, then write it."""
        self.set(row)
        self.write()

    def load(self) -> None:
        """Read a lazy trial's rows on storage once: under the ones set since (which are newer)."""
        if not self.loaded:
            old = self._read()
            with self.lock:
                self.rows = {**old, **self.rows}
                self.loaded = True

    def write(self) -> int:
        """Put the rows set since the last write on storage (each epoch's file; or the whole
        file rewritten with every row); how many were set since the last write (for the crash
        point `row`). Epochs whose file was not written stay to be written."""
        self.load()
        with self.lock:
            changes, dirty, self.dirty = self.changes, self.dirty, set()
            rows = [self.rows[e] for e in sorted(self.rows if self.whole else dirty)]
        try:
            if self.whole:
                write_atomic(self._table(rows), self.path, self.filesystem)
            else:
                for row in rows:
                    where = self.directory / part_name(self.trial_id, row["epoch"])
                    write_atomic(to_table([row]), where, self.filesystem, LEAN)
                    dirty.discard(row["epoch"])
        except BaseException:
            with self.lock:
                self.dirty |= dirty
            raise
        new, self.written = changes - self.written, changes
        return new

    def _table(self, rows: list[dict[str, Any]]) -> pa.Table:
        """`to_table(rows)`, converting only the rows appended since the last call (converting
        a trial's every row on every epoch costs ~10 ms of CPU at 50 epochs, under the GIL)."""
        done, table = self._converted
        head = rows[: len(done)]
        if (
            table is None
            or len(head) < len(done)
            or any(a is not b for a, b in zip(done, head, strict=True))
        ):
            table = to_table(rows)
        elif len(rows) > len(done):
            table = pa.concat_tables([table, to_table(rows[len(done) :])]).combine_chunks()
        self._converted = (rows, table)
        return table

    @property
    def last_epoch(self) -> int:
        ok = [e for e, r in self.rows.items() if r.get("status") == STATUS_OK]
        return max(ok, default=0)

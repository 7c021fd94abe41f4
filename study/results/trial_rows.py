"""Atomic per-trial files: a trial's rows live in one file, `<dir>/<trial_id>.parquet`,
rewritten atomically (temporary file, then rename) with every row it has (a study's writer
threads rewrite it once for the epochs that came meanwhile: study.results.background) so
`pandas.read_parquet(dir)` works while a study runs; a re-reported epoch replaces its row, so
rows are never duplicated.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.results import quarantine
from study.results.files import write_atomic
from study.results.quarantine import Recover
from study.results.schema import SCHEMA_VERSION, STATUS_OK, to_table


class TrialRows:
    """The rows of one trial, keyed by epoch, persisted to one Parquet file on every change
    (`put`), or changed in memory (`set`) and persisted later (`write`, from another thread:
    study.tune.writer's background threads); `lazy`: the existing file is read by the first
    `write`, not here. A damaged local file is quarantined and its rows taken from
    `recover(study_dir, trial_id)` (study.tune.checkpoint.checkpoint_rows: the results layer
    knows no checkpoint layout)."""

    def __init__(
        self,
        path: Path,
        filesystem: pafs.FileSystem | None = None,
        recover: Recover | None = None,
        lazy: bool = False,
    ):
        self.path, self.filesystem, self.recover = Path(path), filesystem, recover
        self.rows: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()  # `rows` between `set` and a concurrent `write`
        self.changes = self.written = 0  # rows set so far; rows of them on storage
        self.loaded = not lazy
        self._converted: tuple[list[dict[str, Any]], pa.Table | None] = ([], None)
        if not lazy:
            self.rows = self._read()

    def _read(self) -> dict[int, dict[str, Any]]:
        """The rows already in the file, by epoch (a damaged local file: set aside, its rows
        from `recover`)."""
        found: list[dict[str, Any]] = []
        if self.filesystem is not None:  # remote storage: an upload is whole or absent
            if _exists(self.path, self.filesystem):
                found = pq.read_table(str(self.path), filesystem=self.filesystem).to_pylist()
        elif self.path.exists():
            why = quarantine.problem(self.path)
            if why is not None:
                quarantine.set_aside(self.path, why)
            recover = self.recover
            found = (
                (recover(self.path.parent.parent, self.path.stem) if recover else [])
                if why
                else pq.read_table(self.path).to_pylist()
            )
        return {row["epoch"]: row for row in found}

    def set(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]` in memory."""
        with self.lock:
            self.rows[int(row["epoch"])] = {**row, "schema_version": SCHEMA_VERSION}
            self.changes += 1

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]`, then rewrite the file atomically."""
        self.set(row)
        self.write()

    def load(self) -> None:
        """Read a lazy trial's file once: its rows under the ones set since (which are newer)."""
        if not self.loaded:
            old = self._read()
            with self.lock:
                self.rows = {**old, **self.rows}
                self.loaded = True

    def write(self) -> int:
        """Rewrite the file with every row held now; the rows set since the last write (what
        this write put on storage, for the crash point `row`)."""
        self.load()
        with self.lock:
            rows, changes = [self.rows[e] for e in sorted(self.rows)], self.changes
        write_atomic(self._table(rows), self.path, self.filesystem)
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


def _exists(path: Path, filesystem: pafs.FileSystem | None) -> bool:
    if filesystem is None:
        return path.exists()
    return filesystem.get_file_info(str(path)).type != pafs.FileType.NotFound


def parquet_files(directory: Path, filesystem: pafs.FileSystem | None) -> list[Path]:
    """The `*.parquet` files directly in `directory` (local, or on a remote filesystem)."""
    if filesystem is None:
        return sorted(Path(directory).glob("*.parquet"))
    found = filesystem.get_file_info(pafs.FileSelector(str(directory), allow_not_found=True))
    return sorted(Path(f.path) for f in found if f.is_file and f.path.endswith(".parquet"))

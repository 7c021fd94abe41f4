"""Atomic per-trial files: a trial's rows live in one file, `<dir>/<trial_id>.parquet`,
rewritten atomically (temporary file, then rename) on every epoch so `pandas.read_parquet(dir)`
works while a study runs; a re-reported epoch replaces its row, so rows are never duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from study.results import quarantine
from study.results.files import write_atomic
from study.results.quarantine import Recover
from study.results.schema import SCHEMA_VERSION, STATUS_OK, to_table


class TrialRows:
    """The rows of one trial, keyed by epoch, persisted to one Parquet file on every change.
    A damaged local file is quarantined and its rows taken from `recover(study_dir, trial_id)`
    (study.tune.checkpoint.checkpoint_rows: the results layer knows no checkpoint layout)."""

    def __init__(
        self,
        path: Path,
        filesystem: pafs.FileSystem | None = None,
        recover: Recover | None = None,
    ):
        self.path, self.filesystem = Path(path), filesystem
        self.rows: dict[int, dict[str, Any]] = {}
        if filesystem is not None:  # remote storage: an upload is whole or absent
            if _exists(self.path, filesystem):
                for row in pq.read_table(str(self.path), filesystem=filesystem).to_pylist():
                    self.rows[row["epoch"]] = row
        elif self.path.exists():
            why = quarantine.problem(self.path)  # set aside; its rows from `recover`
            if why is not None:
                quarantine.set_aside(self.path, why)
            found = (
                (recover(self.path.parent.parent, self.path.stem) if recover else [])
                if why
                else pq.read_table(self.path).to_pylist()
            )
            for row in found:
                self.rows[row["epoch"]] = row

    def put(self, row: dict[str, Any]) -> None:
        """Insert or replace the row of `row["epoch"]`, then rewrite the file atomically."""
        self.rows[int(row["epoch"])] = {**row, "schema_version": SCHEMA_VERSION}
        rows = to_table(self.rows[e] for e in sorted(self.rows))
        write_atomic(rows, self.path, self.filesystem)

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

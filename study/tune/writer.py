"""The study's rows on the driver: a Tune callback that writes every reported epoch's row, off
Tune's loop on `STUDY_WRITER_THREADS` threads (16; study.results.background, issue 21), and one
error row for a trial that fails. benchmarks/bench_scale.py measures it (docs/study.md
"Scale")."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from study.crashpoints import crash_point
from study.results.background import BackgroundWriter
from study.results.schema import STATUS_ERROR, last_line
from study.results.trial_rows import TrialRows, listing_of
from study.train.identity import trial_columns
from study.tune.checkpoint import checkpoint_rows

# threads writing results files off Tune's loop (benchmarks/bench_scale.py, docs/study.md)
WRITER_THREADS = int(os.environ.get("STUDY_WRITER_THREADS", "16"))


def error_message(trial: Any) -> str:
    """The last line of a Tune trial's error file (e.g. "ValueError: boom"), or a generic line."""
    path = getattr(trial, "error_file", None)
    return last_line(Path(path).read_text() if path and Path(path).exists() else "")


class ResultsWriter(tune.Callback):
    """The driver-side Tune callback of a study: every reported epoch's row →
    `<dir>/<trial_id>.e<epoch>.parquet` (study.results.trial_rows; `parts=False`: every row of
    a trial in `<dir>/<trial_id>.parquet`, rewritten on every epoch, the layout before issue 21).

    Rows are keyed on (trial_id, epoch), so an epoch redone after a restore replaces its row.
    `workers=0`: each report writes before returning (the old, serial writer).
    `workers=K`: K threads write (study.results.background), coalescing a trial's pending epochs
    into one write; `flush` waits for them and is called before every snapshot of Tune's
    experiment state (`get_state`), when a trial errors, and at the experiment's end, so a
    snapshot never names an epoch whose row is not on storage. A trial that errors gets one
    more row, status "error", at the epoch it failed in, with the error's last line.
    """

    def __init__(
        self,
        directory: Path,
        study: str,
        spec: Any,
        filesystem: pafs.FileSystem | None = None,
        workers: int = 0,
        max_pending: int = 4096,
        parts: bool = True,
    ):
        self.directory, self.study, self.spec = Path(directory), study, spec
        self.filesystem = filesystem  # None: local; else where `directory` is (study.tune.storage)
        self.workers, self.max_pending, self.parts = workers, max_pending, parts
        self._trials: dict[str, TrialRows] = {}
        self._pool: BackgroundWriter | None = None  # started on the first row
        self._listing: dict[str, list[str]] | None = None  # the directory's files, listed once
        self._listed = threading.Lock()  # writer threads may ask for the listing at once

    def __getstate__(self) -> dict[str, Any]:  # a restored writer reads the files again
        return {**self.__dict__, "_trials": {}, "_pool": None, "_listing": None, "_listed": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A pickled writer; one of v0.2 (a Tune snapshot from before issue 21) wrote serially
        and has no `workers`: it gets this version's threads, and writes the epochs of a trial
        that has no whole file as epoch files."""
        defaults = {"workers": WRITER_THREADS, "max_pending": 4096, "parts": True}
        self.__dict__.update({**defaults, **state})
        self.__dict__.update(_trials={}, _pool=None, _listing=None, _listed=threading.Lock())

    def rows(self, trial_id: str) -> TrialRows:
        if trial_id not in self._trials:
            path = self.directory / f"{trial_id}.parquet"
            lazy = self.workers > 0
            self._trials[trial_id] = TrialRows(
                path, self.filesystem, checkpoint_rows, lazy, self.parts, self._files
            )
        return self._trials[trial_id]

    def _files(self, trial_id: str) -> list[str]:
        """The names of a trial's files as they were before this writer wrote (one listing of
        the directory for all its trials: on object storage a listing per trial would cost a
        request per trial, each listing every file)."""
        with self._listed:
            if self._listing is None:
                self._listing = listing_of(self.directory, self.filesystem)
            return self._listing.get(trial_id, [])

    def put(self, trial_id: str, row: dict[str, Any]) -> None:
        rows, row = self.rows(trial_id), {**row, "study": self.study, "trial_id": trial_id}
        if not self.workers:
            rows.put(row)
            return self.wrote(1)
        if self._pool is None:
            self._pool = BackgroundWriter(self._write, self.workers, self.max_pending)
            atexit.register(self._close_at_exit)
        rows.set(row)
        self._pool.submit(trial_id)

    def _write(self, trial_id: str) -> None:
        self.wrote(self._trials[trial_id].write())

    def wrote(self, rows: int) -> None:
        """Called once `rows` more rows are on storage: the kill tests' crash point `row`
        (`STUDY_CRASH_AT=row:N`: right after the N-th row is on storage)."""
        for _ in range(rows):
            crash_point("row")

    def flush(self) -> None:
        """Every row reported so far on storage; raises a background write's error."""
        if self._pool is not None:
            self._pool.flush()

    def close(self) -> None:
        """Flush and stop the writer threads (a later row starts new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            atexit.unregister(self._close_at_exit)
            pool.close()

    def _close_at_exit(self) -> None:
        pool = self._pool
        try:
            self.close()
        except Exception as e:  # noqa: BLE001 - the interpreter is exiting: say it, one line
            if not pool.raised:  # else the caller has said it already
                print(f"study: results not all written at exit: {e}", file=sys.stderr)

    def get_state(self) -> dict | None:
        """Tune calls this while it snapshots the experiment state, before the snapshot is
        uploaded: the rows of every epoch the snapshot names are on storage first."""
        self.flush()
        return None

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if result.get("row"):
            self.put(trial.trial_id, result["row"])

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self.flush()  # its rows (and the file's) are known, so the failed epoch is the next
        rows = self.rows(trial.trial_id)
        rows.load()  # the files' rows too (a trial restored after a crash), no rewrite
        try:
            identity = trial_columns(self.spec.trial_config(trial.config))
        except ValueError:  # the config itself is what failed
            identity = {}
        epoch = max(rows.rows, default=0) + 1
        message = error_message(trial)
        self.put(
            trial.trial_id, {**identity, "epoch": epoch, "status": STATUS_ERROR, "message": message}
        )

    def on_experiment_end(self, trials: list, **info) -> None:
        """Set aside files of trials the study no longer has (started just before a driver
        crash, then replaced on resume), so the results hold exactly the study's trials.
        Every row is written first."""
        self.close()
        known = {t.trial_id for t in trials}
        fs = self.filesystem or pafs.LocalFileSystem()
        for trial, names in listing_of(self.directory, self.filesystem).items():
            for name in names if trial not in known else []:
                target = self.directory.parent / "orphaned_results" / name
                fs.create_dir(str(target.parent), recursive=True)
                fs.move(str(self.directory / name), str(target))


Writer = ResultsWriter  # the name a study's Tune snapshot pickled before issue 19's move

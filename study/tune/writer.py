"""The study's rows on the driver: a Tune callback that writes every reported epoch's row, and
one error row for a trial that fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from study.crashpoints import crash_point
from study.results.schema import COMPACTED, SHORTLIST, STATUS_ERROR, last_line
from study.results.trial_rows import TrialRows, parquet_files
from study.train.identity import trial_columns
from study.tune.checkpoint import checkpoint_rows


def error_message(trial: Any) -> str:
    """The last line of a Tune trial's error file (e.g. "ValueError: boom"), or a generic line."""
    path = getattr(trial, "error_file", None)
    return last_line(Path(path).read_text() if path and Path(path).exists() else "")


class ResultsWriter(tune.Callback):
    """The driver-side Tune callback of a study: every reported epoch's row →
    `<dir>/<trial_id>.parquet` (study.results.trial_rows).

    Rows are keyed on (trial_id, epoch) and flushed on every report, so an epoch redone after a
    restore replaces its row and nothing is lost when the driver dies. A trial that errors gets
    one more row, status "error", at the epoch it failed in, with the error's last line.
    """

    def __init__(
        self, directory: Path, study: str, spec: Any, filesystem: pafs.FileSystem | None = None
    ):
        self.directory, self.study, self.spec = Path(directory), study, spec
        self.filesystem = filesystem  # None: local; else where `directory` is (study.tune.storage)
        self._trials: dict[str, TrialRows] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_trials": {}}  # a restored writer reads the files again

    def rows(self, trial_id: str) -> TrialRows:
        if trial_id not in self._trials:
            path = self.directory / f"{trial_id}.parquet"
            self._trials[trial_id] = TrialRows(path, self.filesystem, recover=checkpoint_rows)
        return self._trials[trial_id]

    def put(self, trial_id: str, row: dict[str, Any]) -> None:
        self.rows(trial_id).put({**row, "study": self.study, "trial_id": trial_id})
        crash_point("row")  # the kill tests' `STUDY_CRASH_AT=row:N`: right after the N-th row

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if result.get("row"):
            self.put(trial.trial_id, result["row"])

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        rows = self.rows(trial.trial_id)
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
        crash, then replaced on resume), so the results hold exactly the study's trials."""
        known = {t.trial_id for t in trials}
        fs = self.filesystem or pafs.LocalFileSystem()
        for path in parquet_files(self.directory, self.filesystem):
            if path.stem not in known and path.name not in (COMPACTED, SHORTLIST):
                target = self.directory.parent / "orphaned_results" / path.name
                fs.create_dir(str(target.parent), recursive=True)
                fs.move(str(path), str(target))


Writer = ResultsWriter  # the name a study's Tune snapshot pickled before issue 19's move

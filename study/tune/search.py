"""The study's Optuna storage, kept in its directory by default, and the tags that join it to
the results: every Optuna trial carries its Tune trial id, the results directory, a pandas
line that reads its rows (`rows`: true before and after the study's end merges the per-trial
files into `results/compacted.parquet`) and its final status, and the study names its
objectives, so `optuna-dashboard` shows "val_acc" and "val_cal_ece" (not "Objective 0/1") and
each of its trials can be found in `results/`. Per-epoch values: `Trial.report(value, epoch)`
with one objective (the dashboard's intermediate-values plot); Optuna has no intermediate
values for several objectives, so there each objective's values by epoch are the user attr
`curve.<metric>` (a list, epoch 1 first).

Default: SQLite, `<study_dir>/optuna.db`, chosen by measurement against a journal file
(benchmarks/bench_optuna_storage.py, docs/study.md "Optuna storage"): both reopened after every
SIGKILL of a writing driver, but the journal file's lock outlived the driver each time, so the
next open (a `--resume`) waited out its 30-s grace period; SQLite reopened in 2-4 s. SQLite costs
more per trial (~0.4 s against ~0.1 s), nothing beside a trial's minutes.
`search.storage: URL` (any Optuna RDB URL, `{study_dir}` filled in) overrides it.
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage

DEFAULT_URL = "sqlite:///{study_dir}/optuna.db"  # the default storage, inside the study dir
TAGS = ("tune_trial_id", "results", "rows", "status")  # user attrs of every Optuna trial
CURVE = "curve."  # + metric: per-epoch values of a multi-objective trial (user attr)
NONE = "none"  # a searched parameter's logged value where the trial's method has none
REDRAWS = 20  # at most this many draws of a trial that repeats another (then it runs)


def open_storage(kind: str, path: str) -> BaseStorage:
    """A storage of `kind` ("journal" or "sqlite") at the file `path`."""
    if kind == "journal":  # the measured alternative (optuna >= 4)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(path))
    if kind == "sqlite":
        return RDBStorage(f"sqlite:///{path}")
    raise ValueError(f"unknown storage kind {kind!r}; valid: journal, sqlite")


def storage_url(url: str | None, study_dir: Path) -> str:
    """The URL `optuna-dashboard` and `optuna.load_study` take: the spec's (default
    DEFAULT_URL) with `{study_dir}` filled in."""
    return (url or DEFAULT_URL).replace("{study_dir}", str(study_dir))


def study_storage(url: str | None, study_dir: Path) -> BaseStorage:
    """The storage of a study: SQLite in its directory unless the spec names another."""
    return RDBStorage(storage_url(url, study_dir))


def create_study(spec: Any, storage: BaseStorage) -> optuna.Study:
    """Create (or load) the spec's Optuna study and name its objectives after the metrics;
    study.tune.searcher then loads this study (`load_if_exists`) with the spec's sampler."""
    goals = spec.search.objectives
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        directions=["maximize" if o.mode == "max" else "minimize" for o in goals],
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in goals])
    return study


def dashboard_command(url: str | None, study_dir: Path) -> str:
    """The shell command that opens a study's storage in optuna-dashboard, runnable as printed:
    the bare name when it is on PATH, else the path beside this Python (the venv's bin/, which
    is not on PATH unless the venv is active)."""
    beside = Path(sys.executable).parent / "optuna-dashboard"
    program = "optuna-dashboard" if shutil.which("optuna-dashboard") else str(beside)
    return f"{shlex.quote(program)} {shlex.quote(storage_url(url, study_dir))}"


def rows_line(study_dir: str, trial_id: str) -> str:
    """The `rows` tag: a pandas line that reads exactly `trial_id`'s rows from the study's
    results directory, whether it holds per-trial files (running) or the compacted file (ended;
    pyarrow skips the `_shortlist.parquet` beside it, as it skips every name starting `_`)."""
    where = f"{study_dir.rstrip('/')}/results"
    return f"pd.read_parquet({where!r}, filters=[('trial_id', '==', {trial_id!r})])"


def twin(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """An earlier trial of `study` with exactly `trial`'s parameters, complete or still
    running: what a sampler draws again for a choice that brings no parameter of its own (ERM:
    `method.name=erm` and nothing else), which would run the same training twice."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    for other in study.get_trials(deepcopy=False, states=states):
        if other.number != trial.number and other.params == trial.params:
            if "duplicate_of" not in other.user_attrs:
                return other
    return None


def final_status(result: dict[str, Any] | None, error: bool) -> str:
    """The status written to Parquet at a trial's last epoch (ok | diverged | error); Tune
    hands searchers the result flattened (`row/status`)."""
    result = result or {}
    status = (result.get("row") or {}).get("status") or result.get("row/status")
    return "error" if error else str(status or "unknown")


def report_epoch(trial: optuna.Trial, metric: str | list[str], epoch: int, result: dict) -> None:
    """One epoch's objective values to Optuna at step `epoch`: `Trial.report` with one objective;
    with several, which `report` refuses, the user attrs `curve.<metric>`. Nothing for a trial
    the storage already holds finished; `report` keeps a value it holds for an epoch reported
    again (a resumed trial), the curve takes the new one."""
    metrics = metric if isinstance(metric, list) else [metric]
    values = {m: float(result[m]) for m in metrics if result.get(m) is not None}
    try:
        if not isinstance(metric, list):
            if metric in values:
                trial.report(values[metric], epoch)
            return
        attrs = trial.user_attrs
        for name, value in values.items():
            trial.set_user_attr(CURVE + name, curve(attrs.get(CURVE + name), epoch, value))
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def curve(values: list | None, epoch: int, value: float) -> list:
    """`values` (epoch 1 first) with `epoch`'s value set: appended, or put in its place when
    a resumed trial reports an epoch again; a gap (never expected) is filled with None."""
    out = list(values or [])
    out += [None] * (int(epoch) - len(out))
    out[int(epoch) - 1] = value if math.isfinite(value) else None
    return out


def tag(trial: optuna.Trial, **attrs: str) -> None:
    """Set user attrs unless the storage already holds the trial finished: after a driver
    crash the database runs ahead of Tune's snapshot, so a restored searcher may meet a trial
    it told before the crash (its `tell` then fails the same way, and is logged)."""
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass

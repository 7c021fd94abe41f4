"""A study on Ray Tune: the trainable around `run_trial`, the Tuner, resources, resume.

`study run SPEC` reads the dataset once on the driver, unsplit, and shares it through Ray's
object store (`tune.with_parameters`); every trial splits it by its own `dataset.split_seed`,
builds its TrialConfig from the spec and its Optuna
parameters (`OptunaSearch` over the spec's define-by-run function), reports every epoch (the
Parquet row plus the objectives), checkpoints every `tune.checkpoint_every` epochs and resumes
from `tune.get_checkpoint()`. `ResultsWriter` (study.results) writes the rows on the driver.
Layout: `<storage>/<study>/{spec.yaml, results/*.parquet, tune/}` (DESIGN.md, docs/study.md).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from study import cluster, credentials, names, start, storage
from study import data as data_mod
from study.config import ConfigError
from study.loggers import make_loggers, searched
from study.optuna_store import TaggedSearch, create_study, dashboard_command, study_storage
from study.progress import LiveStatus
from study.results import STATUS_OK, ResultsWriter
from study.spec import SAMPLERS, StudySpec
from study.trial import run_trial
from study.yamlio import dump_yaml

STATE_FILE = "state.pt"
ROWS = "rows_json"  # a checkpoint's rows so far, as JSON (loads with weights_only=True)
DEFAULT_STORAGE = Path("studies")


def trainable(config: dict[str, Any], spec: StudySpec, data: data_mod.SharedData) -> None:
    """One trial: `run_trial` from the latest checkpoint, reporting and checkpointing epochs.
    Torch uses as many threads as the trial has CPUs, whatever the worker's environment."""
    cfg = spec.trial_config(config)
    if cfg.runtime.threads is None:
        cfg = cfg.replace(**{"runtime.threads": max(1, int(spec.resources.cpu))})
    where = {"node_id": ray.get_runtime_context().get_node_id(), "gpu_ids": cluster.assigned_gpus()}
    state = _resume_state()
    history = rows_of(state) if state else []
    if state is not None and "model" not in state:  # the trial ended (diverged) at its last row
        return tune.report(_metrics(spec, history[-1]))
    report = functools.partial(_report, spec, where, history)
    run_trial(cfg, report, resume=state, data=data.split(cfg.dataset))


def _resume_state() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, weights_only=True)


def rows_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a checkpoint holds: every epoch of its trial up to it (what rebuilds a damaged
    results file, study.quarantine)."""
    return json.loads(state.get(ROWS, "[]"))


def _metrics(spec: StudySpec, row: dict[str, Any]) -> dict[str, Any]:
    return {"row": row, "epoch": row["epoch"], **objective_values(spec, row)}


def _report(
    spec: StudySpec, where: dict[str, str], history: list, row: dict[str, Any], state_fn: Any
) -> None:
    """Report one epoch: the row (with its node and GPUs), its epoch and the objectives (worst
    value when missing, so a diverged trial ranks last); with a checkpoint every
    `checkpoint_every` epochs and last, and after a divergence (its rows only). Checkpoints
    carry the trial's rows so far."""
    row = {**row, **where}
    history[:] = [r for r in history if r["epoch"] < row["epoch"]] + [row]
    epoch = row["epoch"]
    due = epoch % spec.tune.checkpoint_every == 0 or epoch == row["epochs"]
    if row["status"] == STATUS_OK and not due:
        return tune.report(_metrics(spec, row))
    state = state_fn() if row["status"] == STATUS_OK else {}
    with tempfile.TemporaryDirectory() as d:
        torch.save({**state, ROWS: json.dumps(history)}, Path(d) / STATE_FILE)
        tune.report(_metrics(spec, row), checkpoint=tune.Checkpoint.from_directory(d))


def objective_values(spec: StudySpec, row: dict[str, Any]) -> dict[str, float]:
    worst = {"max": -math.inf, "min": math.inf}
    return {
        o.metric: worst[o.mode] if row.get(o.metric) is None else float(row[o.metric])
        for o in spec.search.objectives
    }


class StudySearch(TaggedSearch):
    """OptunaSearch whose restore hands a crashed driver's orphans back to the sampler: an
    Optuna trial still RUNNING that no Tune trial owns (with a persistent storage the database
    runs ahead of Tune's last snapshot) is marked failed and its parameters queued again."""

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        owned = {t.number for t in self._ot_trials.values()}
        for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in owned:
                self._ot_study.tell(t.number, state=TrialState.FAIL)
                self._ot_study.enqueue_trial(t.params)


class Writer(ResultsWriter, tune.Callback):
    """study.results.ResultsWriter as a Tune callback (crash point `row` after each row: the
    kill tests' `STUDY_CRASH_AT=row:N`)."""

    def put(self, trial_id: str, row: dict[str, Any]) -> None:
        super().put(trial_id, row)
        start.crash_point("row")


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def make_tuner(spec: StudySpec, study_dir: storage.Location, wrapped: Any) -> tune.Tuner:
    """A Tuner for `spec`: OptunaSearch (one or several objectives), optional ASHA, retries,
    checkpoints, the results writer and the progress lines."""
    goals = spec.search.objectives
    metric = [o.metric for o in goals] if len(goals) > 1 else goals[0].metric
    mode = [o.mode for o in goals] if len(goals) > 1 else goals[0].mode
    home = _home(study_dir)
    home.mkdir(parents=True, exist_ok=True)
    storage = study_storage(spec.search.storage, home)
    create_study(spec, storage)  # names the objectives; OptunaSearch loads it
    searcher = StudySearch(
        space=spec.suggest,
        metric=metric,
        mode=mode,
        sampler=SAMPLERS[spec.sampler](spec),
        study_name=spec.name,
        points_to_evaluate=[dict(p) for p in spec.search.points] or None,
        storage=storage,
    )
    searcher.redraw_repeats = spec.sampler != "grid"  # a grid's points are distinct already
    searcher.points = len(spec.search.points)
    searcher.study_dir = study_dir.uri  # the `rows` tag's results directory (no query)
    asha = spec.search.asha
    epochs = spec.trial_config(next(spec.corner_params())).train.epochs
    scheduler = (
        None
        if asha is None
        else ASHAScheduler(
            time_attr="epoch",
            metric=goals[0].metric,
            mode=goals[0].mode,
            max_t=epochs,
            grace_period=asha.grace_period,
            reduction_factor=asha.reduction_factor,
        )
    )
    t = spec.tune
    results, fs = _results(study_dir)
    return tune.Tuner(
        wrapped,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.num_trials,
            max_concurrent_trials=t.max_concurrent_trials or trials_that_fit(spec),
            reuse_actors=t.reuse_actors,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=study_dir.path,
            storage_filesystem=study_dir.filesystem,
            failure_config=tune.FailureConfig(max_failures=t.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=t.keep_checkpoints),
            callbacks=[
                Writer(results, spec.name, spec, fs),
                LiveStatus(spec, home),
                *make_loggers(t.loggers, home, spec.name, searched(spec)),
            ],
            verbose=0,
        ),
    )


def _results(study_dir: storage.Location) -> tuple[Path, Any]:
    """The results directory (a path in its filesystem) and its filesystem (None: local)."""
    return Path((study_dir / "results").path), study_dir.filesystem


def _home(study_dir: storage.Location) -> Path:
    """Where the study's local companions live (study.log, the Optuna SQLite storage, the
    loggers' files): the study directory itself, or ./studies/<name> when the study's storage
    is remote (SQLite and the loggers need a local filesystem)."""
    if study_dir.local:
        return Path(study_dir.path)
    return DEFAULT_STORAGE / Path(study_dir.path).name


def trials_that_fit(spec: StudySpec) -> int:
    """How many trials the cluster's CPUs and GPUs hold at once (Tune runs a searcher's trials
    one at a time unless told)."""
    total = ray.cluster_resources()
    needs = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    return max(1, min(int(total.get(k, 0) // v) for k, v in needs.items() if v > 0))


def check_resources(spec: StudySpec) -> None:
    """Fail fast (ConfigError) when no node of the cluster can hold one trial."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for key, need in (("CPU", spec.resources.cpu), ("GPU", spec.resources.gpu)):
        most = max((n.get(key, 0.0) for n in nodes), default=0.0)
        if need > most:
            raise ConfigError(
                f"resources.{key.lower()}={need:g} per trial, but the largest of the cluster's "
                f"{len(nodes)} node(s) has {most:g} {key}: lower it (e.g. --set "
                f"resources.{key.lower()}={most:g}) or add nodes that have it"
            )


def _local(study_dir: storage.Location) -> Path | None:
    """The study directory as a local path: the crash-consistency of study.start and the
    quarantine of study.quarantine work on local files; None on remote storage (an object
    store's uploads are whole or absent)."""
    return Path(study_dir.path) if study_dir.local else None


def fit(
    spec: StudySpec, study_dir: storage.Location, data: data_mod.SharedData, resume: bool
) -> set[str]:
    """Start, restart or restore the study's Tuner and run it (the caller holds the study's
    lock, study.lock); the trials Tune's last snapshot records as terminated (finished or
    stopped early by the scheduler). A restore retries errored trials from their last
    checkpoint: `--resume` is how a user continues a study that did not complete."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # errors: LiveStatus, Parquet
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: LiveStatus, not tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # Parquet; tune.loggers
    credentials.keep_credentials_out_of_ray()  # AWS_* out of runtime_env and Ray's logs
    wrapped = tune.with_resources(
        tune.with_parameters(trainable, spec=spec, data=data),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    local = _local(study_dir)
    tune_dir = study_dir / "tune"
    restorable = (  # else its start never completed
        start.restorable(local)
        if local
        else tune.Tuner.can_restore(tune_dir.path, storage_filesystem=tune_dir.filesystem)
    )
    if resume and restorable:
        tuner = tune.Tuner.restore(
            tune_dir.path,
            trainable=wrapped,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=study_dir.filesystem,
        )
    else:
        if local is None:
            study_dir.mkdir()
            (study_dir / "spec.yaml").write_text(dump_yaml(spec.raw))
        elif resume:  # --resume of a study whose first snapshot never came
            start.restart(local, spec.name, study_storage(spec.search.storage, local))
        else:
            start.create(local, spec.raw)
            names.point_latest(local)
            start.crash_point("created")
        tuner = make_tuner(spec, study_dir, wrapped)
        start.crash_point("tuner")
    verb = "resuming" if resume and restorable else "starting"
    print(f"{verb} study {spec.name}: {spec.num_trials} trials; results in {study_dir / 'results'}")
    home = _home(study_dir)
    dashboard = dashboard_command(spec.search.storage, home)
    print(f"log: {home / 'study.log'}; Optuna dashboard: {dashboard}")
    tuner.fit()
    return terminated_trials(tune_dir)


def terminated_trials(tune_dir: storage.Location) -> set[str]:
    """Trials that Tune's last snapshot of the study records as terminated (finished, or
    stopped early by the scheduler). Not the `ResultGrid` of `fit()`: after Ctrl-C, Tune saves
    the snapshot (interrupted trials still running) and then marks every trial terminated in
    memory, so the grid counts an interrupted study as complete. Whether the study is complete
    is judged by its rows (study.completion); this only tells a scheduler's stop from a trial
    cut short."""
    analysis = tune.ExperimentAnalysis(tune_dir.path, storage_filesystem=tune_dir.filesystem)
    return {t.trial_id for t in analysis.trials if t.status == Trial.TERMINATED}

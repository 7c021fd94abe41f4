"""A study on Ray Tune: the Tuner, resources, start and resume.

`study run SPEC` reads the dataset once on the driver, unsplit, and shares it through Ray's
object store (`tune.with_parameters`); every trial (study.tune.worker) splits it by its own
`dataset.split_seed`, builds its TrialConfig from the spec and its Optuna parameters (study.tune.
search over the spec's define-by-run function), reports and checkpoints its epochs.
study.tune.writer writes the rows on the driver. Layout: `<storage>/<study>/{spec.yaml,
results/*.parquet, tune/}` (docs/study.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from study.crashpoints import crash_point
from study.errors import ConfigError
from study.spec import SAMPLERS, StudySpec
from study.train import data as data_mod
from study.tune import names, start, storage
from study.tune.loggers import make_loggers, searched
from study.tune.progress import LiveStatus
from study.tune.ray_private import keep_credentials_out_of_ray
from study.tune.search import create_study, dashboard_command, study_storage
from study.tune.searcher import StudySearcher
from study.tune.worker import trainable
from study.tune.writer import WRITER_THREADS, ResultsWriter
from study.yamlio import dump_yaml

DEFAULT_STORAGE = Path("studies")


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def make_tuner(spec: StudySpec, study_dir: storage.Location, wrapped: Any) -> tune.Tuner:
    """A Tuner for `spec`: Optuna (study.tune.searcher; one or several objectives), ASHA, retries,
    checkpoints, the results writer and the progress lines."""
    goals = spec.search.objectives
    metric = [o.metric for o in goals] if len(goals) > 1 else goals[0].metric
    mode = [o.mode for o in goals] if len(goals) > 1 else goals[0].mode
    home = home_dir(study_dir)
    home.mkdir(parents=True, exist_ok=True)
    optuna_storage = study_storage(spec.search.storage, home)
    create_study(spec, optuna_storage)  # names the objectives; the searcher loads it
    searcher = StudySearcher(
        space=spec.suggest,
        metric=metric,
        mode=mode,
        sampler=SAMPLERS[spec.sampler](spec),
        study_name=spec.name,
        storage=optuna_storage,
        points_to_evaluate=[dict(p) for p in spec.search.points],
        redraw_repeats=spec.sampler != "grid",  # a grid's points are distinct already
        study_dir=study_dir.uri,  # the `rows` tag's results directory (no query)
    )
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
                ResultsWriter(results, spec.name, spec, fs, workers=WRITER_THREADS),
                LiveStatus(spec, home),
                *make_loggers(t.loggers, home, spec.name, searched(spec)),
            ],
            verbose=0,
        ),
    )


def _results(study_dir: storage.Location) -> tuple[Path, Any]:
    """The results directory (a path in its filesystem) and its filesystem (None: local)."""
    return Path((study_dir / "results").path), study_dir.filesystem


def home_dir(study_dir: storage.Location) -> Path:
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


def local_dir(study_dir: storage.Location) -> Path | None:
    """The study directory as a local path: the crash-consistency of study.tune.start and the
    quarantine of study.results.quarantine work on local files; None on remote storage (an object
    store's uploads are whole or absent)."""
    return Path(study_dir.path) if study_dir.local else None


def fit(
    spec: StudySpec, study_dir: storage.Location, data: data_mod.SharedData, resume: bool
) -> set[str]:
    """Start, restart or restore the study's Tuner and run it (the caller holds the study's
    lock, study.tune.lock); the trials Tune's last snapshot records as terminated (finished or
    stopped early by the scheduler). A restore retries errored trials from their last
    checkpoint: `--resume` is how a user continues a study that did not complete."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # errors: LiveStatus, Parquet
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: LiveStatus, not tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # Parquet; tune.loggers
    keep_credentials_out_of_ray()  # AWS_* out of runtime_env and Ray's logs
    wrapped = tune.with_resources(
        tune.with_parameters(trainable, spec=spec, data=data),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    local = local_dir(study_dir)
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
            crash_point("created")
        tuner = make_tuner(spec, study_dir, wrapped)
        crash_point("tuner")
    verb = "resuming" if resume and restorable else "starting"
    print(f"{verb} study {spec.name}: {spec.num_trials} trials; results in {study_dir / 'results'}")
    home = home_dir(study_dir)
    dashboard = dashboard_command(spec.search.storage, home)
    print(f"log: {home / 'study.log'}; Optuna dashboard: {dashboard}")
    tuner.fit()
    return terminated_trials(tune_dir)


def terminated_trials(tune_dir: storage.Location) -> set[str]:
    """Trials that Tune's last snapshot of the study records as terminated (finished, or
    stopped early by the scheduler). Not the `ResultGrid` of `fit()`: after Ctrl-C, Tune saves
    the snapshot (interrupted trials still running) and then marks every trial terminated in
    memory, so the grid counts an interrupted study as complete. Whether the study is complete
    is judged by its rows (study.results.completion); this only tells a scheduler's stop from a
    trial cut short."""
    analysis = tune.ExperimentAnalysis(tune_dir.path, storage_filesystem=tune_dir.filesystem)
    return {t.trial_id for t in analysis.trials if t.status == Trial.TERMINATED}

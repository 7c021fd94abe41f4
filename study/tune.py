"""A study on Ray Tune: the trainable around `run_trial`, the Tuner, resources, resume.

`study run SPEC` loads the dataset once on the driver and shares it through Ray's object store
(`tune.with_parameters`); every trial builds its TrialConfig from the spec and its Optuna
parameters (`OptunaSearch` over the spec's define-by-run function), reports every epoch (the
Parquet row plus the objectives), checkpoints every `tune.checkpoint_every` epochs and resumes
from `tune.get_checkpoint()`. `ResultsWriter` (study.results) writes the rows on the driver.
Layout: `<storage>/<study>/{spec.yaml, results/*.parquet, tune/}` (DESIGN.md, docs/study.md).
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
import yaml
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from study import data as data_mod
from study.config import ConfigError
from study.loggers import make_loggers
from study.optuna_store import TaggedSearch, create_study, dashboard_command, study_storage
from study.progress import LiveStatus
from study.results import STATUS_OK, ResultsWriter, summarize
from study.spec import SAMPLERS, StudySpec, load_spec, parse_spec
from study.trial import run_trial

STATE_FILE = "state.pt"
DEFAULT_STORAGE = Path("studies")


def trainable(config: dict[str, Any], spec: StudySpec, data: data_mod.SplitData) -> None:
    """One trial: `run_trial` from the latest checkpoint, reporting and checkpointing epochs.
    Torch uses as many threads as the trial has CPUs, whatever the worker's environment."""
    cfg = spec.trial_config(config)
    if cfg.runtime.threads is None:
        cfg = cfg.replace(**{"runtime.threads": max(1, int(spec.resources.cpu))})
    node = ray.get_runtime_context().get_node_id()
    run_trial(cfg, functools.partial(_report, spec, node), resume=_resume_state(), data=data)


def _resume_state() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, weights_only=False)


def _report(spec: StudySpec, node: str, row: dict[str, Any], state_fn: Any) -> None:
    """Report one epoch: the row, its epoch and the objectives (worst value when missing, so
    a diverged trial ranks last); with a checkpoint every `checkpoint_every` epochs and last."""
    row = {**row, "node_id": node}
    epoch = row["epoch"]
    metrics = {"row": row, "epoch": epoch, **objective_values(spec, row)}
    due = epoch % spec.tune.checkpoint_every == 0 or epoch == row["epochs"]
    if row["status"] != STATUS_OK or not due:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state_fn(), Path(d) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


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
    """study.results.ResultsWriter as a Tune callback."""


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def make_tuner(spec: StudySpec, study_dir: Path, wrapped: Any) -> tune.Tuner:
    """A Tuner for `spec`: OptunaSearch (one or several objectives), optional ASHA, retries,
    checkpoints, the results writer and the progress lines."""
    goals = spec.search.objectives
    metric = [o.metric for o in goals] if len(goals) > 1 else goals[0].metric
    mode = [o.mode for o in goals] if len(goals) > 1 else goals[0].mode
    storage = study_storage(spec.search.storage, study_dir)
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
            storage_path=str(study_dir),
            failure_config=tune.FailureConfig(max_failures=t.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=t.keep_checkpoints),
            callbacks=[
                Writer(study_dir / "results", spec.name, spec),
                LiveStatus(spec, study_dir),
                *make_loggers(t.loggers, study_dir, spec.name),
            ],
            verbose=0,
        ),
    )


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


def study_spec(args: argparse.Namespace) -> tuple[StudySpec, Path]:
    """The spec and study directory of a command line; a resumed study must be run with the
    spec (and --set values) it began with, a new one must not overwrite another."""
    from study.cli import parse_sets

    spec = load_spec(args.spec, parse_sets(args.sets))
    if args.name:
        spec = parse_spec({**spec.raw, "name": args.name})
    study_dir = (args.storage or DEFAULT_STORAGE).resolve() / spec.name
    saved = study_dir / "spec.yaml"
    if args.resume:
        if not tune.Tuner.can_restore(str(study_dir / "tune")):
            raise ConfigError(f"no study to resume in {study_dir}: run it without --resume")
        if yaml.safe_load(saved.read_text()) != spec.raw:
            raise ConfigError(
                f"the spec differs from the one {study_dir} began with ({saved}): resume with "
                "the same spec and --set values, or start a new study with --name"
            )
    elif study_dir.exists():
        raise ConfigError(
            f"study {spec.name} already exists in {study_dir}: continue it with --resume "
            "or choose another --name"
        )
    return spec, study_dir


def run_study_cli(args: argparse.Namespace) -> int:
    """`study run SPEC [--address] [--storage] [--name] [--resume] [--set k=v]`."""
    spec, study_dir = study_spec(args)
    data = data_mod.load(spec.trial_config(next(spec.corner_params())).dataset)
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=args.address or "local",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        check_resources(spec)
        _fit(spec, study_dir, data, args.resume)
    finally:
        if started:
            ray.shutdown()
    results = study_dir / "results"
    read = f"import pandas as pd; print(pd.read_parquet('{results}'))"
    print(f'{summarize(results)}\n\nresults: {results}\nread them: {sys.executable} -c "{read}"')
    print(f"Optuna dashboard: {dashboard_command(spec.search.storage, study_dir)}")
    return 0


def _fit(spec: StudySpec, study_dir: Path, data: data_mod.SplitData, resume: bool) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # errors: LiveStatus, Parquet
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: LiveStatus, not tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # Parquet; tune.loggers
    wrapped = tune.with_resources(
        tune.with_parameters(trainable, spec=spec, data=data),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if resume:
        tuner = tune.Tuner.restore(
            str(study_dir / "tune"), trainable=wrapped, resume_unfinished=True
        )
    else:
        study_dir.mkdir(parents=True)
        (study_dir / "spec.yaml").write_text(yaml.safe_dump(spec.raw, sort_keys=False))
        tuner = make_tuner(spec, study_dir, wrapped)
    verb = "resuming" if resume else "starting"
    print(f"{verb} study {spec.name}: {spec.num_trials} trials; results in {study_dir}/results")
    dashboard = dashboard_command(spec.search.storage, study_dir)
    print(f"log: {study_dir / 'study.log'}; Optuna dashboard: {dashboard}")
    tuner.fit()

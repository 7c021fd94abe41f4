"""The `study run` driver: parse, lock, check, train on Ray Tune, compact, summarise, judge.

Order matters (docs/reliability.md): the spec and the storage are checked first (user errors are
one line, exit 2, before any work); then the study's lock is taken (study.tune.lock), and only under
it is the study's state looked at (new, or one to resume) and anything written; the exit status
comes from the rows (study.results.completion), not from Tune's snapshot.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

import ray

from study import diskfull
from study.crashpoints import crash_point
from study.errors import ConfigError
from study.results import quarantine
from study.results.compact import at_study_end
from study.results.completion import completion
from study.results.summary import summarize
from study.spec import StudySpec, load_spec, parse_spec, with_trials
from study.train import data as data_mod
from study.train import limits
from study.tune import cluster, lock, names, start, storage, tuner
from study.tune.checkpoint import checkpoint_rows
from study.tune.search import dashboard_command

DEFAULT_STORAGE = tuner.DEFAULT_STORAGE


def study_spec(args: argparse.Namespace) -> tuple[StudySpec, storage.Location]:
    """The spec and study directory of a command line (the storage checked writable)."""
    from study.yamlio import parse_sets

    spec = load_spec(args.spec, parse_sets(args.sets))
    if args.name is not None and args.name != names.AUTO:  # `--name ''` is refused
        spec = parse_spec({**spec.raw, "name": args.name})
    if getattr(args, "trials", None):
        spec = with_trials(spec, args.trials)
    if not args.address:  # a local Ray runs the trials on this machine
        configs = (spec.trial_config(p) for p in spec.corner_params())
        limits.check_threads(configs, os.cpu_count() or 1, "this machine")
    root = storage.open_location(args.storage or spec.storage or DEFAULT_STORAGE)
    storage.check_writable(root)
    folder, name = names.resolve(root, spec.name, args.name, args.resume)
    if folder != root or args.name == names.AUTO:  # what resume_command prints names this one
        args.storage, args.name = names.storage_arg(args.storage, root, folder), name
    if name != spec.name:
        spec = parse_spec({**spec.raw, "name": name})
    return spec, folder / name


def check_state(spec: StudySpec, study_dir: storage.Location, resume: bool) -> None:
    """Under the study's lock: a resumed study must exist and be run with the spec (and --set
    values) it began with; a new one must not overwrite another."""
    saved = study_dir / start.SPEC_FILE
    if resume:
        if not study_dir.exists():
            raise ConfigError(f"no study to resume in {study_dir}: run it without --resume")
        if start.saved_spec(study_dir) != spec.raw:
            raise ConfigError(
                f"the spec differs from the one {study_dir} began with ({saved}): resume with "
                "the same spec and --set values, or start a new study with --name"
            )
    elif study_dir.exists():
        raise ConfigError(
            f"study {spec.name} already exists in {study_dir}: continue it with --resume, "
            f"start a new one with --name auto ({spec.name}-<date>-<time>), or choose another "
            "--name"
        )


def run_study_cli(args: argparse.Namespace) -> int:
    """`study run SPEC [--address] [--storage] [--name] [--resume] [--set k=v]`; a full disk
    is one line (study.diskfull.DiskFull) naming the command that continues the study."""
    spec, study_dir = study_spec(args)
    cluster.check_address(args.address)
    with lock.held(study_dir):
        check_state(spec, study_dir, args.resume)
        local = tuner.local_dir(study_dir)
        where = local or tuner.home_dir(study_dir)
        with diskfull.one_line(where, f"free space, then continue: {resume_command(args)}"):
            return _run(args, spec, study_dir, local)


def _run(
    args: argparse.Namespace, spec: StudySpec, study_dir: storage.Location, local: Path | None
) -> int:
    """Under the lock: repair, read the data once, start Ray, fit, then compact, summarise
    and judge the study by its rows (`local`: the study directory when on a local disk)."""
    if args.resume and local:
        quarantine.repair(local, checkpoint_rows)
    configs = [spec.trial_config(p) for p in spec.corner_params()]
    first = configs[0].dataset
    data = data_mod.read(first)
    # a split that cannot be made (sizes), or batches larger than it: refused before Ray starts
    limits.check_fits(configs, len(data.split(first).train_y))
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=args.address or "local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except ConnectionError as err:  # `--address auto` and no cluster Ray can find
            raise ConfigError(
                f"--address {args.address}: {str(err).splitlines()[0]} Start one with "
                "`ray start --head`, or leave --address out to run on this machine"
            ) from None
    try:
        tuner.check_resources(spec)
        if args.address:
            limits.check_threads(configs, limits.largest_node_cpus(), "the cluster's largest node")
        at_once = spec.tune.max_concurrent_trials or tuner.trials_that_fit(spec)
        r = spec.resources
        print(cluster.schedule_line(r.cpu, r.gpu, ray.cluster_resources(), at_once), flush=True)
        terminated = tuner.fit(spec, study_dir, data, args.resume)
    finally:
        if started:
            ray.shutdown()
    results = study_dir / "results"
    if local:
        quarantine.repair(local, checkpoint_rows)
    crash_point("summary")
    print(at_study_end(str(results)))  # one file instead of one per trial (study.results.compact)
    load = "pd.read_parquet" if results.local else "analysis.load_results"
    read = f"import pandas as pd, analysis; print({load}('{results}'))"
    summary = summarize(str(results))
    print(f'{summary}\n\nresults: {results}\nread them: {sys.executable} -c "{read}"')
    stopped = terminated if spec.search.asha is not None else set()
    done = completion(str(results), spec.num_trials, stopped)
    if not done.ok:  # never silently: interrupted, errored trials, or rows short of the plan
        print(
            f"study run: error: {study_dir}: {done.describe()}; every row written is in "
            "results/, and a resume retries errored trials from their last checkpoint; "
            f"continue it: {resume_command(args)}",
            file=sys.stderr,
        )
        return 1
    print(f"Optuna dashboard: {dashboard_command(spec.search.storage, tuner.home_dir(study_dir))}")
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The `study run … --resume` line that continues the study of `args`."""
    parts = ["study run", shlex.quote(str(args.spec))]
    for flag, value in (("--address", args.address), ("--storage", args.storage)):
        parts += [flag, shlex.quote(str(value))] if value else []
    parts += ["--name", shlex.quote(args.name)] if args.name else []
    parts += ["--trials", str(args.trials)] if getattr(args, "trials", None) else []
    parts += [f"--set {shlex.quote(s)}" for s in args.sets]
    return " ".join([*parts, "--resume"])

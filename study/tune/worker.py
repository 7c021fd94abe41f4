"""What runs in a trial's Ray worker: the trainable around `run_trial`, reporting every epoch
(the Parquet row plus the objectives) and checkpointing every `tune.checkpoint_every` epochs,
resuming from `tune.get_checkpoint()` (docs/study.md)."""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from study.results.schema import STATUS_OK
from study.spec import StudySpec
from study.train import data as data_mod
from study.train import resolve
from study.train.trial import run_trial
from study.tune import cluster
from study.tune.checkpoint import ROWS, STATE_FILE, ended, rows_of


def trainable(config: dict[str, Any], spec: StudySpec, data: data_mod.SharedData) -> None:
    """One trial: `run_trial` from the latest checkpoint, reporting and checkpointing epochs.
    Torch uses as many threads as the trial has CPUs, whatever the worker's environment."""
    cfg = spec.trial_config(config)
    if cfg.runtime.threads is None:
        cfg = resolve.replace(cfg, **{"runtime.threads": max(1, int(spec.resources.cpu))})
    where = {"node_id": ray.get_runtime_context().get_node_id(), "gpu_ids": cluster.assigned_gpus()}
    state = _resume_state()
    history = rows_of(state) if state else []
    if state is not None and ended(state):  # the trial diverged at its last row
        return tune.report(_metrics(spec, history[-1]))
    report = functools.partial(_report, spec, where, history)
    run_trial(cfg, report, resume=state, data=data.split(cfg.dataset))


def _resume_state() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, weights_only=True)


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

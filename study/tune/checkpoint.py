"""A trial's checkpoint: `state.pt` holding the model, optimiser and schedule (study.train.trial)
and the trial's rows so far as JSON (`rows_json`), so a damaged results file can be rebuilt from
it (study.results.quarantine gets `checkpoint_rows` handed in: the results layer knows no
checkpoint layout and never imports torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from study.results.schema import SCHEMA_VERSION

STATE_FILE = "state.pt"
ROWS = "rows_json"  # a checkpoint's rows so far, as JSON (loads with weights_only=True)


def ended(state: dict[str, Any]) -> bool:
    """Whether a checkpoint is a trial's last: one written after it diverged holds its rows and
    no model (study.tune.worker writes no training state after a divergence)."""
    return "model" not in state


def rows_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a checkpoint holds: every epoch of its trial up to it (what rebuilds a damaged
    results file, study.results.quarantine)."""
    return json.loads(state.get(ROWS, "[]"))


def checkpoint_rows(study_dir: Path, trial_id: str) -> list[dict[str, Any]]:
    """The rows of the newest readable checkpoint of a trial (`tune/<trial_id>/checkpoint_*`)."""
    for folder in sorted((study_dir / "tune" / trial_id).glob("checkpoint_*"), reverse=True):
        try:
            state = torch.load(folder / STATE_FILE, weights_only=True, map_location="cpu")
            rows = rows_of(state)  # as the trial reported them: add what the
            # driver's writer adds (the study is named by its folder)
            extra = {
                "study": study_dir.name,
                "trial_id": trial_id,
                "schema_version": SCHEMA_VERSION,
            }
            return [{**r, **extra} for r in rows]
        except (OSError, RuntimeError, KeyError, ValueError, EOFError):
            continue
    return []

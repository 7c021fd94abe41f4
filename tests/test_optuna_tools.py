"""Printed commands run as printed (the optuna-dashboard line), and a parameter-free draw is
not trained twice (study.optuna_store.twin, what TaggedSearch draws again for)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import optuna

from study import optuna_store


def test_dashboard_command_names_the_venv_when_not_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    program, url = shlex.split(optuna_store.dashboard_command(None, tmp_path))
    assert program == str(Path(sys.executable).parent / "optuna-dashboard")
    assert Path(program).exists() and url == f"sqlite:///{tmp_path}/optuna.db"
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert optuna_store.dashboard_command(None, tmp_path).startswith("optuna-dashboard ")


def draw(study: optuna.Study, method: str) -> optuna.Trial:
    study.enqueue_trial({"method.name": method})
    trial = study.ask()
    trial.suggest_categorical("method.name", ["erm", "mixup"])
    if method == "mixup":
        trial.suggest_float("method.alpha", 0.1, 2.0)
    return trial


def test_a_parameter_free_draw_is_a_twin():
    study = optuna.create_study()
    first = draw(study, "erm")
    assert optuna_store.twin(study, draw(study, "erm")).number == first.number  # running
    study.tell(first, 0.5)
    assert optuna_store.twin(study, draw(study, "erm")).number == first.number  # complete
    assert optuna_store.twin(study, draw(study, "mixup")) is None  # a sampled α: no twin

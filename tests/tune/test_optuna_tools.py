"""Printed commands run as printed (the optuna-dashboard line), and a parameter-free draw is
not trained twice (study.tune.search.twin, what study.tune.searcher draws again for)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna

from study.tune import search as optuna_store
from study.tune.searcher import StudySearcher


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


def space(trial: optuna.Trial) -> None:
    trial.suggest_float("method.alpha", 0.1, 1.0)


def searcher(tmp_path: Path, metric: str | list[str]) -> StudySearcher:
    """A StudySearcher on a SQLite storage in `tmp_path` (one objective or several)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    mode = ["max", "min"] if isinstance(metric, list) else "max"
    return StudySearcher(space=space, metric=metric, mode=mode, study_name="s", storage=storage)


def epoch(n: int, iteration: int, acc: float, ece: float = 0.1) -> dict:
    """What Tune hands a searcher for one epoch: Tune's iteration count need not be the epoch
    (a trial restored from an earlier checkpoint counts again from it)."""
    return {"epoch": n, "training_iteration": iteration, "val_acc": acc, "val_cal_ece": ece}


def resumed(tmp_path: Path, search: StudySearcher, metric) -> StudySearcher:
    """`search` saved and restored into a new searcher, as a driver resume does."""
    search.save(str(tmp_path / "searcher.pkl"))
    again = searcher(tmp_path, metric)
    again.restore(str(tmp_path / "searcher.pkl"))
    return again


def stored(tmp_path: Path) -> optuna.trial.FrozenTrial:
    (trial,) = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    return trial


def test_one_objective_reports_each_epoch_at_its_epoch_also_after_a_resume(tmp_path):
    search = searcher(tmp_path, "val_acc")
    search.suggest("t1")
    search.on_trial_result("t1", epoch(1, 4, 0.5))
    search.on_trial_result("t1", epoch(2, 5, 0.6))
    again = resumed(tmp_path, search, "val_acc")  # restored from epoch 1's checkpoint
    again.on_trial_result("t1", epoch(2, 1, 0.6))
    again.on_trial_result("t1", epoch(3, 2, 0.7))
    again.on_trial_complete("t1", epoch(3, 2, 0.7))
    trial = stored(tmp_path)
    assert trial.intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.7
    (served,) = dashboard(tmp_path)["trials"]  # what its learning-curve plot draws
    assert [(v["step"], v["value"]) for v in served["intermediate_values"]] == [
        (1, 0.5),
        (2, 0.6),
        (3, 0.7),
    ]


def dashboard(tmp_path: Path) -> dict:
    """The study as optuna-dashboard's API serves it (its WSGI app, called in-process)."""
    from optuna_dashboard import wsgi

    app = wsgi(optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db"))

    def get(path: str) -> dict:
        environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        return json.loads(b"".join(app(environ, lambda *status_headers: None)))

    (summary,) = get("/api/studies")["study_summaries"]
    return get(f"/api/studies/{summary['study_id']}")


def test_several_objectives_keep_each_epoch_as_a_curve_attr_also_after_a_resume(tmp_path):
    metric = ["val_acc", "val_cal_ece"]
    search = searcher(tmp_path, metric)
    search.suggest("t1")
    search.on_trial_result("t1", epoch(1, 4, 0.5, 0.3))
    search.on_trial_result("t1", epoch(2, 5, 0.6, 0.2))
    again = resumed(tmp_path, search, metric)
    again.on_trial_result("t1", epoch(2, 1, 0.65, 0.25))  # epoch 2 again, retrained
    again.on_trial_result("t1", epoch(3, 2, 0.7, float("inf")))  # a diverged epoch: None
    trial = stored(tmp_path)
    assert trial.intermediate_values == {}  # Optuna has none for several objectives
    assert trial.user_attrs["curve.val_acc"] == [0.5, 0.65, 0.7]
    assert trial.user_attrs["curve.val_cal_ece"] == [0.3, 0.25, None]


def test_rows_line_reads_one_trials_rows_from_either_layout(tmp_path):
    import pandas as pd

    results = tmp_path / "it's here" / "results"
    results.mkdir(parents=True)
    rows = pd.DataFrame({"trial_id": ["a", "a", "b"], "epoch": [1, 2, 1]})
    line = optuna_store.rows_line(str(results.parent), "a")
    for name, part in rows.groupby("trial_id"):  # running: one file per trial
        part.to_parquet(results / f"{name}.parquet", index=False)
    assert eval(line, {"pd": pd}).epoch.tolist() == [1, 2]
    for f in results.iterdir():
        f.unlink()
    rows.to_parquet(results / "compacted.parquet", index=False)  # ended: merged + shortlist
    rows.iloc[:0].to_parquet(results / "_shortlist.parquet", index=False)
    assert sorted(eval(line, {"pd": pd}).epoch.tolist()) == [1, 2]

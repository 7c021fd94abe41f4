"""The private names of Ray Tune that study.tune.ray_private relies on, checked against the
installed Ray, so that a Ray release that renames or reshapes one fails here, loudly, and not as
a wrong TensorBoard table or a study that cannot resume; and no other module of study/ uses
them (issue 19: one module holds them). Optuna is driven through public names only
(study.tune.searcher)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import optuna
from ray.tune.logger import TBXLoggerCallback
from ray.tune.search.optuna import OptunaSearch

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = ("_ot_trials", "_ot_study", "_completed_trials", "_try_log_hparams", "_trial_writer")
PRIVATE += ("ENV_VARS_TO_PROPAGATE", "class_cache")  # checked by tests/tune/test_secrets.py


def space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0, 1)


def test_optuna_search_keeps_the_state_a_v0_2_snapshot_holds(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    search = OptunaSearch(
        space=space,
        metric="m",
        mode="max",
        study_name="s",
        storage=storage,
    )
    search.suggest("t1")
    assert isinstance(search._ot_trials["t1"], optuna.Trial)
    assert isinstance(search._ot_study, optuna.Study)
    assert search._completed_trials == set()
    search.on_trial_complete("t1", {"m": 1.0})
    assert search._completed_trials == {"t1"}
    search.save(str(tmp_path / "s.pkl"))
    again = OptunaSearch(space=space, metric="m", mode="max", study_name="s", storage=storage)
    again.restore(str(tmp_path / "s.pkl"))  # a dict of the attributes, updated in place
    assert set(again._ot_trials) == {"t1"} and again._completed_trials == {"t1"}


def test_tensorboard_logs_hparams_through_the_step_we_override():
    step = inspect.signature(TBXLoggerCallback._try_log_hparams)
    assert list(step.parameters) == ["self", "trial", "result"]
    assert "_try_log_hparams(" in inspect.getsource(TBXLoggerCallback.log_trial_end)
    assert "self._trial_writer[trial]" in inspect.getsource(TBXLoggerCallback.log_trial_start)


def test_only_ray_private_uses_them():
    users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "study").rglob("*.py")
        if re.search(r"\b(" + "|".join(PRIVATE) + r")\b", path.read_text())
    }
    assert users == {"study/tune/ray_private.py"}

"""The one module that uses private names of Ray Tune (issue 19), each where no public way
gives the same result; tests/tune/test_private_apis.py fails loudly when Ray changes any of them.

- `HparamsTensorBoard` overrides TBXLoggerCallback's hparams step (`_try_log_hparams`, writing
  through `_trial_writer`): Ray declares only a trial's own parameters, so TensorBoard's hparams
  table, which takes its columns from one run's declaration, lost `method.margin` whenever that
  run was not MIT's (study.tune.loggers).
- `StudySearch` (with `TaggedSearch`) is v0.2's searcher, kept for one release so that a study
  begun before the package move still resumes: its Tune snapshot pickled an OptunaSearch, whose
  state (`_ot_trials`, `_ot_study`, `_completed_trials`) only that class unpickles. New studies
  use study.tune.searcher (Optuna's public ask-and-tell); tests/tune/test_old_snapshot.py resumes a
  v0.2 study through this one.
- `keep_credentials_out_of_ray`: Ray Tune copies AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SECURITY_TOKEN and AWS_SESSION_TOKEN from the driver's environment into every trial
  actor's `runtime_env` (its list `ENV_VARS_TO_PROPAGATE` in ray.tune.execution.class_cache,
  Ray 2.60), and Ray's runtime-env agent logs each runtime_env it sets up
  (`<session>/logs/runtime_env_agent.log`, mode 0644); Ray has no setting for this, so the AWS
  names are taken off that list (docs/reliability.md "Secrets"). Trials on the driver's machine
  still have them: Ray's workers inherit the environment of the Ray instance the driver
  started; on a cluster each node's trials take them from that node's environment (`ray start`
  run with them) or profile. tests/tune/test_secrets.py checks it in a fresh process.
"""

from __future__ import annotations

import importlib
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.logger import TBXLoggerCallback
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import flatten_dict

from study.tune.search import NONE, REDRAWS, final_status, report_epoch, rows_line, tag, twin

RAY_MODULE, RAY_NAME = "ray.tune.execution.class_cache", "ENV_VARS_TO_PROPAGATE"


def _propagated() -> set[str]:
    """Ray Tune's list of driver variables copied into each trial actor's runtime_env."""
    names = getattr(importlib.import_module(RAY_MODULE), RAY_NAME, None)
    if not isinstance(names, set):
        raise RuntimeError(
            f"{RAY_MODULE}.{RAY_NAME} is no longer a set: see study/tune/ray_private.py"
        )
    return names


def keep_credentials_out_of_ray() -> None:
    """Stop Ray Tune from copying AWS credentials into the trials' runtime_env (and so into
    Ray's runtime-env agent log); see the module docstring for where trials get them."""
    names = _propagated()
    names.difference_update({n for n in names if n.startswith("AWS_")})


class TaggedSearch(OptunaSearch):
    """OptunaSearch whose trials carry the Tune trial id and the Parquet file when they are
    asked for, and the final status just before they are told (a finished Optuna trial can't
    be changed); with a persistent storage, a resumed study's trials that the storage already
    holds finished are left as they are. A draw that repeats an earlier trial's parameters
    exactly (`twin`) is told at once — the earlier values when it has them, failed while it
    runs — tagged `duplicate_of`, and the sampler draws again (at most REDRAWS times), so a
    parameter-free method runs once per seed; `redraw_repeats = False` turns this off (a grid).
    The spec's `search.points` run as given, repeats included (`points` counts those left)."""

    redraw_repeats = True
    points = 0  # search.points not yet asked for: Optuna hands them out first, in order
    study_dir = "."  # where the `rows` tag reads from (make_tuner sets the study's directory)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        params = super().suggest(trial_id)
        given, self.points = self.points > 0, max(self.points - 1, 0)
        for _ in range(REDRAWS if self.redraw_repeats and not given else 0):
            trial = self._ot_trials.get(trial_id)
            earlier = None if trial is None else twin(self._ot_study, trial)
            if earlier is None:
                break
            trial.set_user_attr("duplicate_of", earlier.number)
            if earlier.state == optuna.trial.TrialState.COMPLETE:
                self._ot_study.tell(trial, values=earlier.values)
            else:
                self._ot_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            del self._ot_trials[trial_id]
            params = super().suggest(trial_id)
        trial = self._ot_trials.get(trial_id)
        if trial is not None and "tune_trial_id" not in trial.user_attrs:
            rows = rows_line(self.study_dir, trial_id)
            tag(trial, tune_trial_id=trial_id, results="results/", rows=rows)
        return params

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Per-epoch values at the row's epoch (study.tune.search.report_epoch; not Tune's
        iteration count, which a trial restored from an earlier checkpoint need not share)."""
        trial = self._ot_trials.get(trial_id)
        epoch = result.get("epoch")
        if trial is None or trial_id in self._completed_trials or epoch is None:
            return
        report_epoch(trial, self.metric, int(epoch), result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and trial_id not in self._completed_trials:
            tag(trial, status=final_status(result, error))
        super().on_trial_complete(trial_id, result=result, error=error)


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


class HparamsTensorBoard(TBXLoggerCallback):
    """Tune's TensorBoard (tensorboardX) logger with every searched parameter (`params`:
    name and kind, float | int | choices; study.tune.loggers.searched) in every trial's
    hparams, "none" where the trial's method has none."""

    def __init__(self, params: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.params = params

    def _try_log_hparams(self, trial: Any, result: dict) -> None:
        """Ray's hparams step (called as a trial ends), over all searched parameters."""
        from tensorboardX.summary import hparams

        flat = flatten_dict(trial.evaluated_params, delimiter=".")
        given = {k: _plain(v) for k, v in flat.items()}
        values = {name: given.get(name, NONE) for name, _ in self.params} | given
        typed = {name: (0.0 if kind in ("float", "int") else NONE) for name, kind in self.params}
        experiment, _, _ = hparams(hparam_dict=typed | given, metric_dict=result)
        _, start, end = hparams(hparam_dict=values, metric_dict=result)
        for summary in (experiment, start, end):
            self._trial_writer[trial].file_writer.add_summary(summary)


def _plain(value: Any) -> Any:
    """An hparam value tensorboardX writes: numpy scalars as Python, others as text."""
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, (str, bool, int, float)) else str(value)

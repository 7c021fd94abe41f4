"""The study's Tune searcher: Optuna driven through its public ask-and-tell API
(`Study.ask`, `Trial.report`, `Study.tell`, `Study.enqueue_trial`) behind Tune's public
`Searcher` interface, so no library's private attribute is read or written (issue 19).

Every asked trial is tagged (study.tune.search: its Tune trial id, the results folder, the pandas
line of its rows) and, when it ends, its status; each epoch is reported at its epoch. A draw that
repeats an earlier trial's parameters exactly (`twin`: a method with no parameter of its own) is
told at once and drawn again, so a parameter-free method runs once per seed; the spec's
`search.points` run first, as given. Restored after a driver crash, the searcher hands back to
the sampler the Optuna trials still RUNNING that no Tune trial owns (the database runs ahead of
Tune's last snapshot): failed, and their parameters queued again.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from study.tune.search import REDRAWS, final_status, report_epoch, rows_line, tag, twin

log = logging.getLogger(__name__)
Space = Callable[[optuna.Trial], dict[str, Any] | None]  # define-by-run: suggests on the trial


class StudySearcher(Searcher):
    def __init__(
        self,
        space: Space,
        metric: str | list[str],
        mode: str | list[str],
        sampler: optuna.samplers.BaseSampler | None = None,
        study_name: str = "optuna",
        storage: optuna.storages.BaseStorage | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        redraw_repeats: bool = True,
        study_dir: str = ".",
    ):
        super().__init__(metric=metric, mode=mode)
        modes = mode if isinstance(mode, list) else [mode]
        self.space = space  # the spec's define-by-run function (StudySpec.suggest)
        self.study = optuna.create_study(  # loads the study when the storage has it
            storage=storage,
            sampler=sampler,
            study_name=study_name,
            directions=["maximize" if m == "max" else "minimize" for m in modes],
            load_if_exists=True,
        )
        for point in points_to_evaluate or []:
            self.study.enqueue_trial(point)
        self.points = len(points_to_evaluate or [])  # queued points not yet asked for
        self.redraw_repeats = redraw_repeats  # False for a grid (its points are distinct)
        self.study_dir = study_dir  # where the `rows` tag reads from
        self.trials: dict[str, optuna.Trial] = {}  # Tune trial id -> its Optuna trial
        self.ended: set[str] = set()  # Tune trials told to Optuna

    @property
    def metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    def _ask(self) -> tuple[optuna.Trial, dict[str, Any]]:
        trial = self.study.ask()
        fixed = self.space(trial) or {}
        return trial, {**trial.params, **fixed}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        given, self.points = self.points > 0, max(self.points - 1, 0)
        trial, params = self._ask()
        for _ in range(REDRAWS if self.redraw_repeats and not given else 0):
            earlier = twin(self.study, trial)
            if earlier is None:
                break
            trial.set_user_attr("duplicate_of", earlier.number)
            if earlier.state == TrialState.COMPLETE:
                self.study.tell(trial, values=earlier.values)
            else:
                self.study.tell(trial, state=TrialState.FAIL)
            trial, params = self._ask()
        rows = rows_line(self.study_dir, trial_id)
        tag(trial, tune_trial_id=trial_id, results="results/", rows=rows)
        self.trials[trial_id] = trial
        return params

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Per-epoch values at the row's epoch (study.tune.search.report_epoch; not Tune's
        iteration count, which a trial restored from an earlier checkpoint need not share)."""
        trial, epoch = self.trials.get(trial_id), result.get("epoch")
        if trial is None or trial_id in self.ended or epoch is None:
            return
        report_epoch(trial, self.metric, int(epoch), result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tag the status and tell the objectives: COMPLETE with every objective, else FAIL
        after an error and PRUNED when a scheduler stopped it before it reported them."""
        trial = self.trials.get(trial_id)
        if trial is None or trial_id in self.ended:
            return
        tag(trial, status=final_status(result, error))
        values = [(result or {}).get(m) for m in self.metrics]
        if any(v is None for v in values):
            state = TrialState.FAIL if error else TrialState.PRUNED
            told = {"state": state}
        else:
            told = {"values": [float(v) for v in values], "state": TrialState.COMPLETE}
        try:
            self.study.tell(trial, **told)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            log.warning("Optuna trial %s of %s: %s", trial.number, trial_id, e)
        self.ended.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        owned = {t.number for t in self.trials.values()}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in owned:
                self.study.tell(t.number, state=TrialState.FAIL)
                self.study.enqueue_trial(t.params)

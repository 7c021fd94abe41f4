"""Ray Tune's own logger callbacks as a spec option, `tune.loggers: [csv, tensorboard, mlflow]`.

The Parquet files stay the record (study.results); these feed the tools researchers already
use. Each logger sees every epoch's metrics at the top level (`val_acc`, `val_cal_ece`,
`test_cal_ece`, `lr`, …, from the reported row; lists, strings and the long `config_json` left
out) and the trial's Optuna parameters as its parameters (`method.name`, `method.alpha`,
`method.margin`, … — a grid's axis labels for a grid). Where they write:
- csv: `<study_dir>/tune/<trial_id>/progress.csv` (Tune's CSVLoggerCallback), one row per
  epoch; it drops Tune's config, so the row's identity columns (method, alpha, margin,
  constraint, seed) are added as columns;
- tensorboard: `<study_dir>/tune/<trial_id>/events.out.tfevents.*` (TBXLoggerCallback),
  scalars `ray/tune/<metric>` per epoch and the parameters as hparams when a trial ends:
  `tensorboard --logdir <study_dir>/tune`. Every trial's hparams name every searched parameter,
  `"none"` where its method has none (ERM's α), and every trial declares the same columns, typed
  from the spec: TensorBoard's hparams table takes its columns from one run's declaration, picked
  arbitrarily, so Ray's own per-trial declaration (only that trial's parameters) lost
  `method.margin` whenever the run picked was not MIT's. "none", not NaN: TensorBoard serves a
  NaN hparam as no value (its JSON cannot carry NaN), a blank cell;
- mlflow: one run per trial (MLflowLoggerCallback) in the experiment named after the study, in
  `sqlite:///<study_dir>/mlflow.db` unless `MLFLOW_TRACKING_URI` names another store (MLflow 3
  refuses its old `./mlruns` file store): `mlflow ui --backend-store-uri sqlite:///…/mlflow.db`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray.air.integrations.mlflow import MLflowLoggerCallback  # imports mlflow only when used
from ray.tune.logger import CSVLoggerCallback

from study.results.schema import COLUMNS
from study.tune.ray_private import HparamsTensorBoard

IDENTITY = ("method", "alpha", "margin", "constraint", "seed")  # row columns naming the trial
METRICS = tuple(  # the row's numeric per-epoch columns
    name for name, dtype, _ in COLUMNS if dtype == pa.float64() and name not in IDENTITY
)
KEPT = ("training_iteration", "time_total_s", "timestamp", "trial_id", "config")  # Tune's keys


def epoch_view(result: dict[str, Any], identity: bool = False) -> dict[str, Any]:
    """What a logger sees of one reported epoch: Tune's step keys, `epoch` and the row's
    numeric metrics (nulls left out), with the identity columns when `identity`."""
    row = result.get("row") or {}
    view = {k: result[k] for k in KEPT if k in result}
    view["epoch"] = row.get("epoch", result.get("epoch"))
    view.update({k: row[k] for k in METRICS if row.get(k) is not None})
    if identity:
        view.update({k: row.get(k) for k in IDENTITY})
    return view


class StudyCSV(CSVLoggerCallback):
    """Tune's CSV logger over `epoch_view` with the identity columns."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        super().log_trial_result(iteration, trial, epoch_view(result, identity=True))


class StudyTensorBoard(HparamsTensorBoard):
    """Tune's TensorBoard (tensorboardX) logger over `epoch_view`, with every searched
    parameter in every trial's hparams (study.tune.ray_private.HparamsTensorBoard)."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        super().log_trial_result(iteration, trial, epoch_view(result))


class StudyMLflow(MLflowLoggerCallback):
    """Tune's MLflow logger over `epoch_view`."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        super().log_trial_result(iteration, trial, epoch_view(result))


def searched(spec: Any) -> tuple[tuple[str, str], ...]:
    """The searched parameters of a spec, (name, kind): the space's, or a grid's axes (their
    labels are text)."""
    return tuple((a.name, "choices") for a in spec.grid) + tuple(
        (p.name, p.kind) for p in spec.space
    )


def _mlflow(study_dir: Path, study: str) -> StudyMLflow:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{study_dir / 'mlflow.db'}"
    return StudyMLflow(tracking_uri=uri, experiment_name=study)


FACTORIES: dict[str, Callable[[Path, str, tuple], Any]] = {  # names: study.spec.LOGGERS
    "csv": lambda study_dir, study, params: StudyCSV(),
    "tensorboard": lambda study_dir, study, params: StudyTensorBoard(params),
    "mlflow": lambda study_dir, study, params: _mlflow(study_dir, study),
}


def make_loggers(
    names: tuple[str, ...], study_dir: Path, study: str, params: tuple[tuple[str, str], ...] = ()
) -> list[Any]:
    """The Tune callbacks of `tune.loggers` (names checked when the spec loaded); `params`:
    the searched parameters (`searched`), each in every trial's TensorBoard hparams."""
    return [FACTORIES[n](study_dir, study, params) for n in names]

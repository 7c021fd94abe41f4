"""Synthetic results of the contract schema, for tests, benchmarks and trying the analysis.

Each *cell* (a row of `cells`: dataset, model, method, alpha, margin, optional pretrained and
final metric values) becomes one trial per seed with `epochs` per-epoch rows. Every metric
moves from a plausible start to its final value along (1 − e/E)², so the last epoch holds the
cell's value exactly (plus the trial's noise). Generation is vectorised (numpy over rows), and
`write_results` writes a chosen number of Parquet files of exactly `study.results.SCHEMA`.

The reliability-diagram columns (`test_bin_*`, `test_cal_bin_*`) are filled by `reliability_bins`
from each row's accuracy, confidence and ECE: `TEST_SAMPLES` samples spread over the bins around
the mean confidence, with per-bin accuracies whose pooled accuracy is the row's test_acc and
whose ECE is the row's test_ece (raw) or test_cal_ece (after TS) whenever those are compatible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.reliability import BIN_COLUMNS, STAGES
from study.results.files import write_atomic
from study.results.schema import SCHEMA, SCHEMA_VERSION, STATUS_OK

# Where each per-epoch metric starts (epoch 0) and its default final value.
CURVES = {
    "train_loss": (2.3, 0.3),
    "train_acc": (0.1, 0.9),
    "val_acc": (0.1, 0.9),
    "val_nll": (2.3, 0.35),
    "val_ece": (0.15, 0.03),
    "val_cal_ece": (0.05, 0.01),
    "test_acc": (0.1, 0.9),
    "test_nll": (2.3, 0.35),
    "test_ece": (0.15, 0.03),
    "test_cal_ece": (0.05, 0.01),
    "test_opt_ece": (0.04, 0.008),
    "test_conf": (0.3, 0.93),
    "test_brier": (0.9, 0.15),
    "temperature": (1.0, 1.5),
    "opt_temperature": (1.0, 1.5),
}
FRACTIONS = [c for c in CURVES if c.endswith(("acc", "ece", "conf"))]
N_BINS = 15  # study.train.calibration's default
TEST_SAMPLES = 10_000  # samples binned per row (CIFAR's test set)
CONF_SPREAD = 0.1  # std of the confidences around their mean, before binning
BIN_SETS = {  # column prefix → (where confidences centre, the ECE the bins must have)
    STAGES["raw"]: ("test_conf", "test_ece"),
    STAGES["after TS"]: ("test_acc", "test_cal_ece"),  # TS moves confidence to the accuracy
}


def trials(cells: pd.DataFrame, seeds: int, study: str = "synthetic") -> pd.DataFrame:
    """One row per (cell, seed): the trial-level columns, with a trial id and a config."""
    cells = cells.reset_index(drop=True)
    out = cells.loc[cells.index.repeat(seeds)].reset_index(drop=True)
    out["seed"] = np.tile(np.arange(seeds), len(cells))
    out["study"] = study
    out["trial_id"] = [f"t{i:06d}" for i in range(len(out))]
    out["pretrained"] = out["pretrained"].eq(True) if "pretrained" in out else False
    for column in ("alpha", "margin"):
        out[column] = out[column].astype(float) if column in out else np.nan
    out["config_json"] = [json.dumps(_config(row)) for row in out.to_dict("records")]
    return out


def _config(trial: dict) -> dict:
    nan_free = {
        k: (None if pd.isna(v) else v) for k, v in trial.items() if k in ("alpha", "margin")
    }
    return {
        "dataset": {"name": trial["dataset"], "split_seed": int(trial["seed"])},
        "model": {"name": trial["model"], "pretrained": trial["pretrained"]},
        "method": {"name": trial["method"], **nan_free},
        "train": {"seed": int(trial["seed"])},
    }


def epoch_rows(
    trial_frame: pd.DataFrame, epochs: int, noise: float = 0.0, seed: int = 0, bins: bool = True
) -> pd.DataFrame:
    """Per-epoch rows of the given trials, every contract column filled (vectorised); the
    reliability-bin columns only when `bins` (else null, as in results written before them)."""
    rng = np.random.default_rng(seed)
    n = len(trial_frame)
    index = np.repeat(np.arange(n), epochs)
    epoch = np.tile(np.arange(1, epochs + 1), n)
    rows = {c: trial_frame[c].to_numpy()[index] for c in trial_frame if c not in CURVES}
    progress = (1.0 - epoch / epochs) ** 2
    for column, (start, default) in CURVES.items():
        final = (
            trial_frame[column].to_numpy(float) if column in trial_frame else np.full(n, default)
        )
        final = final + rng.normal(0.0, noise, n) if noise else final
        values = final[index] + (start - final[index]) * progress
        rows[column] = np.clip(values, 0.0, 1.0) if column in FRACTIONS else values
    rows.update(
        epoch=epoch,
        epochs=epochs,
        status=STATUS_OK,
        message="",
        lr=0.1,
        epoch_seconds=1.0,
        samples_per_second=1000.0,
        device="cpu",
        hostname="synthetic",
        node_id="",
        schema_version=SCHEMA_VERSION,
    )
    if bins:
        rows.update(_bin_columns(rows))
    return pd.DataFrame(rows)


def _bin_columns(rows: dict[str, np.ndarray]) -> dict[str, pd.Series]:
    """The six reliability columns of `rows` (see `reliability_bins`), as Arrow list columns."""
    out = {}
    for prefix, (centre, ece) in BIN_SETS.items():
        stats = reliability_bins(rows["test_acc"], rows[centre], rows[ece])
        out |= {f"{prefix}{name}": _list_column(values) for name, values in stats.items()}
    return out


def reliability_bins(
    acc: np.ndarray,
    centre: np.ndarray,
    ece: np.ndarray,
    samples: int = TEST_SAMPLES,
    n_bins: int = N_BINS,
) -> dict[str, np.ndarray]:
    """Per-bin count, accuracy and mean confidence (rows × n_bins; NaN in empty bins).

    `samples` confidences per row spread (Gaussian, std CONF_SPREAD) around `centre`; a bin's
    mean confidence leans from its midpoint towards `centre` as that density's would. Bins
    below the pooled confidence get accuracy above their confidence and bins above it below,
    by amounts chosen so that the pooled accuracy is `acc` and the ECE (Σ count·|acc − conf| /
    samples) is `ece` — exactly, unless |acc − pooled confidence| exceeds `ece` (then the gap is
    `ece` wide) or an accuracy had to be clipped to [0, 1].
    """
    centre = np.nan_to_num(np.asarray(centre, float))[:, None]
    mid, width = (np.arange(n_bins) + 0.5) / n_bins, 1 / n_bins
    count = _spread(centre, mid, samples)
    lean = width**2 / 12 / CONF_SPREAD**2 * (centre - mid)  # mean − midpoint of the density
    conf = mid + np.clip(lean, -0.45 * width, 0.45 * width)
    bin_acc = _bin_accuracy(count / samples, conf, np.asarray(acc)[:, None], ece[:, None])
    empty = count == 0
    return {
        "count": count,
        "acc": np.where(empty, np.nan, bin_acc),
        "conf": np.where(empty, np.nan, conf),
    }


def _bin_accuracy(
    weight: np.ndarray, conf: np.ndarray, acc: np.ndarray, ece: np.ndarray
) -> np.ndarray:
    """Per-bin accuracy: conf + a gap, positive below the pooled confidence and negative above,
    the two sides' weighted gaps summing to `ece` and their difference to acc − confidence."""
    pooled = (weight * conf).sum(1, keepdims=True)
    gap = np.clip(acc - pooled, -ece, ece)  # pooled accuracy − pooled confidence
    high = conf >= pooled  # the over-confident side
    w_high, w_low = (weight * high).sum(1, keepdims=True), (weight * ~high).sum(1, keepdims=True)
    both = (w_high > 0) & (w_low > 0)  # else one gap for all bins
    under = np.divide((ece + gap) / 2, w_low, out=gap.copy(), where=both)
    over = np.divide((gap - ece) / 2, w_high, out=gap.copy(), where=both)
    return np.clip(conf + np.where(high, over, under), 0.0, 1.0)


def _spread(centre: np.ndarray, mid: np.ndarray, samples: int) -> np.ndarray:
    """Integer counts per bin (rows × bins) summing to `samples`, Gaussian around `centre`
    (rows × 1); the largest remainders get the leftover samples."""
    density = np.exp(-0.5 * ((mid - centre) / CONF_SPREAD) ** 2)
    share = samples * density / density.sum(1, keepdims=True)
    count = np.floor(share).astype(np.int64)
    left = samples - count.sum(1, keepdims=True)
    rank = np.argsort(np.argsort(count - share, axis=1, kind="stable"), axis=1)
    return count + (rank < left)


def _list_column(values: np.ndarray) -> pd.Series:
    """A rows × n array as a pandas column of Arrow lists (no Python objects per row)."""
    rows, n = values.shape
    offsets = pa.array(np.arange(0, rows * n + 1, n, dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def fail_trials(
    rows: pd.DataFrame,
    trial_ids: list[str],
    status: str,
    message: str,
    epoch: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Make `trial_ids` stop at `epoch` (random when None) with `status` (diverged/error), as a
    real trial would: later epochs are dropped and the last row's metrics are null."""
    rng = np.random.default_rng(seed)
    stops = rng.integers(1, rows["epochs"].max() + 1, len(trial_ids)) if epoch is None else epoch
    stop = pd.Series(stops, index=trial_ids)
    rows = rows[~(rows["epoch"] > rows["trial_id"].map(stop))].copy()
    last = rows["epoch"] == rows["trial_id"].map(stop)
    rows.loc[last, list(CURVES)] = np.nan
    for column in rows.columns.intersection(BIN_COLUMNS):
        rows[column] = rows[column].mask(last)
    rows.loc[last, ["status", "message"]] = [status, message]
    return rows


def to_arrow(rows: pd.DataFrame) -> pa.Table:
    """Rows as a table of exactly `study.results.SCHEMA` (missing columns are null)."""
    present = [name for name in SCHEMA.names if name in rows]
    table = pa.Table.from_pandas(rows[present], preserve_index=False)
    columns = [table[f.name] if f.name in present else pa.nulls(len(rows), f.type) for f in SCHEMA]
    return pa.table(columns, names=SCHEMA.names).cast(SCHEMA)


def write_results(
    cells: pd.DataFrame,
    directory: str | Path,
    *,
    seeds: int = 1,
    epochs: int = 3,
    files: int = 1,
    noise: float = 0.0,
    seed: int = 0,
    bins: bool = True,
) -> pd.DataFrame:
    """Write synthetic results of `cells` into `files` Parquet files; returns the trial frame
    (`bins=False`: reliability-bin columns null, as in results from before they existed)."""
    frame = trials(cells, seeds)
    for i, part in enumerate(chunks(frame, files)):
        table = to_arrow(epoch_rows(part, epochs, noise, seed + i, bins))
        write_atomic(table, Path(directory) / f"part-{i:04d}.parquet")
    return frame


def chunks(frame: pd.DataFrame, parts: int) -> Iterator[pd.DataFrame]:
    """`frame` in `parts` consecutive pieces of near-equal length (fewer when it is short)."""
    for chunk in np.array_split(np.arange(len(frame)), max(1, min(parts, len(frame)))):
        yield frame.iloc[chunk]

"""Synthetic results of the contract schema, for tests, benchmarks and trying the analysis.

Each *cell* (a row of `cells`: dataset, model, method, alpha, margin, optional pretrained and
final metric values) becomes one trial per seed with `epochs` per-epoch rows. Every metric
moves from a plausible start to its final value along (1 − e/E)², so the last epoch holds the
cell's value exactly (plus the trial's noise). Generation is vectorised (numpy over rows), and
`write_results` writes a chosen number of Parquet files of exactly `study.results.SCHEMA`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from study.results import SCHEMA, SCHEMA_VERSION, STATUS_OK, write_atomic

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
        "dataset": {"name": trial["dataset"]},
        "model": {"name": trial["model"], "pretrained": trial["pretrained"]},
        "method": {"name": trial["method"], **nan_free},
        "train": {"seed": int(trial["seed"])},
    }


def epoch_rows(
    trial_frame: pd.DataFrame, epochs: int, noise: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Per-epoch rows of the given trials, every contract column filled (vectorised)."""
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
    return pd.DataFrame(rows)


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
    rows.loc[last, ["status", "message"]] = [status, message]
    return rows


def to_arrow(rows: pd.DataFrame) -> pa.Table:
    """Rows as a table of exactly `study.results.SCHEMA` (missing columns are null)."""
    table = pa.Table.from_pandas(rows.reindex(columns=SCHEMA.names), preserve_index=False)
    return table.cast(SCHEMA).replace_schema_metadata(None)


def write_results(
    cells: pd.DataFrame,
    directory: str | Path,
    *,
    seeds: int = 1,
    epochs: int = 3,
    files: int = 1,
    noise: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Write synthetic results of `cells` into `files` Parquet files; returns the trial frame."""
    frame = trials(cells, seeds)
    for i, part in enumerate(chunks(frame, files)):
        table = to_arrow(epoch_rows(part, epochs, noise, seed + i))
        write_atomic(table, Path(directory) / f"part-{i:04d}.parquet")
    return frame


def chunks(frame: pd.DataFrame, parts: int) -> Iterator[pd.DataFrame]:
    """`frame` in `parts` consecutive pieces of near-equal length (fewer when it is short)."""
    for chunk in np.array_split(np.arange(len(frame)), max(1, min(parts, len(frame)))):
        yield frame.iloc[chunk]

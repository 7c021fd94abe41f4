"""Reliability-diagram data: per-bin statistics pooled over trials, and the ECE of pooled bins.

Each results row holds, for every ECE bin (15 equal-width bins over [0, 1] by default), the
number of test samples in it, their accuracy and their mean confidence, from the raw logits
(`test_bin_*`) and after temperature scaling with T fitted on validation (`test_cal_bin_*`),
binned as `study.train.calibration.bin_stats`. Pooling trials sums the counts and takes
count-weighted means of accuracy and confidence: the bins of all their test samples together. The
ECE of pooled bins, Σ count·|acc − conf| / Σ count, is at most the count-weighted mean of the
trials' ECEs (over- and under-confident trials can cancel out in a bin).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.results.schema import STATUS_OK

STAGES = {"raw": "test_bin_", "after TS": "test_cal_bin_"}  # stage label → column prefix
STATS = ("count", "acc", "conf")
BIN_COLUMNS = [f"{prefix}{stat}" for prefix in STAGES.values() for stat in STATS]
POOL_KEYS = ["dataset", "variant"]
POOLED = ["stage", "bin", "lo", "hi", "count", "acc", "conf", "trials", "ece"]  # after the keys


def ece_from_bins(count: np.ndarray, acc: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """ECE from per-bin counts, accuracies and mean confidences (last axis: bins; empty bins,
    whose acc and conf are NaN, count for nothing)."""
    count = np.asarray(count, float)
    gaps = np.where(count > 0, count * np.abs(np.asarray(acc) - np.asarray(conf)), 0.0)
    return gaps.sum(-1) / count.sum(-1)


def usable_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ok rows of `df` whose bin columns are all filled, with the most common number of
    bins (rows binned otherwise are left out: their bins cannot be added up)."""
    if not set(BIN_COLUMNS) <= set(df.columns):
        return df.iloc[:0]
    rows = df[(df["status"] == STATUS_OK) & df[BIN_COLUMNS].notna().all(axis=1)]
    if rows.empty:
        return rows
    lengths = rows[BIN_COLUMNS[0]].map(len)
    return rows[lengths == lengths.mode().iloc[0]]


def pool_bins(df: pd.DataFrame, by: list[str] = POOL_KEYS) -> pd.DataFrame:
    """Bins pooled over the rows of each `by` group (default: dataset and variant, so over
    backbones and seeds), raw and after TS; one row per group, stage and bin.

    Columns: *by, stage ("raw" | "after TS"), bin (0-based), lo and hi (its confidence range),
    count (samples), acc and conf (count-weighted means; NaN when empty), trials (rows pooled)
    and ece (of the pooled bins, the same on every bin of a group and stage). Empty when no
    row has bins (diverged/error rows, or results written before the schema had them).
    """
    rows = usable_rows(df)
    if rows.empty:
        return pd.DataFrame(columns=[*by, *POOLED])
    grouped = rows.groupby(by, observed=True, sort=True)
    codes, trials = grouped.ngroup().to_numpy(), grouped.size()
    parts = [_pooled_stage(rows, prefix, codes, len(trials)) for prefix in STAGES.values()]
    n_groups, n_bins = parts[0]["count"].shape
    long = pd.DataFrame(
        {
            "stage": np.repeat(list(STAGES), n_groups * n_bins),
            "bin": np.tile(np.arange(n_bins), 2 * n_groups),
            **{s: np.concatenate([p[s].reshape(-1) for p in parts]) for s in [*STATS, "ece"]},
        }
    )
    keys = trials.rename("trials").reset_index()
    keys = keys.loc[np.tile(np.repeat(np.arange(n_groups), n_bins), 2)].reset_index(drop=True)
    long["lo"], long["hi"] = long["bin"] / n_bins, (long["bin"] + 1) / n_bins
    return pd.concat([keys, long], axis=1)[[*by, *POOLED]]


def _pooled_stage(
    rows: pd.DataFrame, prefix: str, codes: np.ndarray, n_groups: int
) -> dict[str, np.ndarray]:
    """Count, acc, conf (groups × bins) and ece (per group, repeated over bins) of one stage."""
    count, acc, conf = (np.stack(rows[f"{prefix}{s}"].to_numpy()).astype(float) for s in STATS)
    sums = np.zeros((3, n_groups, count.shape[1]))
    for i, values in enumerate([count, count * np.nan_to_num(acc), count * np.nan_to_num(conf)]):
        np.add.at(sums[i], codes, values)
    total, correct, confidence = sums
    samples = np.where(total > 0, total, np.nan)  # empty pooled bins: NaN acc and conf
    acc, conf = correct / samples, confidence / samples
    ece = np.repeat(ece_from_bins(total, acc, conf), total.shape[1])
    return {"count": total.astype(np.int64), "acc": acc, "conf": conf, "ece": ece}

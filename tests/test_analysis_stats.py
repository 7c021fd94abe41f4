"""analysis.stats: Pareto front, bootstrap intervals, pairing by seed, marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import (
    bootstrap_ci,
    diff_from_baseline,
    marks,
    paired_differences,
    pareto_front,
)


def brute_force_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """O(n²): p is on the front unless some q has x ≥, y ≤ and one of them strictly."""
    ge, le = x[None, :] >= x[:, None], y[None, :] <= y[:, None]
    strict = (x[None, :] > x[:, None]) | (y[None, :] < y[:, None])
    return ~(ge & le & strict).any(axis=1)


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    x, y = rng.normal(size=n), rng.normal(size=n)
    if seed % 2:  # coarse grid: many ties in x, in y and whole duplicate points
        x, y = np.round(x, 1), np.round(y, 1)
    np.testing.assert_array_equal(pareto_front(x, y), brute_force_front(x, y))


def test_pareto_front_edge_cases():
    assert pareto_front([], []).tolist() == []
    assert pareto_front([0.5, np.nan, 0.9], [0.1, 0.0, np.nan]).tolist() == [True, False, False]
    assert pareto_front([1, 1], [2, 2]).tolist() == [True, True]  # equal points: both


def test_bootstrap_interval_covers_a_planted_mean_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    reps, n, planted = 400, 20, 0.3
    data = pd.DataFrame(
        {"rep": np.repeat(np.arange(reps), n), "diff": rng.normal(planted, 1.0, reps * n)}
    )
    ci = bootstrap_ci(data, ["rep"], n_boot=1000, seed=2)
    covered = ((ci["lo"] <= planted) & (planted <= ci["hi"])).mean()
    assert 0.90 <= covered <= 0.98  # percentile bootstrap at n = 20 runs slightly under 0.95
    width = (ci["hi"] - ci["lo"]).mean()
    assert width == pytest.approx(2 * 1.96 / np.sqrt(n), rel=0.15)


def test_one_pair_has_no_interval():
    ci = bootstrap_ci(pd.DataFrame({"g": [0], "diff": [0.1]}), ["g"])
    assert ci["mean"].item() == 0.1 and np.isnan(ci["lo"].item()) and ci["n"].item() == 1


def _seeded(seed_effect: np.ndarray, planted: float) -> pd.DataFrame:
    """ERM and one variant over seeds with a large shared seed effect and a small difference."""
    n = len(seed_effect)
    common = {"dataset": "svhn", "backbone": "resnet18", "status": "ok"}
    erm = pd.DataFrame({**common, "seed": range(n), "variant": "ERM", "test_acc": 0.8})
    other = erm.assign(variant="Mixup (α=1.0)", test_acc=0.8 + planted)
    both = pd.concat([erm, other], ignore_index=True)
    both["test_acc"] += np.tile(seed_effect, 2)
    return both


def test_differences_are_paired_by_seed():
    seed_effect = np.random.default_rng(0).normal(0, 0.05, 8)
    df = _seeded(seed_effect, planted=0.01)
    diffs = paired_differences(df, "test_acc")
    np.testing.assert_allclose(diffs["diff"], 0.01)
    result = diff_from_baseline(df, "test_acc").iloc[0]
    assert result["mean"] == pytest.approx(0.01) and result["n"] == 8
    assert result["lo"] == pytest.approx(0.01) and result["mark"] == "▲"  # no noise once paired


def test_differences_without_baseline_are_empty():
    df = _seeded(np.zeros(3), 0.01)
    assert paired_differences(df[df["variant"] != "ERM"], "test_acc").empty


def test_marks_follow_the_metric_direction_and_the_noise():
    mean = pd.Series([0.02, 0.02, -0.02, -0.02, 0.0, 0.02])
    lo = pd.Series([0.01, -0.01, -0.03, -0.03, np.nan, np.nan])  # the last: one pair, no interval
    hi = pd.Series([0.03, 0.05, -0.01, 0.01, np.nan, np.nan])
    assert marks(mean, lo, hi, "test_acc").tolist() == ["▲", "△", "▼", "▽", "", "△"]
    assert marks(mean, lo, hi, "test_cal_ece").tolist() == ["▼", "▽", "▲", "△", "", "▽"]

"""analysis.stats: Pareto front, Student-t intervals, pooling, Holm, power, pairing, marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis.stats import (
    diff_from_baseline,
    holm,
    marks,
    one_cell,
    paired_differences,
    pareto_front,
    pool,
    replicates_needed,
    t_interval,
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


def test_t_interval_covers_a_planted_mean_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    reps, n, planted = 4000, 20, 0.3
    mean, lo, hi, p, sd = t_interval(rng.normal(planted, 1.0, (reps, n)))
    covered = ((lo <= planted) & (planted <= hi)).mean()
    assert 0.94 <= covered <= 0.96
    width = (hi - lo).mean()
    assert width == pytest.approx(2 * scipy.stats.t.ppf(0.975, n - 1) / np.sqrt(n), rel=0.05)


def test_t_interval_and_p_agree_with_scipy_exactly():
    x = np.array([0.012, -0.003, 0.021, 0.008, 0.015])
    mean, lo, hi, p, sd = (float(v) for v in t_interval(x, boundary=0.002))
    ref = scipy.stats.ttest_1samp(x, 0.002)
    ci = scipy.stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (lo, hi) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    assert sd == pytest.approx(np.std(x, ddof=1)) and mean == pytest.approx(x.mean())


def test_one_pair_has_no_interval():
    iv = one_cell(np.array([0.1]))
    assert iv.mean == 0.1 and np.isnan(iv.lo) and np.isnan(iv.p) and iv.n == 1
    assert not iv.finite


def test_pooling_one_cell_is_its_t_interval_and_several_a_stratified_t():
    rng = np.random.default_rng(3)
    cell = rng.normal(0.01, 0.01, 6)
    assert pool([cell]) == one_cell(cell)
    shifted = [cell, cell + 0.004, cell - 0.004]  # same spread, different levels: strata
    iv = pool(shifted)
    assert iv.mean == pytest.approx(cell.mean()) and iv.n == 3 and "paired t over 3" in iv.method
    sd = np.std(cell, ddof=1)  # every cell has it: the pooled within-cell sd
    se = sd * np.sqrt(3 / 6) / 3
    t = scipy.stats.t.ppf(0.975, 15)
    assert (iv.lo, iv.hi) == (pytest.approx(iv.mean - t * se), pytest.approx(iv.mean + t * se))
    assert iv.sd == pytest.approx(sd)
    far = [rng.normal(m, 0.001, 5) for m in (-0.02, 0.0, 0.02, 0.04)]  # cells that disagree
    assert "disagree" in pool(far).method and "disagree" not in iv.method
    singles = pool([np.array([0.01]), np.array([0.02]), np.array([0.03])])
    assert "cell means" in singles.method and singles.mean == pytest.approx(0.02)


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    assert holm(p)[:4].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(p)[4])
    assert holm([]).size == 0


@pytest.mark.parametrize(("effect", "expected"), [(1.0, 10), (0.5, 34)])
def test_replicates_needed_matches_the_power_tables(effect, expected):
    """A one-sample t-test at 5% (two-sided) and 80% power needs 10 pairs for d = 1 and 34
    for d = 0.5 (Cohen's tables)."""
    assert replicates_needed(1.0, delta=effect) == expected
    assert replicates_needed(float("nan")) is None and replicates_needed(0.0) == 2


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
    assert result["p_holm"] == 0.0 and result["needed"] == 2


def test_replicates_pair_by_split_seed_too():
    df = _seeded(np.zeros(4), 0.01)
    df["split_seed"] = np.tile([0, 0, 1, 1], 2)
    df["seed"] = np.tile([0, 1, 0, 1], 2)
    assert len(paired_differences(df, "test_acc")) == 4  # (split, seed) pairs, none averaged


def test_differences_without_baseline_are_empty():
    df = _seeded(np.zeros(3), 0.01)
    assert paired_differences(df[df["variant"] != "ERM"], "test_acc").empty


def test_marks_follow_the_metric_direction_and_the_noise():
    mean = pd.Series([0.02, 0.02, -0.02, -0.02, 0.0, 0.02])
    lo = pd.Series([0.01, -0.01, -0.03, -0.03, np.nan, np.nan])  # the last: one pair, no interval
    hi = pd.Series([0.03, 0.05, -0.01, 0.01, np.nan, np.nan])
    assert marks(mean, lo, hi, "test_acc").tolist() == ["▲", "△", "▼", "▽", "", "△"]
    assert marks(mean, lo, hi, "test_cal_ece").tolist() == ["▼", "▽", "▲", "△", "", "▽"]

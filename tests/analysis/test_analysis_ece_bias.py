"""analysis.ece_bias: the noise floor of the binned ECE and Kumar et al.'s debiased ECE."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import ece_bias

N_BINS = 15


def _bins(conf: np.ndarray, correct: np.ndarray):
    """Per-bin count, accuracy and mean confidence, binned as study.train.calibration
    (lo < c ≤ hi)."""
    idx = np.searchsorted(np.linspace(0, 1, N_BINS + 1)[1:-1], conf, side="left")
    count = np.bincount(idx, minlength=N_BINS)
    safe = np.maximum(count, 1)
    acc = np.bincount(idx, weights=correct, minlength=N_BINS) / safe
    mean_conf = np.bincount(idx, weights=conf, minlength=N_BINS) / safe
    return count, acc, mean_conf


def _plugin(count, acc, conf) -> float:
    return float((count / count.sum() * np.abs(acc - conf)).sum())


def test_the_floor_is_what_a_perfectly_calibrated_model_scores():
    rng = np.random.default_rng(0)
    conf = rng.beta(6, 2, 5000)
    scores = [_plugin(*_bins(conf, rng.random(5000) < conf)) for _ in range(400)]
    count, _, mean_conf = _bins(conf, np.zeros(5000))
    floor = ece_bias.noise_floor(count, mean_conf)
    assert floor == pytest.approx(np.mean(scores), rel=0.08)
    assert 0.005 < floor < 0.03  # about 1.5 points on 5,000 samples


def test_debiased_equals_kumars_resampling_estimator():
    """2·ECE − mean of ECE with bin accuracies redrawn from Normal(acc, acc(1 − acc)/n):
    the resampling of Kumar et al.'s code, against this module's exact expectation."""
    rng = np.random.default_rng(1)
    conf = rng.beta(6, 2, 3000)
    correct = rng.random(3000) < np.clip(conf - 0.05, 0, 1)  # overconfident by 5 points
    count, acc, mean_conf = _bins(conf, correct)
    keep = count > 0
    w, sigma = count[keep] / count.sum(), np.sqrt(acc[keep] * (1 - acc[keep]) / count[keep])
    draws = rng.normal(acc[keep], sigma, (200_000, keep.sum()))
    each = (w * np.abs(draws - mean_conf[keep])).sum(1)
    expected = 2 * _plugin(count, acc, mean_conf) - each.mean()
    se = each.std() / np.sqrt(len(each))  # the resampling's own Monte-Carlo error
    assert ece_bias.debiased_ece(count, acc, mean_conf) == pytest.approx(expected, abs=4 * se)


def test_debiasing_removes_part_of_the_bias_of_a_perfect_model():
    """For p = 1 the normal debiasing is partial: a perfect model's plug-in ECE of 1.40 points
    comes down to 0.81 here (true value 0), never to or below 0 on average."""
    rng = np.random.default_rng(2)
    conf = rng.beta(6, 2, 5000)
    plugin, debiased = [], []
    for _ in range(200):
        bins = _bins(conf, rng.random(5000) < conf)
        plugin.append(_plugin(*bins))
        debiased.append(ece_bias.debiased_ece(*bins))
    assert 0 < np.mean(debiased) < 0.7 * np.mean(plugin)


def test_rows_without_bins_are_nan():
    import pandas as pd

    df = pd.DataFrame({"test_cal_bin_count": [None], "test_cal_bin_acc": [None],
                       "test_cal_bin_conf": [None]})  # fmt: skip
    debiased, floor = ece_bias.per_row(df)
    assert np.isnan(debiased).all() and np.isnan(floor).all()

"""How far the binned ECE sits above the truth on a finite test set, from the per-bin counts,
accuracies and confidences every row stores (`test_cal_bin_*`).

The plug-in ECE Σ_b (n_b/n)·|acc_b − conf_b| is biased upwards: even a perfectly calibrated
model scores above 0, because each bin's accuracy is a mean of n_b coin flips. Two figures:

- the *noise floor*: the expected ECE of a perfectly calibrated model with these bins, where a
  bin's accuracy is Normal(conf_b, conf_b(1 − conf_b)/n_b):
  Σ_b (n_b/n)·√(2/π)·√(conf_b(1 − conf_b)/n_b). A calibrated ECE at or below it is
  indistinguishable from perfect calibration at this test size.
- the *debiased ECE* (Kumar, Liang & Ma, "Verified Uncertainty Calibration", NeurIPS 2019, their
  normal-debiased estimator for p = 1): 2·ECE − E[ECE*], where ECE* is the plug-in ECE with
  each bin's accuracy redrawn from Normal(acc_b, acc_b(1 − acc_b)/n_b). Their code estimates
  E[ECE*] by resampling; here it is exact, E|N(μ, σ²)| = σ√(2/π)·e^(−μ²/2σ²) + μ(1 − 2Φ(−μ/σ)).
For ℓ1 the correction is partial (a perfect model's 1.40 points fall to 0.81 in
tests/analysis/test_analysis_ece_bias.py): it lowers the bias, it does not remove it.
Numpy only (no torch): the analysis reads it from stored rows, old studies included.
"""

from __future__ import annotations

import math

import numpy as np

STAGE = "test_cal_bin_"  # the bins after temperature scaling (study.train.calibration.bin_stats)


def _arrays(count, acc, conf) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n_b = np.asarray(count, dtype=float)
    keep = n_b > 0
    n = float(n_b.sum())
    return n_b[keep], np.asarray(acc, float)[keep], np.asarray(conf, float)[keep], n


def _folded_mean(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """E|X| for X ~ Normal(mu, sigma²), elementwise (|mu| where sigma is 0)."""
    from scipy.special import ndtr  # here: the loader imports this module, rarely uses it

    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, mu / sigma, 0.0)
        value = sigma * math.sqrt(2 / math.pi) * np.exp(-0.5 * z**2) + mu * (1 - 2 * ndtr(-z))
    return np.where(sigma > 0, value, np.abs(mu))


def noise_floor(count, conf) -> float:
    """Expected ECE of a perfectly calibrated model with these bin counts and confidences."""
    n_b, _, c, n = _arrays(count, conf, conf)
    if n == 0:
        return float("nan")
    sigma = np.sqrt(np.clip(c * (1 - c), 0, None) / n_b)
    return float((n_b / n * math.sqrt(2 / math.pi) * sigma).sum())


def debiased_ece(count, acc, conf) -> float:
    """Kumar et al.'s normal-debiased ECE (exact expectation) from one row's bins."""
    n_b, a, c, n = _arrays(count, acc, conf)
    if n == 0:
        return float("nan")
    w = n_b / n
    plugin = float((w * np.abs(a - c)).sum())
    sigma = np.sqrt(np.clip(a * (1 - a), 0, None) / n_b)
    return 2 * plugin - float((w * _folded_mean(a - c, sigma)).sum())


def per_row(df) -> tuple[np.ndarray, np.ndarray]:
    """(debiased calibrated ECE, noise floor) of each row of a frame with the `test_cal_bin_*`
    columns (NaN where a row has no bins)."""
    columns = [f"{STAGE}{k}" for k in ("count", "acc", "conf")]
    if not all(c in df for c in columns):
        nan = np.full(len(df), np.nan)
        return nan, nan.copy()
    debiased, floor = [], []
    for count, acc, conf in zip(*(df[c] for c in columns), strict=True):
        if count is None or acc is None or conf is None or len(count) == 0:
            debiased.append(np.nan)
            floor.append(np.nan)
            continue
        debiased.append(debiased_ece(count, acc, conf))
        floor.append(noise_floor(count, conf))
    return np.asarray(debiased), np.asarray(floor)

"""The Findings' false-verdict rate when nothing is there: synthetic paired differences with a
true mean of 0, judged as `analysis.evidence` judges one comparison (Student-t interval, verdict
at p < 0.05). A percentile bootstrap at 3 replicates gave 25% (normal noise): its "95%
interval" is the range of the three differences. docs/analysis.md ("Statistics") has the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import evidence, stats

REPS = 4000
BAR = 0.07  # verdicts other than inconclusive, at most, under the null (5% nominal + MC slack)


def _noise(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Mean-0 noise: normal, Student-t with 3 df (heavy tails), or centred lognormal (skewed)."""
    if kind == "normal":
        return rng.normal(0.0, 1.0, shape)
    if kind == "t3":
        return rng.standard_t(3, shape)
    return rng.lognormal(0.0, 1.0, shape) - np.exp(0.5)


def false_rate(kind: str, n: int, seed: int = 0) -> float:
    x = _noise(kind, np.random.default_rng(seed), (REPS, n))
    mean, lo, hi, p, sd = stats.t_interval(x)
    judged = evidence.verdicts(mean, p, sign=1.0)
    return float((judged != evidence.INCONCLUSIVE).mean())


@pytest.mark.parametrize("n", [3, 5, 10, 20])
@pytest.mark.parametrize("kind", ["normal", "t3"])
def test_false_verdicts_stay_near_five_percent(kind, n):
    assert false_rate(kind, n) <= BAR


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_skewed_noise_is_measured_not_hidden(n):
    """Skewed (lognormal) differences break the t-interval's symmetry: its false-verdict rate
    is above 5% at small n (docs/analysis.md gives the measured rates). Bounded here so a
    change that makes it worse fails."""
    rate = false_rate("lognormal", n)
    assert 0.05 < rate <= 0.20


def test_the_full_comparison_path_keeps_the_rate():
    """The same through `evidence.build` on DataFrames (the code path the report uses)."""
    rng = np.random.default_rng(5)
    reps, n = 400, 3
    verdicts = []
    for _ in range(reps):
        diffs = pd.DataFrame(
            {"dataset": "d", "backbone": "b", "split_seed": range(n), "seed": range(n),
             "diff": rng.normal(0.0, 0.01, n)}
        )  # fmt: skip
        c = evidence.decide_all([evidence.build(diffs, "test_cal_ece", "V", "ERM", 1.0)])[0]
        verdicts.append(c.verdict)
    assert np.mean(np.array(verdicts) != evidence.INCONCLUSIVE) <= 0.09  # 5% ± 2 s.e. of 400


def test_holm_keeps_the_family_rate_over_many_comparisons():
    """28 null comparisons at once (the family report's count): without correction about
    1 − 0.95^28 = 76% of studies get at least one false verdict; with Holm at most 5%."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, (REPS, 28, 10))
    mean, lo, hi, p, sd = stats.t_interval(x)
    any_raw = (p < 0.05).any(1).mean()
    any_holm = np.mean([(stats.holm(row) < 0.05).any() for row in p])
    assert any_raw > 0.6 and any_holm <= BAR

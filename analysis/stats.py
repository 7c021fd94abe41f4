"""Statistics the paper does not report: paired differences from ERM, bootstrap intervals, the
▲/▼ marks of Table 1 with the noise made visible, and the Pareto front of the dilemma plot.

The paper prints one number per cell and marks ▲ (better than ERM) or ▼ (worse) on its sign
alone. With two or more seeds we pair each variant's trial with ERM's trial of the same dataset,
backbone and seed, and bootstrap the mean of those paired differences; a mark whose 95% interval
contains 0 is drawn hollow (△/▽): inside the noise; so is one without an interval (one seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.variants import BASELINE, get_metric
from study.pareto import pareto_front  # the dilemma plot's front; lives below the study
from study.results import STATUS_OK

__all__ = ["bootstrap_ci", "diff_from_baseline", "marks", "paired_differences", "pareto_front"]

PAIR_KEYS = ["dataset", "backbone", "seed"]
BETTER, WORSE, BETTER_NOISY, WORSE_NOISY = "▲", "▼", "△", "▽"
MARK_LEGEND = (
    f"{BETTER}/{WORSE}: better/worse than {BASELINE}; {BETTER_NOISY}/{WORSE_NOISY}: the same "
    "but the 95% bootstrap interval of the paired difference contains 0 (inside the noise), "
    "or there is no interval (one seed: the noise is unknown)"
)


def paired_differences(df: pd.DataFrame, metric: str, baseline: str = BASELINE) -> pd.DataFrame:
    """Per (dataset, backbone, seed, variant): the variant's value minus the baseline's.

    Trials sharing a key (several studies) are averaged first; keys without a baseline trial
    are dropped. Columns: dataset, backbone, seed, variant, diff.
    """
    ok = df.loc[df["status"] == STATUS_OK, [*PAIR_KEYS, "variant", metric]]
    means = ok.groupby([*PAIR_KEYS, "variant"], observed=True)[metric].mean().unstack("variant")
    columns = [*PAIR_KEYS, "variant", "diff"]
    if baseline not in means.columns:
        return pd.DataFrame(columns=columns)
    diffs = means.drop(columns=baseline).sub(means[baseline], axis=0)
    long = diffs.stack(future_stack=True).rename("diff").reset_index()
    return long.dropna(subset=["diff"])[columns]


def bootstrap_ci(
    data: pd.DataFrame,
    by: Sequence[str],
    value: str = "diff",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of `value` per group with a percentile bootstrap interval (resampling rows).

    Columns: *by, mean, lo, hi, n. Groups of one row get no interval (lo = hi = NaN): one
    seed says nothing about the noise.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in data.groupby(list(by), observed=True, sort=True):
        x = group[value].to_numpy(dtype=float)
        rows.append((*key, x.mean(), *_percentile_interval(x, rng, n_boot, level), len(x)))
    return pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "n"])


def _percentile_interval(
    x: np.ndarray, rng: np.random.Generator, n_boot: int, level: float
) -> tuple[float, float]:
    """scipy.stats.bootstrap's percentile interval of the mean. The rows are already paired
    differences (variant − ERM per dataset, backbone and seed), so resampling them is the
    paired bootstrap (scipy's `paired=True` on the two columns gives the same intervals)."""
    if len(x) < 2:
        return (np.nan, np.nan)
    import scipy.stats  # here: 0.8 s of import that reading results does not need

    ci = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile", rng=rng
    ).confidence_interval
    return (float(ci.low), float(ci.high))


def diff_from_baseline(
    df: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("dataset", "variant"),
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each variant's mean paired difference from ERM per `by`, its 95% interval and mark."""
    result = bootstrap_ci(paired_differences(df, metric), by, n_boot=n_boot, seed=seed)
    result["mark"] = marks(result["mean"], result["lo"], result["hi"], metric)
    return result


def marks(mean: pd.Series, lo: pd.Series, hi: pd.Series, metric: str) -> np.ndarray:
    """▲/▼ by the sign of the difference (the metric's direction), hollow inside the noise or
    without an interval (one pair: a sign alone says nothing)."""
    sign = 1.0 if get_metric(metric).higher_is_better else -1.0
    better, worse = sign * mean > 0, sign * mean < 0
    noisy = ~((lo > 0) | (hi < 0))
    return np.select(
        [better & ~noisy, better & noisy, worse & ~noisy, worse & noisy],
        [BETTER, BETTER_NOISY, WORSE, WORSE_NOISY],
        "",
    )

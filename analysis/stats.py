"""The statistics behind every interval and verdict of the report (docs/analysis.md,
"Statistics"): paired differences over replicates, Student-t intervals, pooling across cells (a
stratified paired t), Holm's correction, and the replicates a comparison would need.

The paper prints one number per cell and marks ▲ (better than ERM) or ▼ (worse) on its sign
alone. Here a *replicate* is one (`dataset.split_seed`, `train.seed`): another data subset and
another seed of the same configuration. Each variant's trial is paired with ERM's trial of the
same dataset, backbone (which carries any other setting that differs: `analysis.trials`) and
replicate, and the mean of the paired differences gets a Student-t interval — with 3 replicates a
percentile bootstrap interval is [min, max] of the differences, a sign test at p = 0.25, not a
95% interval (tests/analysis/test_analysis_coverage.py measures both). A mark whose interval
contains 0, or whose Holm-adjusted p-value is not below 0.05, is drawn hollow (△/▽); so is one
without an interval (one replicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.settings import split_seeds
from analysis.variants import BASELINE, get_metric
from study.pareto import pareto_front  # the dilemma plot's front; lives below the study
from study.results.schema import STATUS_OK

__all__ = [
    "Interval",
    "diff_from_baseline",
    "holm",
    "marks",
    "paired_differences",
    "pareto_front",
    "pool",
    "replicates_needed",
    "t_interval",
]

REPLICATE_KEYS = ["split_seed", "seed"]  # what differs between replicates of one configuration
PAIR_KEYS = ["dataset", "backbone", *REPLICATE_KEYS]
LEVEL = 0.95  # every interval's confidence level; verdicts test at 1 − LEVEL
RESOLVE = 0.005  # the difference a power figure asks to resolve: half a percentage point
POWER = 0.8
MAX_NEEDED = 10_000  # replicates_needed stops counting here
BETTER, WORSE, BETTER_NOISY, WORSE_NOISY = "▲", "▼", "△", "▽"
MARK_LEGEND = (
    f"{BETTER}/{WORSE}: better/worse than {BASELINE}, the 95% Student-t interval of the paired "
    "difference (over replicates: split seed and seed; backbones pooled) excludes 0 and the "
    "Holm-adjusted p-value over this table's marks is below 0.05; "
    f"{BETTER_NOISY}/{WORSE_NOISY}: the same direction "
    "inside the noise, or one replicate (no interval)"
)


@dataclass(frozen=True)
class Interval:
    """A mean difference with its 95% interval and the test of `boundary` (two-sided)."""

    mean: float
    lo: float  # NaN without an interval (fewer than 2 replicates, or 2 cells that agree)
    hi: float
    p: float  # two-sided p-value of "mean = boundary"; NaN without an interval
    n: int  # replicates (one cell) or cells (pooled)
    sd: float  # standard deviation of the replicate differences (pooled within cells)
    method: str  # how the interval was made, in words

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))


def t_interval(x: np.ndarray, boundary: float = 0.0, level: float = LEVEL) -> tuple:
    """Mean, Student-t interval and two-sided p-value of "mean = boundary" along the last axis
    of `x` (vectorised: rows of replicates). Returns (mean, lo, hi, p, sd) arrays; with fewer
    than 2 values lo, hi, p and sd are NaN; a zero spread gives a point interval and p = 0
    unless the mean is the boundary."""
    import scipy.stats  # here: 0.8 s of import that reading results does not need

    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    mean = x.mean(-1) if n else np.full(x.shape[:-1], np.nan)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan, nan, nan
    sd = x.std(-1, ddof=1)
    se = sd / np.sqrt(n)
    half = scipy.stats.t.ppf(0.5 + level / 2, n - 1) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - boundary) / se
    p = np.where(se > 0, 2 * scipy.stats.t.sf(np.abs(t), n - 1), np.where(t == 0, 1.0, 0.0))
    return mean, mean - half, mean + half, p, sd


def one_cell(x: np.ndarray, boundary: float = 0.0) -> Interval:
    """The Student-t interval of one cell's replicate differences."""
    mean, lo, hi, p, sd = (float(v) for v in t_interval(np.asarray(x, float), boundary))
    n = len(x)
    return Interval(mean, lo, hi, p, n, sd, f"Student-t over {n} replicate{'s' * (n != 1)}")


def pool(cells: Sequence[np.ndarray], boundary: float = 0.0) -> Interval:
    """One interval over several cells' replicate differences (cells: datasets, backbones, α).

    One cell: its Student-t interval. Several: the mean of the cell means (each cell weighs
    the same), its standard error from the within-cell spread pooled over cells,
    √(s²·Σ 1/n_i)/k, and Student-t with Σ(n_i − 1) degrees of freedom — a paired t over all
    cells with the cells as strata. It speaks for these cells (fixed effects), not for a
    population of backbones; when the cells disagree beyond their noise (Cochran's Q at 5%) the
    method says so. Cells of one replicate each have no spread: then Student-t over the k cell
    means."""
    import scipy.stats

    cells = [np.asarray(c, dtype=float) for c in cells if len(c)]
    if len(cells) == 1:
        return one_cell(cells[0], boundary)
    k = len(cells)
    means = np.array([c.mean() for c in cells])
    sizes = np.array([len(c) for c in cells])
    within = _pooled_sd(cells)
    dof = int((sizes - 1).sum())
    if dof < 1 or not np.isfinite(within):
        x = one_cell(means, boundary)
        return Interval(x.mean, x.lo, x.hi, x.p, k, within, f"Student-t over {k} cell means")
    mu = float(means.mean())
    se = float(within * np.sqrt((1 / sizes).sum()) / k)
    half = float(scipy.stats.t.ppf(0.5 + LEVEL / 2, dof)) * se
    if se > 0:
        p = float(2 * scipy.stats.t.sf(abs(mu - boundary) / se, dof))
    else:
        p = 1.0 if mu == boundary else 0.0
    method = f"paired t over {k} cells ({int(sizes.sum())} replicate differences)"
    if se > 0:
        q = float((sizes * (means - np.average(means, weights=sizes)) ** 2).sum() / within**2)
        if scipy.stats.chi2.sf(q, k - 1) < 1 - LEVEL:
            method += "; the cells disagree beyond their noise (Cochran's Q): an average"
    return Interval(mu, mu - half, mu + half, p, k, within, method)


def _pooled_sd(cells: Sequence[np.ndarray]) -> float:
    """The within-cell standard deviation of the differences, pooled over cells of ≥ 2."""
    usable = [c for c in cells if len(c) > 1]
    if not usable:
        return float("nan")
    dof = sum(len(c) - 1 for c in usable)
    return float(np.sqrt(sum(c.var(ddof=1) * (len(c) - 1) for c in usable) / dof))


def replicates_needed(sd: float, delta: float = RESOLVE, power: float = POWER) -> int | None:
    """The fewest replicates whose paired t-test (two-sided, 5%) detects a true difference of
    `delta` with probability `power` when the differences spread by `sd` (noncentral t).
    None without a spread; MAX_NEEDED when even that many would not do."""
    import scipy.stats

    if not np.isfinite(sd):
        return None
    if sd <= 0:
        return 2
    n = np.arange(2, MAX_NEEDED + 1)
    crit = scipy.stats.t.ppf(1 - (1 - LEVEL) / 2, n - 1)
    nc = delta / sd * np.sqrt(n)
    achieved = scipy.stats.nct.sf(crit, n - 1, nc) + scipy.stats.nct.cdf(-crit, n - 1, nc)
    hits = np.flatnonzero(achieved >= power)
    return int(n[hits[0]]) if len(hits) else MAX_NEEDED


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def with_replicates(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `split_seed` column (from config_json when it lacks one; −1 where unknown)."""
    if "split_seed" in df:
        return df
    return df.assign(split_seed=split_seeds(df))


def paired_differences(df: pd.DataFrame, metric: str, baseline: str = BASELINE) -> pd.DataFrame:
    """Per (dataset, backbone, split_seed, seed, variant): the variant's value minus the
    baseline's. Repeats are dropped before (`analysis.trials.drop_repeats`); keys without a
    baseline trial are dropped. Columns: dataset, backbone, split_seed, seed, variant, diff."""
    df = with_replicates(df)
    ok = df.loc[df["status"] == STATUS_OK, [*PAIR_KEYS, "variant", metric]]
    means = ok.groupby([*PAIR_KEYS, "variant"], observed=True)[metric].mean().unstack("variant")
    columns = [*PAIR_KEYS, "variant", "diff"]
    if baseline not in means.columns:
        return pd.DataFrame(columns=columns)
    diffs = means.drop(columns=baseline).sub(means[baseline], axis=0)
    long = diffs.stack(future_stack=True).rename("diff").reset_index()
    return long.dropna(subset=["diff"])[columns]


def diff_from_baseline(
    df: pd.DataFrame, metric: str, by: Sequence[str] = ("dataset", "variant")
) -> pd.DataFrame:
    """Each variant's mean paired difference from ERM per `by` (backbones pooled when `by`
    leaves them out), its 95% interval, Holm-adjusted p over the rows, replicates needed to
    resolve half a point, and its mark. Columns: *by, mean, lo, hi, p, p_holm, n, needed, mark."""
    diffs = paired_differences(df, metric)
    rows = []
    for key, group in diffs.groupby(list(by), observed=True, sort=True):
        cells = [g["diff"].to_numpy() for _, g in group.groupby("backbone", observed=True)]
        iv = pool(cells)
        needed = replicates_needed(iv.sd)
        rows.append((*key, iv.mean, iv.lo, iv.hi, iv.p, len(group), needed))
    out = pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "p", "n", "needed"])
    out.insert(len(by) + 4, "p_holm", holm(out["p"]) if len(out) else [])
    out["mark"] = marks(out["mean"], out["lo"], out["hi"], metric, out["p_holm"])
    return out


def marks(
    mean: pd.Series, lo: pd.Series, hi: pd.Series, metric: str, p_holm: pd.Series | None = None
) -> np.ndarray:
    """▲/▼ by the sign of the difference (the metric's direction), hollow inside the noise,
    when Holm's correction leaves it at p ≥ 0.05, or without an interval (one replicate)."""
    sign = 1.0 if get_metric(metric).higher_is_better else -1.0
    better, worse = sign * mean > 0, sign * mean < 0
    noisy = ~((lo > 0) | (hi < 0))
    if p_holm is not None:
        noisy = noisy | ~(np.asarray(p_holm, dtype=float) < 1 - LEVEL)
    return np.select(
        [better & ~noisy, better & noisy, worse & ~noisy, worse & noisy],
        [BETTER, BETTER_NOISY, WORSE, WORSE_NOISY],
        "",
    )

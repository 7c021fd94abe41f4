"""One tested comparison of the Findings: a mean difference over replicates (pooled over
cells), its 95% interval, its p-value against the claim's boundary, Holm's adjustment over
every comparison the Findings decide, the verdict, and how many replicates would resolve half
a point (docs/analysis.md, "Statistics").

A comparison tests "sign · (difference − boundary) > 0". It is *supported* when its
Holm-adjusted p-value is below 0.05 and the mean lies on the claimed side (the 95% interval
then excludes the boundary on that side), *contradicted* when the same holds on the other
side, and *inconclusive* otherwise — with fewer than 2 replicates always.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats
from analysis.variants import get_metric

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
ALPHA = 1 - stats.LEVEL  # the family-wise error rate Holm's correction holds


@dataclass(frozen=True)
class Comparison:
    """`variant` − `reference` of `metric` on `dataset` (fractions), tested against `boundary`."""

    dataset: str  # a dataset, or "all" when the claim pools every dataset
    variant: str
    reference: str
    metric: str
    mean: float
    lo: float  # 95% interval (NaN without one)
    hi: float
    pairs: int  # replicate differences behind it (over every cell)
    seeds: int  # distinct replicates (split seed, seed) among them
    verdict: str = INCONCLUSIVE  # set by `decide_all`; evidence lines keep "" (not decided)
    sign: float = 1.0  # +1: the claim says the difference is above `boundary`; −1: below
    boundary: float = 0.0
    p: float = float("nan")  # two-sided, of "difference = boundary"
    p_holm: float = float("nan")
    needed: int | None = None  # replicates for 80% power at half a point, from the spread
    method: str = ""  # how the interval was made
    cells: int = 1

    def describe(self) -> str:
        """ "cifar10, Mixup (α=1.0) − ERM: −1.20 [−1.50, −0.90] points of ECE, 10 replicates…"."""
        spec = get_metric(self.metric)
        interval = (
            f" [{spec.show(self.lo, True)}, {spec.show(self.hi, True)}]"
            if np.isfinite(self.lo)
            else ""
        )
        unit = " points" if spec.percent else ""
        tested = ""
        if np.isfinite(self.p) and self.verdict:  # evidence lines (verdict "") test nothing
            side = ">" if self.sign > 0 else "<"
            tested = f", claim {side} {spec.show(self.boundary, True)}: p = {self.p:.2g}"
            tested += f", Holm {self.p_holm:.2g}" if np.isfinite(self.p_holm) else ""
        need = f", ~{self.needed} replicates resolve 0.5 points" if self.needed else ""
        return (
            f"{self.dataset}, {self.variant} − {self.reference}: {spec.show(self.mean, True)}"
            f"{interval}{unit} of {spec.label} ({self.method}; {self.seeds} replicate"
            f"{'s' * (self.seeds != 1)}{tested}{need})"
        )


def build(
    diffs: pd.DataFrame,
    metric: str,
    variant: str,
    reference: str,
    sign: float,
    boundary: float = 0.0,
    dataset: str | None = None,
) -> Comparison | None:
    """One comparison over the rows of `diffs` (columns dataset, backbone, split_seed, seed,
    diff; more cell keys in `cell`): each (dataset, backbone, cell) a cell of replicates,
    pooled by `stats.pool`. None when there are no rows."""
    if diffs.empty:
        return None
    keys = [k for k in ("dataset", "backbone", "cell") if k in diffs]
    cells = [g["diff"].to_numpy() for _, g in diffs.groupby(keys, observed=True, sort=True)]
    replicates = diffs[["split_seed", "seed"]].drop_duplicates()
    iv = stats.pool(cells, boundary)
    if len(replicates) < 2:  # backbones or α are not replicates: one replicate says nothing
        iv = stats.one_cell(np.array([iv.mean]), boundary)
    name = dataset if dataset is not None else _datasets(diffs)
    return Comparison(
        name, variant, reference, metric, iv.mean, iv.lo, iv.hi, len(diffs), len(replicates),
        sign=sign, boundary=boundary, p=iv.p, needed=stats.replicates_needed(iv.sd),
        method=iv.method, cells=len(cells),
    )  # fmt: skip


def _datasets(diffs: pd.DataFrame) -> str:
    names = sorted(map(str, diffs["dataset"].unique()))
    return names[0] if len(names) == 1 else "all"


def verdicts(
    mean: np.ndarray, p_adjusted: np.ndarray, sign: float | np.ndarray, boundary=0.0
) -> np.ndarray:
    """The verdict of each comparison from its mean and adjusted p-value (vectorised; NaN p:
    inconclusive)."""
    mean, p = np.asarray(mean, float), np.asarray(p_adjusted, float)
    side = np.sign(np.asarray(sign, float) * (mean - boundary))
    decided = p < ALPHA
    return np.select(
        [decided & (side > 0), decided & (side < 0)], [SUPPORTED, CONTRADICTED], INCONCLUSIVE
    )


def decide_all(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons with Holm's adjustment over all of them and their verdicts."""
    if not comparisons:
        return []
    adjusted = stats.holm([c.p for c in comparisons])
    means = np.array([c.mean for c in comparisons])
    signs = np.array([c.sign for c in comparisons])
    bounds = np.array([c.boundary for c in comparisons])
    judged = verdicts(means, adjusted, signs, bounds)
    return [
        dataclasses.replace(c, p_holm=float(p), verdict=str(v))
        for c, p, v in zip(comparisons, adjusted, judged, strict=True)
    ]


def pair_diffs(df: pd.DataFrame, metric: str, variant: str, reference: str) -> pd.DataFrame:
    """`variant` − `reference` per (dataset, backbone, split_seed, seed) over ok trials, with
    `cell` = the variant (so several variants pooled stay separate cells)."""
    sub = df[df["variant"].astype(str).isin([variant, reference])]
    sub = sub.assign(variant=sub["variant"].astype(str))
    diffs = stats.paired_differences(sub, metric, baseline=reference)
    return diffs.assign(cell=variant)


@dataclass(frozen=True)
class Finding:
    """One claim's verdict, the reason in words, its tests and the per-cell evidence."""

    claim: str  # "C1" … "C4"
    statement: str
    verdict: str  # supported | contradicted | inconclusive
    reason: str
    comparisons: tuple[Comparison, ...] = ()  # the decided tests (one per half)
    evidence: tuple[Comparison, ...] = ()  # per dataset and variant, not decided


@dataclass(frozen=True)
class Findings:
    """The claims' verdicts, the pitfall per variant, notes and warnings, the test-set size."""

    claims: tuple[Finding, ...]
    pitfall: tuple[Comparison, ...]  # calibrated ECE (and ACE, …) − ERM's, every other variant
    warnings: tuple[str, ...]
    test_samples: int | None  # one sample is 100 / test_samples points of accuracy
    searched: tuple[str, ...] = field(default=())  # methods shown by their best trial
    notes: tuple[str, ...] = field(default=())  # noise floor, selection
    family: int = 0  # comparisons Holm's correction ran over

    def verdicts(self) -> dict[str, str]:
        """{"C1": "supported", …}."""
        return {f.claim: f.verdict for f in self.claims}

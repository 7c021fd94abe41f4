"""Findings: what the results say about each claim of Wang et al. (CVPR 2023), and why.

The claims (DESIGN.md, "Findings"):

- C1: mixup lowers the raw ECE compared with ERM (Table 1, before temperature scaling);
- C2: after temperature scaling, mixup's ECE is worse than ERM's: the pitfall (Tables 1, 4);
- C3: MIT-A keeps mixup's accuracy and, after scaling, calibrates at least as well as ERM
  (Tables 4, 5);
- C4: the dilemma: a larger α raises accuracy and calibrated ECE together (Figure 1).

Each claim is tested by *comparisons*: the mean paired difference of a metric (variant − its
reference, per dataset, paired by dataset, backbone and seed) with a 95% percentile bootstrap
interval over those pairs (`analysis.stats`). A comparison *supports* a claim when its whole
interval lies on the claimed side (for "at least as well / keeps": above −`TOLERANCE`), is
*contradicted* when its whole interval lies on the other side, and is *inconclusive* when the
interval straddles the line, or with one seed (no estimate of the seed-to-seed noise at all).
A claim is supported when some comparison supports it and none contradicts it, contradicted in
the opposite case, inconclusive otherwise (the reason says which). C2 is also checked for every
variant other than ERM (`pitfall`): cutmix, label smoothing and whatever the study ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import findings_checks as checks
from analysis import stats, trials
from analysis.variants import BASELINE, PERCENT, get_metric
from study.results import STATUS_OK

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
TOLERANCE = 0.005  # "keeps" / "at least as well": within half a percentage point
N_BOOT = 2000
COLUMNS = [  # what `assess` reads, besides the label keys `load_results` always gives
    *("seed", "epochs", "status", "constraint", "config_json", "val_acc", "val_cal_ece"),
    *("test_acc", "test_ece", "test_cal_ece", "temperature", "opt_temperature", "test_bin_count"),
    *("test_cal_ace", "test_cal_cw_ece", "test_cal_smece"),
]
# The pitfall per variant, by each measure of calibration after scaling (the 15-bin ECE of the
# paper first; the others where the rows have them: older rows hold nulls, and are not paired)
PITFALL_MEASURES = ("test_cal_ece", "test_cal_ace", "test_cal_cw_ece", "test_cal_smece")
ONE_SEED = "one seed: nothing measures the seed-to-seed noise"
CLAIMS_VS_ERM = [  # claim, statement, metric, sign of (mixup − ERM) the claim expects
    ("C1", "mixup lowers the raw ECE compared with ERM", "test_ece", -1.0),
    (
        "C2",
        "after temperature scaling, mixup's ECE is worse than ERM's (the pitfall)",
        "test_cal_ece",
        +1.0,
    ),
]


@dataclass(frozen=True)
class Comparison:
    """One paired difference: `variant` − `reference` of `metric` on `dataset` (fractions)."""

    dataset: str
    variant: str
    reference: str
    metric: str
    mean: float
    lo: float  # 95% bootstrap interval (NaN with one pair)
    hi: float
    pairs: int  # (backbone, seed) pairs
    seeds: int  # distinct seeds among them
    verdict: str  # of the claim this comparison serves

    def describe(self) -> str:
        """ "cifar10, Mixup (α=1.0) − ERM: −1.20 [−1.50, −0.90] points of ECE, 3 seeds"."""
        spec = get_metric(self.metric)
        interval = (
            f" [{spec.show(self.lo, True)}, {spec.show(self.hi, True)}]" if self.pairs > 1 else ""
        )
        unit = "points" if spec.percent else ""
        seeds = f"{self.seeds} seed{'s' * (self.seeds != 1)}"
        return (
            f"{self.dataset}, {self.variant} − {self.reference}: {spec.show(self.mean, True)}"
            f"{interval} {unit} of {spec.label}, {self.pairs} pair{'s' * (self.pairs != 1)}, "
            f"{seeds}"
        )


@dataclass(frozen=True)
class Finding:
    """One claim's verdict, the reason in words, and the comparisons behind it."""

    claim: str  # "C1" … "C4"
    statement: str
    verdict: str  # supported | contradicted | inconclusive
    reason: str
    comparisons: tuple[Comparison, ...] = ()


@dataclass(frozen=True)
class Findings:
    """The claims' verdicts, the pitfall per variant, the warnings, and the test-set size."""

    claims: tuple[Finding, ...]
    pitfall: tuple[Comparison, ...]  # calibrated ECE (and ACE, …) − ERM's, every other variant
    warnings: tuple[str, ...]
    test_samples: int | None  # one sample is 100 / test_samples points of accuracy
    searched: tuple[str, ...] = field(default=())  # methods shown by their best trial

    def verdicts(self) -> dict[str, str]:
        """{"C1": "supported", …}."""
        return {f.claim: f.verdict for f in self.claims}

    def to_markdown(self) -> str:
        """The report's Findings section."""
        from analysis.findings_render import markdown

        return markdown(self)


def decide(c_lo: float, c_hi: float, seeds: int, sign: float, tolerance: float = 0.0) -> str:
    """Verdict of one comparison whose claim is `sign` · difference > −`tolerance`."""
    if seeds < 2 or not (np.isfinite(c_lo) and np.isfinite(c_hi)):
        return INCONCLUSIVE
    lo, hi = sorted((sign * c_lo, sign * c_hi))
    if lo > -tolerance:
        return SUPPORTED
    if hi < -tolerance:
        return CONTRADICTED
    return INCONCLUSIVE


def compare(
    df: pd.DataFrame,
    metric: str,
    variant: str,
    reference: str,
    sign: float,
    tolerance: float = 0.0,
    n_boot: int = N_BOOT,
) -> list[Comparison]:
    """Per dataset: `variant` − `reference` paired by (dataset, backbone, seed), bootstrapped."""
    sub = df[df["variant"].astype(str).isin([variant, reference])]
    sub = sub.assign(variant=sub["variant"].astype(str))
    diffs = stats.paired_differences(sub, metric, baseline=reference)
    return _per_dataset(diffs, metric, variant, reference, sign, tolerance, n_boot)


def _per_dataset(
    diffs: pd.DataFrame,
    metric: str,
    variant: str,
    reference: str,
    sign: float,
    tolerance: float,
    n_boot: int,
) -> list[Comparison]:
    """One Comparison per dataset of paired differences (columns dataset, seed, diff)."""
    out = []
    for dataset, rows in diffs.groupby("dataset", observed=True, sort=True):
        ci = stats.bootstrap_ci(rows, ["dataset"], n_boot=n_boot).iloc[0]
        lo, hi, seeds = float(ci["lo"]), float(ci["hi"]), int(rows["seed"].nunique())
        verdict = decide(lo, hi, seeds, sign, tolerance)
        mean = float(ci["mean"])
        out.append(
            Comparison(
                str(dataset), variant, reference, metric, mean, lo, hi, len(rows), seeds, verdict
            )
        )
    return out


def combine(claim: str, statement: str, comparisons: list[Comparison], missing: str) -> Finding:
    """A claim's verdict from its comparisons (module docstring); `missing`: why none exist."""
    if not comparisons:
        return Finding(claim, statement, INCONCLUSIVE, f"not tested: {missing}")
    verdicts = {c.verdict for c in comparisons}
    count = {v: sum(c.verdict == v for c in comparisons) for v in (SUPPORTED, CONTRADICTED)}
    of = f"of {len(comparisons)} comparison{'s' * (len(comparisons) != 1)}"
    if SUPPORTED in verdicts and CONTRADICTED not in verdicts:
        verdict, why = (
            SUPPORTED,
            f"{count[SUPPORTED]} {of} wholly on the claimed side, none on the other",
        )
    elif CONTRADICTED in verdicts and SUPPORTED not in verdicts:
        verdict, why = (
            CONTRADICTED,
            f"{count[CONTRADICTED]} {of} wholly on the other side, none on the claimed one",
        )
    elif verdicts >= {SUPPORTED, CONTRADICTED}:
        verdict, why = INCONCLUSIVE, "the comparisons disagree (some support, some contradict)"
    elif max(c.seeds for c in comparisons) < 2:
        verdict, why = INCONCLUSIVE, ONE_SEED
    else:
        verdict, why = INCONCLUSIVE, "every 95% interval contains the claim's boundary"
    return Finding(claim, statement, verdict, why, tuple(comparisons))


def assess(df: pd.DataFrame, search: trials.Search | None = None, n_boot: int = N_BOOT) -> Findings:
    """The Findings of one-row-per-trial results (`load_results(path, "last" or "best")`).

    Repeated trials count once (`trials.drop_repeats`), searched methods by their best trial
    (`trials.collapse_searched`, with `search` from `trials.read_search`); C4 uses every α.
    """
    search = search or trials.Search()
    unique = trials.drop_repeats(df)
    view = trials.collapse_searched(unique, search)
    ok = view[view["status"] == STATUS_OK]
    has_erm = bool((ok["variant"] == BASELINE).any())
    mixups = trials.variants_of(view, ["mixup"])
    missing = _missing(has_erm, mixups, "mixup")
    findings = []
    for claim, statement, metric, sign in CLAIMS_VS_ERM:
        comparisons = [
            c
            for v in mixups
            if has_erm
            for c in compare(view, metric, v, BASELINE, sign, 0.0, n_boot)
        ]
        findings.append(combine(claim, statement, comparisons, missing))
    findings += [_c3(view, has_erm, n_boot), _c4(unique, n_boot)]
    others = trials.variants_of(view, ok["method"].astype(str).unique())
    pitfall = [
        c
        for measure in PITFALL_MEASURES
        if measure in view and view[measure].notna().any()
        for v in others
        if v != BASELINE
        for c in compare(view, measure, v, BASELINE, 1.0, 0.0, n_boot)
    ]
    return Findings(
        claims=tuple(findings),
        pitfall=tuple(pitfall),
        warnings=tuple(checks.warnings(df, unique, view)),
        test_samples=checks.test_samples(view),
        searched=tuple(trials.searched(unique, search)),
    )


def _missing(has_erm: bool, variants: list[str], name: str) -> str:
    lacking = [w for w, have in (("ERM", has_erm), (name, bool(variants))) if not have]
    return f"the results have no ok {' and no '.join(lacking)} trials"


def _c3(view: pd.DataFrame, has_erm: bool, n_boot: int) -> Finding:
    """MIT-A vs mixup of the same α on accuracy, and vs ERM on calibrated ECE; both must hold."""
    statement = (
        "MIT-A keeps mixup's accuracy and calibrates at least as well as ERM after scaling "
        f"(within {PERCENT * TOLERANCE:g} points)"
    )
    mit, mixups = trials.variants_of(view, ["mit_a"]), trials.variants_of(view, ["mixup"])
    if not (mit and mixups and has_erm):
        missing = [n for n, v in (("MIT-A", mit), ("mixup", mixups), ("ERM", has_erm)) if not v]
        return Finding(
            "C3", statement, INCONCLUSIVE, f"not tested: no ok {' and no '.join(missing)} trials"
        )
    alphas = _alpha_of(view)
    comparisons = []
    for variant in mit:
        same = [m for m in mixups if alphas.get(m) == alphas.get(variant)]
        reference = (same or mixups)[-1]
        comparisons += compare(view, "test_acc", variant, reference, 1.0, TOLERANCE, n_boot)
        comparisons += compare(view, "test_cal_ece", variant, BASELINE, -1.0, TOLERANCE, n_boot)
    return both_halves("C3", statement, comparisons)


def both_halves(claim: str, statement: str, comparisons: list[Comparison]) -> Finding:
    """A claim made of two halves (one per metric) that must both hold: contradicted when a
    half is, supported when both are, inconclusive otherwise; the reason names each half."""
    halves = {}
    for metric in dict.fromkeys(c.metric for c in comparisons):
        part = [c for c in comparisons if c.metric == metric]
        halves[get_metric(metric).label] = combine(claim, statement, part, "no pairs").verdict
    verdicts = set(halves.values())
    if CONTRADICTED in verdicts:
        verdict = CONTRADICTED
    elif verdicts == {SUPPORTED}:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    reason = "; ".join(f"{label}: {v}" for label, v in halves.items())
    if verdict == INCONCLUSIVE and max(c.seeds for c in comparisons) < 2:
        reason = f"{ONE_SEED} ({reason})"
    return Finding(claim, statement, verdict, reason, tuple(comparisons))


def _alpha_of(view: pd.DataFrame) -> dict[str, float]:
    ok = view[view["status"] == STATUS_OK]
    return ok.groupby(ok["variant"].astype(str))["alpha"].first().to_dict()


def _c4(df: pd.DataFrame, n_boot: int) -> Finding:
    """Mixup's largest α against its smallest, per (dataset, backbone, seed): accuracy and
    calibrated ECE must both rise. Uses every mixup trial (searched ones too)."""
    statement = "a larger α raises accuracy and calibrated ECE together (the dilemma)"
    ok = df[(df["status"] == STATUS_OK) & (df["method"] == "mixup")]
    keys = list(stats.PAIR_KEYS)
    ok = ok[ok.groupby(keys, observed=True)["alpha"].transform("nunique") > 1]
    if ok.empty:
        why = "not tested: mixup ran at fewer than two α on the same dataset, backbone and seed"
        return Finding("C4", statement, INCONCLUSIVE, why)
    grouped = ok.sort_values([*keys, "alpha"]).groupby(keys, observed=True)
    lows, highs = grouped.head(1).set_index(keys), grouped.tail(1).set_index(keys)
    variant = f"mixup at its largest α ({_alphas(highs['alpha'])})"
    reference = f"at its smallest ({_alphas(lows['alpha'])})"
    comparisons = []
    for metric in ("test_acc", "test_cal_ece"):
        diffs = (highs[metric] - lows[metric]).rename("diff").reset_index()
        comparisons += _per_dataset(diffs, metric, variant, reference, 1.0, 0.0, n_boot)
    return both_halves("C4", statement, comparisons)


def _alphas(values: pd.Series) -> str:
    low, high = values.min(), values.max()
    return f"α={low:g}" if low == high else f"α={low:.3g}–{high:.3g}"

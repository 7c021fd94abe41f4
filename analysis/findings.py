"""Findings: what the results say about each claim of Wang et al. (CVPR 2023), and how sure.

The claims (docs/analysis.md, "Findings"):

- C1: mixup lowers the raw ECE compared with ERM (Table 1, before temperature scaling);
- C2: after temperature scaling, mixup's ECE is worse than ERM's: the pitfall (Tables 1, 4);
- C3: MIT-A keeps mixup's accuracy gain and, after scaling, calibrates about as well as ERM
  (Tables 4, 5; `analysis.findings_claims`);
- C4: the dilemma: a larger α raises accuracy and calibrated ECE together (Figure 1).

Each claim is *one* test over every cell it covers (datasets, backbones, α; pooled by
`analysis.stats.pool`: Student-t over replicates in one cell, a stratified paired t across cells),
never "some cell supports it". A replicate is a (split seed, seed). Every test the Findings
decide — the claims and the pitfall table below them — is Holm-corrected together, so the chance
of any false verdict stays under 5% however many comparisons the report makes; verdicts follow
`analysis.evidence`. Per-cell intervals are shown as evidence, without verdicts. The pitfall is
also checked for every variant other than ERM, by every measure of calibration the rows have
(and by the debiased ECE, `analysis.ece_bias`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from analysis import evidence, findings_claims, settings, stats, trials
from analysis import findings_checks as checks
from analysis.evidence import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Comparison, Finding, Findings
from analysis.findings_render import markdown  # the report's Findings section
from analysis.variants import BASELINE, get_metric
from study.results.schema import STATUS_OK

__all__ = [
    "CONTRADICTED",
    "INCONCLUSIVE",
    "SUPPORTED",
    "Comparison",
    "Finding",
    "Findings",
    "assess",
    "markdown",
]

COLUMNS = [  # what `assess` reads, besides the label keys `load_results` always gives
    *("seed", "epochs", "status", "constraint", "config_json", "val_acc", "val_cal_ece"),
    *("test_acc", "test_ece", "test_cal_ece", "temperature", "opt_temperature", "test_bin_count"),
    *("test_cal_ace", "test_cal_cw_ece", "test_cal_smece"),
    *("test_cal_bin_count", "test_cal_bin_acc", "test_cal_bin_conf"),
]
# The pitfall per variant, by each measure of calibration after scaling (the 15-bin ECE of the
# paper first; the others where the rows have them: older rows hold nulls, and are not paired)
PITFALL_MEASURES = (
    *("test_cal_ece", "test_cal_ece_debiased", "test_cal_ace", "test_cal_cw_ece"),
    "test_cal_smece",
)
ONE_SEED = "one replicate: nothing measures the replicate-to-replicate noise"
CLAIMS_VS_ERM = [  # claim, statement, metric, sign of (mixup − ERM) the claim expects
    ("C1", "mixup lowers the raw ECE compared with ERM", "test_ece", -1.0),
    (
        "C2",
        "after temperature scaling, mixup's ECE is worse than ERM's (the pitfall)",
        "test_cal_ece",
        +1.0,
    ),
]


def assess(df: pd.DataFrame, search: trials.Search | None = None) -> Findings:
    """The Findings of one-row-per-trial results (`load_results(path, "last" or "best")`).

    Trials that differ in more than their replicate are separate cells (`settings.separate`);
    repeated trials count once (`trials.drop_repeats`), searched methods by their best trial
    (`trials.collapse_searched`, `search` from `trials.read_search`); C4 uses every α.
    """
    search = search or trials.Search()
    mixed = settings.mixed_settings(stats.with_replicates(df))
    df = settings.separate(df)
    unique = trials.drop_repeats(df)
    view = trials.collapse_searched(unique, search)
    ok = view[view["status"] == STATUS_OK]
    has_erm = bool((ok["variant"] == BASELINE).any())
    mixups = trials.variants_of(view, ["mixup"])
    parts: list[tuple[str, str, list[Comparison], list[str], list[Comparison]]] = []
    for claim, statement, metric, sign in CLAIMS_VS_ERM:
        diffs = [evidence.pair_diffs(view, metric, v, BASELINE) for v in mixups if has_erm]
        test = evidence.build(pd.concat(diffs), metric, "Mixup", BASELINE, sign) if diffs else None
        why = [] if test else [f"not tested: {_missing(has_erm, mixups)}"]
        parts.append((claim, statement, [test] if test else [], why, _evidence(diffs, metric)))
    parts.append(("C3", findings_claims.C3, *findings_claims.c3(view, has_erm), []))
    parts.append(("C4", findings_claims.C4, *findings_claims.c4(unique), []))
    pitfall = [c for c in _pitfall(view) if c is not None]
    decided = evidence.decide_all([c for p in parts for c in p[2]] + pitfall)
    claims, at = [], 0
    for claim, statement, tests, why, shown in parts:
        mine, at = decided[at : at + len(tests)], at + len(tests)
        claims.append(combine(claim, statement, mine, why, shown, len(decided)))
    return Findings(
        claims=tuple(claims),
        pitfall=tuple(decided[at:]),
        warnings=tuple(checks.warnings(df, unique, view, mixed)),
        test_samples=checks.test_samples(view),
        searched=tuple(trials.searched(unique, search)),
        notes=tuple(checks.floor_notes(view) + checks.selection_notes(unique, view, search)),
        family=len(decided),
    )


def _missing(has_erm: bool, variants: list[str]) -> str:
    lacking = [w for w, have in (("ERM", has_erm), ("mixup", bool(variants))) if not have]
    return f"the results have no ok {' and no '.join(lacking)} trials"


def _evidence(diffs: list[pd.DataFrame], metric: str) -> list[Comparison]:
    """Per dataset and mixup variant, the interval (not decided: the claim's test pools)."""
    out = []
    for d in diffs:
        for dataset, rows in d.groupby("dataset", observed=True, sort=True):
            c = evidence.build(rows, metric, str(rows["cell"].iloc[0]), BASELINE, 1.0)
            out.append(dataclasses.replace(c, dataset=str(dataset), verdict=""))
    return out


def _pitfall(view: pd.DataFrame) -> list[Comparison | None]:
    """Every variant − ERM by each calibration measure after scaling, per dataset."""
    ok = view[view["status"] == STATUS_OK]
    if not (ok["variant"] == BASELINE).any():
        return []
    others = trials.variants_of(view, ok["method"].astype(str).unique())
    out = []
    for measure in PITFALL_MEASURES:
        if measure not in view or not view[measure].notna().any():
            continue
        for variant in (v for v in others if v != BASELINE):
            diffs = evidence.pair_diffs(view, measure, variant, BASELINE)
            for dataset, rows in diffs.groupby("dataset", observed=True, sort=True):
                out.append(evidence.build(rows, measure, variant, BASELINE, 1.0, 0.0, str(dataset)))
    return out


def combine(
    claim: str,
    statement: str,
    tests: list[Comparison],
    why: list[str],
    shown: list[Comparison] | None = None,
    family: int = 0,
) -> Finding:
    """A claim's verdict from its decided tests: one test decides C1 and C2; C3 and C4 need
    every half (contradicted when one half is, supported when all are and none was left
    untested). `why`: notes on halves that could not be tested."""
    shown = tuple(shown or ())
    if not tests:
        return Finding(claim, statement, INCONCLUSIVE, "; ".join(why) or "not tested", (), shown)
    verdicts = {c.verdict for c in tests}
    untested = any(w.startswith(("not tested", "accuracy: not tested")) for w in why)
    if CONTRADICTED in verdicts:
        verdict = CONTRADICTED
    elif verdicts == {SUPPORTED} and not untested:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    reasons = [_reason(c, family) for c in tests] + why
    if verdict == INCONCLUSIVE and max(c.seeds for c in tests) < 2:
        reasons.insert(0, ONE_SEED)
    return Finding(claim, statement, verdict, "; ".join(reasons), tuple(tests), shown)


def _reason(c: Comparison, family: int) -> str:
    spec = get_metric(c.metric)
    label = spec.label if c.reference != "0" else f"slope of {spec.label.lower()}"
    if not np.isfinite(c.p):
        return f"{label}: no interval ({c.seeds} replicate{'s' * (c.seeds != 1)})"
    if c.verdict != INCONCLUSIVE:
        return f"{label}: {c.verdict} (Holm-adjusted p = {c.p_holm:.2g}, {family} comparisons)"
    bound = spec.show(c.boundary, True)
    if c.lo <= c.boundary <= c.hi:
        return f"{label}: the 95% interval contains the boundary {bound}"
    return (
        f"{label}: the 95% interval excludes the boundary {bound}, but Holm's correction over "
        f"{family} comparisons leaves p = {c.p_holm:.2g}"
    )

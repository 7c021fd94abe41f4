"""The Findings section of the report, in markdown (see `analysis.findings` for the verdicts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis import render
from analysis.variants import PERCENT, get_metric

if TYPE_CHECKING:
    from analysis.findings import Comparison, Findings

PITFALL_WORDS = {  # a pitfall comparison's verdict, in words
    "supported": "above ERM: the pitfall",
    "contradicted": "below ERM",
    "inconclusive": "inconclusive",
}
HOW = (
    "Each verdict rests on 95% paired bootstrap intervals of differences in percentage points "
    "(pairs: the same dataset, backbone and seed). **supported**: some interval lies wholly on "
    "the claimed side and none on the other; **contradicted**: the reverse; **inconclusive**: "
    "the intervals straddle the line, disagree, or rest on one seed."
)


def markdown(findings: Findings) -> str:
    """ "## Findings": the claims' table, the evidence, the pitfall per variant, warnings."""
    from analysis.findings import TOLERANCE

    parts = [
        "## Findings",
        HOW + f" Tolerance of “keeps” / “at least as well”: {PERCENT * TOLERANCE:g} points.",
        _granularity(findings.test_samples),
    ]  # noqa
    rows = [[f.claim, f.statement, f"**{f.verdict}**", f.reason] for f in findings.claims]
    parts.append(render.markdown_table(["claim", "statement", "verdict", "why"], rows))
    evidence = [
        f"- {f.claim}: {c.describe()} → {c.verdict}" for f in findings.claims for c in f.comparisons
    ]
    if evidence:
        parts += ["Evidence, comparison by comparison:", "\n".join(evidence)]
    if findings.searched:
        parts.append(
            f"Searched methods ({', '.join(findings.searched)}) count by their best trial per "
            "dataset, backbone and seed, chosen on validation (see the tables)."
        )
    parts += ["### The pitfall, variant by variant", _pitfall(findings.pitfall)]
    parts.append("### Warnings")
    parts.append("\n".join(f"- {w}" for w in findings.warnings) or "None.")
    return "\n\n".join(parts)


def _granularity(samples: int | None) -> str:
    if not samples:
        return "The test-set size is unknown (no per-bin counts in these results)."
    return (
        f"One test sample is {PERCENT / samples:.3g} points of accuracy ({samples:,} test "
        "samples): accuracy moves in steps of that size, and a difference of a few samples is "
        "no difference."
    )


def _pitfall(comparisons: tuple[Comparison, ...]) -> str:
    """Calibrated ECE − ERM's for every variant: above (the pitfall), below, or inconclusive;
    then the same by the other measures of calibration the rows have (ACE, classwise, smooth)."""
    if not comparisons:
        return "No variant has ERM pairs (same dataset, backbone and seed) to compare with."
    header = ["measure", "dataset", "variant", "− ERM (points)", "95% interval", "pairs", "seeds"]
    rows = []
    for c in comparisons:
        spec = get_metric(c.metric)
        interval = f"[{spec.show(c.lo, True)}, {spec.show(c.hi, True)}]" if c.pairs > 1 else ""
        rows.append(
            [spec.label, c.dataset, c.variant, spec.show(c.mean, True), interval]
            + [str(c.pairs), str(c.seeds), PITFALL_WORDS[c.verdict]]
        )
    note = (
        "After temperature scaling, is each variant's ECE above ERM's (the pitfall of Wang "
        "et al.), below it, or inside the noise? By the paper's 15-bin ECE, then by each other "
        "measure the rows have (equal-mass ACE, classwise ECE, smooth ECE)."
    )
    return note + "\n\n" + render.markdown_table([*header, "verdict"], rows)

"""The Findings section of the report, in markdown (see `analysis.findings` for the verdicts)."""

from __future__ import annotations

import numpy as np

from analysis import render
from analysis.evidence import Comparison, Findings
from analysis.variants import PERCENT, get_metric

PITFALL_WORDS = {  # a pitfall comparison's verdict, in words
    "supported": "above ERM: the pitfall",
    "contradicted": "below ERM",
    "inconclusive": "inconclusive",
}
HOW = (
    "A replicate is one (dataset.split_seed, train.seed): another data subset and another seed "
    "of the same configuration; trials are paired with ERM's of the same dataset, backbone and "
    "replicate. Each claim is one test pooled over every cell it covers: a 95% Student-t "
    "interval over replicates in one cell, a paired t over all cells (cells as strata, each "
    "weighing the same: a statement about these cells) across several. Every test below "
    "(claims and pitfall table) is Holm-corrected together. **supported**: Holm-adjusted "
    "p < 0.05 on the claimed side of the boundary; "
    "**contradicted**: the same on the other side; **inconclusive**: otherwise, or one "
    "replicate. *Replicates needed* is how many a paired t-test needs to detect a true "
    "difference of 0.5 points with 80% power at the observed spread."
)


def markdown(findings: Findings) -> str:
    """ "## Findings": the claims' table, the evidence, the pitfall per variant, notes."""
    parts = [
        "## Findings",
        HOW + f" Comparisons in the Holm family: {findings.family}.",
        _granularity(findings.test_samples),
    ]
    rows = [[f.claim, f.statement, f"**{f.verdict}**", f.reason] for f in findings.claims]
    parts.append(render.markdown_table(["claim", "statement", "verdict", "why"], rows))
    tests = [f"- {f.claim}: {c.describe()} → **{c.verdict}**" for f in findings.claims
             for c in f.comparisons]  # fmt: skip
    cells = [f"- {f.claim}: {c.describe()}" for f in findings.claims for c in f.evidence]
    if tests:
        parts += ["Tests, one per claim (or per half):", "\n".join(tests)]
    if cells:
        parts += ["Per dataset and variant (evidence, not separately decided):", "\n".join(cells)]
    parts += ["### The pitfall, variant by variant", _pitfall(findings.pitfall)]
    if findings.notes:
        parts += ["### Noise floor and selection", "\n".join(f"- {n}" for n in findings.notes)]
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
        return "No variant has ERM pairs (same dataset, backbone and replicate) to compare with."
    header = ["measure", "dataset", "variant", "− ERM (points)", "95% interval", "Holm p"]
    header += ["pairs", "replicates", "replicates needed", "verdict"]
    rows = []
    for c in comparisons:
        spec = get_metric(c.metric)
        finite = np.isfinite(c.lo)
        interval = f"[{spec.show(c.lo, True)}, {spec.show(c.hi, True)}]" if finite else ""
        p = f"{c.p_holm:.2g}" if np.isfinite(c.p_holm) else ""
        rows.append(
            [spec.label, c.dataset, c.variant, spec.show(c.mean, True), interval, p]
            + [str(c.pairs), str(c.seeds), str(c.needed or ""), PITFALL_WORDS[c.verdict]]
        )
    note = (
        "After temperature scaling, is each variant's ECE above ERM's (the pitfall of Wang "
        "et al.), below it, or inside the noise? By the paper's 15-bin ECE, its debiased "
        "version, then by each other measure the rows have (equal-mass ACE, classwise ECE, "
        "smooth ECE); backbones pooled per dataset."
    )
    return note + "\n\n" + render.markdown_table(header, rows)

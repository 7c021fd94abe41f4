"""Claims C3 and C4 of the Findings as the paper states them (analysis.findings has C1, C2).

C3 (Tables 4, 5): MIT-A keeps mixup's *gain* over ERM and calibrates, after scaling, about as
well as ERM. Both tolerances are tied to the data, halves of what mixup does here: MIT-A must
keep more than half of mixup's accuracy gain (MIT-A − mixup > −G/2, G = mixup − ERM), and its
calibrated ECE may exceed ERM's by less than half the measured pitfall (MIT-A − ERM < P/2,
P = mixup − ERM, 0 when mixup shows none): an MIT-A that calibrates exactly as badly as mixup
is never "supported". MIT-A is paired with mixup at its own α; without one, C3 says it cannot
compare. Without a gain (G ≤ 0) the accuracy half is not tested: there is nothing to keep.

C4 (Figure 1): a larger α raises accuracy and calibrated ECE together: per replicate, the
least-squares slope of each metric on ln α over every α mixup ran at, then the slopes' interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import evidence, stats, trials
from analysis.evidence import Comparison
from analysis.variants import BASELINE, PERCENT, format_alpha
from study.results.schema import STATUS_OK

C3 = "MIT-A keeps mixup's accuracy gain over ERM and calibrates about as well as ERM after scaling"
C4 = "a larger α raises accuracy and calibrated ECE together (the dilemma)"


def c3(view: pd.DataFrame, has_erm: bool) -> tuple[list[Comparison], list[str]]:
    """C3's tested halves, and notes on the halves that could not be tested (why)."""
    mit, mixups = trials.variants_of(view, ["mit_a"]), trials.variants_of(view, ["mixup"])
    if not (mit and mixups and has_erm):
        missing = [n for n, v in (("MIT-A", mit), ("mixup", mixups), ("ERM", has_erm)) if not v]
        return [], [f"not tested: no ok {' and no '.join(missing)} trials"]
    alphas = _alpha_of(view)
    pairs = [(v, m) for v in mit for m in mixups if alphas.get(m) == alphas.get(v)]
    if not pairs:
        shown = ", ".join(f"{v} at α={format_alpha(alphas[v])}" for v in mit)
        return [], [f"not tested: no mixup trial at MIT-A's α ({shown}) to compare with"]
    notes = [f"{v}: no mixup at its α" for v in mit if v not in {p[0] for p in pairs}]
    gain = _pooled(view, "test_acc", [(m, BASELINE) for _, m in pairs])
    pitfall = _pooled(view, "test_cal_ece", [(m, BASELINE) for _, m in pairs])
    variant, reference = _names([v for v, _ in pairs]), _names([m for _, m in pairs])
    tests = []
    if not gain > 0:
        notes.append(
            f"accuracy: not tested, mixup has no accuracy gain over ERM here "
            f"({PERCENT * gain:+.2f} points): there is no gain for MIT-A to keep"
        )
    else:
        diffs = pd.concat([evidence.pair_diffs(view, "test_acc", v, m) for v, m in pairs])
        tests.append(evidence.build(diffs, "test_acc", variant, reference, 1.0, -gain / 2))
    tolerance = max(pitfall, 0.0) / 2
    diffs = pd.concat([evidence.pair_diffs(view, "test_cal_ece", v, BASELINE) for v, _ in pairs])
    tests.append(evidence.build(diffs, "test_cal_ece", variant, BASELINE, -1.0, tolerance))
    if gain > 0:
        notes.append(f"accuracy tolerance: half mixup's gain ({PERCENT * gain:+.2f} points)")
    notes.append(
        f"calibrated ECE tolerance: half mixup's pitfall ({PERCENT * pitfall:+.2f} points"
        + ("" if pitfall > 0 else "; none here, so 0: MIT-A must be below ERM")
        + ")"
    )
    return [t for t in tests if t is not None], notes


def _pooled(view: pd.DataFrame, metric: str, pairs: list[tuple[str, str]]) -> float:
    diffs = pd.concat([evidence.pair_diffs(view, metric, v, r) for v, r in pairs])
    if diffs.empty:
        return float("nan")
    cells = [g["diff"].to_numpy() for _, g in diffs.groupby(["dataset", "backbone", "cell"])]
    return stats.pool(cells).mean


def _names(labels: list[str]) -> str:
    return " / ".join(dict.fromkeys(labels))


def _alpha_of(view: pd.DataFrame) -> dict[str, float]:
    ok = view[view["status"] == STATUS_OK]
    return ok.groupby(ok["variant"].astype(str))["alpha"].first().to_dict()


def c4(unique: pd.DataFrame) -> tuple[list[Comparison], list[str]]:
    """The slopes of accuracy and calibrated ECE on ln α per replicate (every mixup trial,
    searched ones too), each a comparison against 0."""
    df = stats.with_replicates(unique)
    ok = df[(df["status"] == STATUS_OK) & (df["method"] == "mixup")]
    keys = list(stats.PAIR_KEYS)
    ok = ok[ok.groupby(keys, observed=True)["alpha"].transform("nunique") > 1]
    if ok.empty:
        return [], ["not tested: mixup ran at fewer than two α on the same replicate"]
    low, high = ok["alpha"].min(), ok["alpha"].max()
    variant = f"slope on ln α of mixup (α={low:.3g}–{high:.3g}, every α)"
    tests = []
    for metric in ("test_acc", "test_cal_ece"):
        slopes = [
            (*key, np.polyfit(np.log(g["alpha"].to_numpy(float)), g[metric].to_numpy(float), 1)[0])
            for key, g in ok.groupby(keys, observed=True, sort=True)
        ]
        diffs = pd.DataFrame(slopes, columns=[*keys, "diff"])
        tests.append(evidence.build(diffs, metric, variant, "0", 1.0, 0.0))
    return [t for t in tests if t is not None], []

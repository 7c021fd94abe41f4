"""The demo's report reads well at one seed (issue 20): α and Δλ to 3 significant digits
(never merging two variants), no zero-length error bars, the dilemma's Pareto front labelled
with its split, and coverage lines that say "every trial" instead of "8–8"."""

from __future__ import annotations

import pandas as pd

from analysis import figures, report
from analysis.variants import format_alpha, variant_label, variant_labels


def test_alpha_and_margin_to_three_significant_digits():
    assert format_alpha(0.123456789) == "0.123" and format_alpha(1.0) == "1.0"
    assert (
        variant_label("mit_a", 0.87654321, 0.3456789, show_alpha=True)
        == "MIT-A (Δλ>0.346, α=0.877)"
    )


def test_rounding_never_merges_two_variants():
    combos = pd.DataFrame(
        {"method": ["mixup", "mixup"], "alpha": [0.12341, 0.12342], "margin": [None, None]}
    )
    labels = variant_labels(combos)
    assert len(set(labels)) == 2


def test_one_value_draws_no_error_bar():
    one = pd.DataFrame({"mean": [0.5, 0.6], "std": [float("nan")] * 2, "n": [1, 1]})
    assert figures.spread(one) is None
    two = pd.DataFrame({"mean": [0.5, 0.6], "std": [0.1, float("nan")], "n": [2, 1]})
    bars = figures.spread(two, 100.0)
    assert bars.iloc[0] == 10.0 and pd.isna(bars.iloc[1])


def test_dilemma_front_names_its_split():
    assert figures.FRONT_SPLIT == "on test" and figures.DILEMMA[0].startswith("test_")


def test_epochs_reached_by_every_trial():
    assert report._span(pd.Series([8, 8])) == "8 (every trial)"
    assert report._span(pd.Series([3, 8])) == "3–8"
    assert report._span(pd.Series([], dtype=int)) == "none"

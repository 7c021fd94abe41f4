"""The Findings' warnings (what makes a verdict less sure than it looks) and the test-set size.

- Temperatures at the edge of the search grid (`study.grid`: the grid of
  `study.calibration.PAPER_GRID`, 0.01 … 4.99): the best T may lie beyond the grid, so that
  trial's calibrated (or optimal) ECE is only an upper bound of what temperature scaling would
  reach.
- Trials that repeat an earlier trial's configuration and seed (`analysis.trials.repeats`):
  counted once, never as replicates.
- Too few seeds: with one seed no verdict can be decided; with two, an interval rests on two
  pairs per backbone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import trials
from study.results import STATUS_OK

MIN_SEEDS = 3  # fewer seeds per cell than this earns a warning
MAX_NAMED = 5  # trials named in a warning; the rest are counted
FITTED = {  # temperature column → the metric it feeds and where T was fitted
    "temperature": ("calibrated ECE", "on validation"),
    "opt_temperature": ("optimal ECE", "on test"),
}


def warnings(df: pd.DataFrame, unique: pd.DataFrame, view: pd.DataFrame) -> list[str]:
    """Warnings on `df` (one row per trial), its repeat-free rows and the table view."""
    return [*_unfinished(df), *_repeats(df), *_edges(unique), *_seeds(view)]


def _unfinished(df: pd.DataFrame) -> list[str]:
    """Trials whose row is before their planned last epoch (still running, stopped by ASHA, or
    ended by divergence or an error): they are compared at that earlier epoch."""
    rows = df[df["epoch"] < df["epochs"]]
    if rows.empty:
        return []
    names = rows["trial_id"].astype(str) + " at epoch " + rows["epoch"].astype(str)
    return [
        f"{_trials(len(rows))} did not reach {'their' if len(rows) > 1 else 'its'} planned last "
        f"epoch (still running, stopped early, or ended by a failure), so "
        f"{'they are' if len(rows) > 1 else 'it is'} compared at an earlier epoch than the "
        f"others: {_named(rows, names)}."
    ]


def _named(rows: pd.DataFrame, text: pd.Series) -> str:
    shown = ", ".join(text.head(MAX_NAMED))
    more = len(rows) - min(len(rows), MAX_NAMED)
    return shown + (f" and {more} more" if more > 0 else "")


def _trials(n: int) -> str:
    return f"{n} trial{'s' * (n != 1)}"


def _repeats(df: pd.DataFrame) -> list[str]:
    rows = trials.repeats(df)
    if rows.empty:
        return []
    names = rows["trial_id"].astype(str) + " repeats " + rows["first"]
    return [
        f"{_trials(len(rows))} {'repeat' if len(rows) > 1 else 'repeats'} an earlier trial's "
        f"configuration and seed, counted once, not as a replicate: "
        f"{_named(rows, names)}."
    ]


def grid_edges() -> tuple[float, float]:
    """The lowest and highest temperature of the paper's search grid."""
    from study.grid import GRID_EDGES  # torch-free: the report does not import torch for it

    return GRID_EDGES


def _edges(df: pd.DataFrame) -> list[str]:
    ok = df[df["status"] == STATUS_OK]
    present = [c for c in FITTED if c in ok and ok[c].notna().any()]
    if not present:
        return []
    low, high = grid_edges()
    out = []
    for column in present:
        t = ok[column].to_numpy(dtype=float)
        edge = np.isclose(t, low, rtol=0, atol=1e-9) | np.isclose(t, high, rtol=0, atol=1e-9)
        if not edge.any():
            continue
        rows = ok[edge]
        metric, where = FITTED[column]
        names = (
            rows["variant"].astype(str)
            + ", seed "
            + rows["seed"].astype(str)
            + " ("
            + rows["trial_id"].astype(str)
            + ": T = "
            + rows[column].map(lambda v: f"{v:g}")
            + ")"
        )
        out.append(
            f"{_trials(len(rows))} fitted T {where} at the edge of the grid "
            f"({low:g} … {high:g}): the best T may lie beyond it, so that {metric} is only an "
            f"upper bound: {_named(rows, names)}."
        )
    return out


def _seeds(view: pd.DataFrame) -> list[str]:
    seeds = trials.seeds_per_pair(view)
    if seeds == 0 or seeds >= MIN_SEEDS:
        return []
    if seeds == 1:
        return [
            "One seed (in at least one cell): nothing measures the seed-to-seed noise, so those "
            f"comparisons are inconclusive; run {MIN_SEEDS} or more seeds (`train.seed`)."
        ]
    return [
        f"Only {seeds} seeds in some cells: their intervals rest on {seeds} pairs per backbone "
        f"and are rough; {MIN_SEEDS} or more seeds give firmer verdicts."
    ]


def test_samples(df: pd.DataFrame) -> int | None:
    """Test samples per trial (the most common total of the raw bin counts), or None when the
    results have no bin counts."""
    if "test_bin_count" not in df:
        return None
    counts = df.loc[df["status"] == STATUS_OK, "test_bin_count"].dropna()
    totals = [int(np.sum(c)) for c in counts if c is not None]
    return int(pd.Series(totals).mode().iloc[0]) if totals else None

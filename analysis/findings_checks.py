"""The Findings' warnings (what makes a verdict less sure than it looks) and the test-set size.

- Temperatures at the edge of the search grid (`study.grid`: the grid of
  `study.train.calibration.PAPER_GRID`, 0.01 … 4.99): the best T may lie beyond the grid, so that
  trial's calibrated (or optimal) ECE is only an upper bound of what temperature scaling would
  reach.
- Trials that repeat an earlier trial's configuration and seed (`analysis.trials.repeats`):
  counted once, never as replicates.
- Too few replicates: with one no verdict can be decided; with two, an interval rests on two
  pairs per backbone. Replicates that share one `dataset.split_seed`: the intervals cover one
  data subset, not the dataset at this scale.
- Settings that differ between trials of a cell beyond the replicate: reported as separate
  cells (`analysis.settings.separate`), never averaged.

Notes: the noise floor of the calibrated ECE at this test size (`analysis.ece_bias`), and how
far choosing a searched method's best of N trials on validation moves its test metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats, trials
from analysis.variants import PERCENT
from study.results.schema import STATUS_OK

MIN_SEEDS = 3  # fewer seeds per cell than this earns a warning
MAX_NAMED = 5  # trials named in a warning; the rest are counted
FITTED = {  # temperature column → the metric it feeds and where T was fitted
    "temperature": ("calibrated ECE", "on validation"),
    "opt_temperature": ("optimal ECE", "on test"),
}


def warnings(
    df: pd.DataFrame,
    unique: pd.DataFrame,
    view: pd.DataFrame,
    mixed: dict[tuple[str, str, str], list[str]] | None = None,
) -> list[str]:
    """Warnings on `df` (one row per trial), its repeat-free rows and the table view; `mixed`:
    `settings.mixed_settings` of the rows before `settings.separate`."""
    return [
        *_unfinished(df),
        *_repeats(df),
        *_edges(unique),
        *_seeds(view),
        *_one_subset(view),
        *_mixed(mixed or {}),
    ]


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
    names = rows["first"] + " run again as " + rows["trial_id"].astype(str)  # earlier first
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
            "One replicate (in at least one cell): nothing measures the replicate-to-replicate "
            f"noise, so those comparisons are inconclusive; run {MIN_SEEDS} or more "
            "(`train.seed` with `dataset.split_seed`)."
        ]
    return [
        f"Only {seeds} replicates in some cells: their intervals rest on {seeds} pairs per "
        f"backbone and are wide; {MIN_SEEDS} or more give firmer verdicts."
    ]


def _one_subset(view: pd.DataFrame) -> list[str]:
    """Cells of several replicates that all share one split seed."""
    ok = stats.with_replicates(view[view["status"] == STATUS_OK])
    if ok.empty:
        return []
    cells = ok.groupby(["dataset", "backbone", "variant"], observed=True)
    shared = (cells["split_seed"].nunique() == 1) & (cells["seed"].nunique() > 1)
    if not shared.any():
        return []
    seeds = sorted(ok["split_seed"].unique())
    which = "unknown (the rows' configs do not say)" if seeds == [-1] else f"{seeds[0]}"
    return [
        f"Replicates share one data subset (dataset.split_seed {which}) in {int(shared.sum())} "
        "cells: their intervals cover seed noise on that subset only, not the dataset at this "
        "scale; vary `dataset.split_seed` with `train.seed` (a `replicate:` grid axis)."
    ]


def _mixed(mixed: dict[tuple[str, str, str], list[str]]) -> list[str]:
    if not mixed:
        return []
    shown = "; ".join(
        f"{d}, {b}{f', {v}' if v else ''}: {', '.join(keys)}"
        for (d, b, v), keys in list(mixed.items())[:MAX_NAMED]
    )
    return [
        f"Trials differ in more than their replicate in {len(mixed)} cells ({shown}): "
        "reported as separate cells (the differing settings in brackets), never averaged."
    ]


def floor_notes(view: pd.DataFrame) -> list[str]:
    """Per variant, its mean calibrated ECE beside the noise floor and the debiased ECE."""
    need = ["test_cal_ece", "test_cal_ece_floor", "test_cal_ece_debiased"]
    if not all(c in view for c in need) or view["test_cal_ece_floor"].isna().all():
        return []
    ok = view[view["status"] == STATUS_OK]
    means = ok.groupby("variant", observed=True)[need].mean() * PERCENT
    below = [str(v) for v, r in means.iterrows() if r["test_cal_ece"] <= r["test_cal_ece_floor"]]
    cells = ", ".join(
        f"{v} {r['test_cal_ece']:.2f} (debiased {r['test_cal_ece_debiased']:.2f})"
        for v, r in means.iterrows()
    )
    floor = means["test_cal_ece_floor"]
    text = (
        f"Noise floor: a perfectly calibrated model would score {floor.min():.2f}–"
        f"{floor.max():.2f} points of calibrated ECE on this test set (bins of these sizes, "
        f"analysis.ece_bias); mean calibrated ECE: {cells}. Differences between ECEs near the "
        "floor are differences in estimator noise as much as in calibration; the debiased ECE "
        "(Kumar et al., 2019) lowers that bias (partly) and is tested in the pitfall table."
    )
    if below:
        text += f" At or below the floor (indistinguishable from perfect): {', '.join(below)}."
    return [text]


def selection_notes(unique: pd.DataFrame, view: pd.DataFrame, search: trials.Search) -> list[str]:
    """How choosing a searched method's best trial on validation tilts its comparisons."""
    if not trials.searched(unique, search):
        return []
    out = [
        f"Searched methods are shown by their best trial per cell and replicate, picked by "
        f"{search.rule()} (`analysis report --select` picks another). ERM has one trial per "
        "replicate, so these comparisons favour the searched methods: by the amount below."
    ]
    for metric in ("test_acc", "test_cal_ece"):
        gains = trials.selection_gain(unique, view, metric)
        for row in gains.itertuples():
            out.append(
                f"Selection moves {row.variant}'s {metric} by {PERCENT * row.gain:+.2f} points "
                f"against the mean of the trials it was chosen from ({row.n} cells)."
            )
    return out


def test_samples(df: pd.DataFrame) -> int | None:
    """Test samples per trial (the most common total of the raw bin counts), or None when the
    results have no bin counts."""
    if "test_bin_count" not in df:
        return None
    counts = df.loc[df["status"] == STATUS_OK, "test_bin_count"].dropna()
    totals = [int(np.sum(c)) for c in counts if c is not None]
    return int(pd.Series(totals).mode().iloc[0]) if totals else None

"""Reliability diagrams as a grid of panels: accuracy per confidence bin, raw and after
temperature scaling, with the number of test samples in each bin (Guo et al., 2017; the
paper's Figure 3 draws them per method).

One panel per dataset and variant, at most `COLUMNS` panels a row. The panels of a row share
one matplotlib Axes, side by side (forty Axes would cost a second more to draw). Under each
panel a grey band gives the raw bins' sample counts, scaled to the panel's largest bin.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.plotting import grid, legend, save, styled
from analysis.reliability import pool_bins
from analysis.variants import PERCENT

COLUMNS = 4  # panels per row of the grid
PANEL = 3.3  # inches per panel
TICKS = [0.0, 0.5, 1.0]  # on both axes, labelled in percent
PANEL_GAP = 0.25  # between panels, in panel widths
BAND = (-0.32, -0.08)  # the sample-count band under a panel, in accuracy units
STAGE_STYLES = {  # raw bars filled, after-TS bars outlined on top
    "raw": {"fill": True, "facecolor": "tab:red", "alpha": 0.45, "edgecolor": "none"},
    "after TS": {"fill": False, "edgecolor": "tab:blue", "linewidth": 1.6},
}
COUNT_STYLE = {"fill": True, "facecolor": "0.55", "edgecolor": "none"}
FRAME = {"color": "black", "linewidth": 0.8}
DIAGONAL = {"color": "black", "linestyle": "--", "linewidth": 1}


@styled
def reliability_diagrams(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Reliability diagrams of `df` (one row per trial), pooled per dataset and variant over
    backbones and seeds; each panel's top left corner gives the ECEs of its pooled bins.

    Returns `analysis.reliability.pool_bins(df)`: empty, and no file written, when no ok row
    has bin statistics (results written before the schema had them).
    """
    data = pool_bins(df)
    if data.empty:
        return data
    datasets, variants = list(data["dataset"].unique()), list(data["variant"].unique())
    per_row = min(COLUMNS, len(variants))
    lines = [
        (dataset, variants[k : k + per_row])
        for dataset in datasets
        for k in range(0, len(variants), per_row)
    ]
    fig, axes = grid(len(lines), 1, width=PANEL * per_row, height=PANEL * 1.25)
    step = 1 + PANEL_GAP  # from one panel's left edge to the next, in confidence units
    panels = dict(list(data.groupby(["dataset", "variant"], observed=True, sort=False)))
    for i, (dataset, chunk) in enumerate(lines):
        ax = axes[i][0]
        for j, variant in enumerate(chunk):
            here = panels.get((dataset, variant))
            if here is not None:  # else no trial of this variant on this dataset: a blank
                n = int(here["trials"].iloc[0])
                title = f"{dataset}: {variant}\n({n} trial{'s' * (n != 1)})"
                _panel(ax, here, j * step, title)
        _axes(ax, len(chunk), per_row, step)
    handles = [Patch(label=f"{stage} accuracy", **style) for stage, style in STAGE_STYLES.items()]
    handles.append(Patch(label="test samples per bin", **COUNT_STYLE))
    handles.append(Line2D([], [], label="confidence = accuracy", **DIAGONAL))
    legend(axes, title="trials pooled over\nbackbones and seeds", handles=handles)
    save(fig, path)
    return data


def _axes(ax: Axes, panels: int, per_row: int, step: float) -> None:
    """Ticks in percent under every panel, and the y ticks on the row's left edge."""
    ticks = [j * step + t for j in range(panels) for t in TICKS]
    ax.set_xticks(ticks, [f"{PERCENT * t:g}" for t in TICKS] * panels)
    ax.set_yticks(TICKS, [f"{PERCENT * t:g}" for t in TICKS])
    ax.set(xlim=(-0.02, per_row * step - PANEL_GAP + 0.02), ylim=(BAND[0] - 0.02, 1.0))
    ax.set(ylabel="accuracy (%)", xlabel="confidence (%)")
    for spine in ax.spines.values():
        spine.set_visible(False)  # each panel draws its own frame


def _panel(ax: Axes, data: pd.DataFrame, left: float, title: str) -> None:
    """One panel at x = `left`: each stage's accuracy per bin (one step patch each), the
    diagonal, the frame, the sample counts in the band below, the title and the pooled ECEs."""
    ax.plot([left, left + 1], [0, 1], **DIAGONAL)
    ax.plot([left, left + 1, left + 1, left, left], [0, 0, 1, 1, 0], **FRAME)
    eces = []
    for stage, style in STAGE_STYLES.items():
        rows = data[data["stage"] == stage]
        edges = [*(left + rows["lo"]), left + rows["hi"].iloc[-1]]
        eces.append(f"{stage}: ECE {PERCENT * rows['ece'].iloc[0]:.2f}%")
        ax.stairs(rows["acc"].fillna(0.0), edges, baseline=0.0, **style)
    raw = data[data["stage"] == "raw"]
    most = max(int(raw["count"].max()), 1)
    low, high = BAND
    heights = low + (high - low) * raw["count"].to_numpy() / most
    edges = [*(left + raw["lo"]), left + raw["hi"].iloc[-1]]
    ax.stairs(heights, edges, baseline=low, **COUNT_STYLE)
    ax.plot([left, left + 1, left + 1, left, left], [low, low, high, high, low], **FRAME)
    total = int(raw["count"].sum())
    ax.text(  # in the gap between the panel and the band: never over the count bars
        left + 0.03, high / 2, f"n = {total:,}; tallest {most:,}", va="center", fontsize="x-small"
    )
    ax.text(left + 0.03, 0.97, "\n".join(eces), va="top", fontsize="small")
    ax.text(left + 0.5, 1.02, title, ha="center", va="bottom", fontsize="small")

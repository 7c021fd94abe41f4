"""The report's figures (`analysis report`): what each shows, from which rows, and why it is
skipped when those rows have nothing to draw (the drawing itself: analysis.figures)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: file name, title, what it shows, and which rows it needs."""

    file: str
    title: str
    shows: str
    draw: str  # name of the analysis.figures function
    rows: str  # "trials": every trial once; "view": searched methods by their best trial;
    # "curves": every epoch of the view's trials
    missing: str  # why it is skipped when there is nothing to draw


FIGURES = [
    FigureSpec(
        file="figure1_alpha.png",
        title="Figure 1: mixup's α",
        shows="Accuracy, ECE and calibrated ECE (%) against mixup's α, mean ± std over seeds "
        "per backbone; dashed lines are ERM",
        draw="alpha_sweep",
        rows="trials",
        missing="mixup ran at fewer than two α values",
    ),
    FigureSpec(
        file="dilemma.png",
        title="The accuracy–calibration dilemma",
        shows="One point per trial, one colour per method; ringed points and the black line are "
        "the Pareto front (no other trial is both more accurate and better calibrated)",
        draw="dilemma",
        rows="trials",
        missing="no trial has an ok epoch",
    ),
    FigureSpec(
        file="epoch_curves.png",
        title="Training curves",
        shows="Test accuracy and calibrated ECE (%) per epoch, mean over backbones and seeds",
        draw="epoch_curves",
        rows="curves",
        missing="no trial has an ok epoch",
    ),
    FigureSpec(
        file="figure2_ablation.png",
        title="Figure 2: ablations",
        shows="Calibrated ECE and mean confidence; blue: mixed labels, green: one-hot labels",
        draw="ablation",
        rows="view",
        missing="none of the ablations (Mixup-DT, -TO, -SC, -IO) ran",
    ),
    FigureSpec(
        file="reliability.png",
        title="Reliability diagrams",
        shows="Accuracy per confidence bin at each trial's selected epoch, pooled over "
        "backbones and seeds; filled red bars: raw logits, blue outlines: after temperature "
        "scaling (T fitted on validation); the dashed diagonal is perfect calibration; grey "
        "bars under each panel: test samples per bin (raw); each panel's top left corner "
        "gives the ECEs of its pooled bins",
        draw="reliability_diagrams",
        rows="view",
        missing="these results have no per-bin statistics (the test_bin_* columns are null: "
        "written before the schema had them, or no trial has an ok epoch)",
    ),
]


def section(frames: dict[str, pd.DataFrame], out: Path, say: Callable[[str], None]) -> str:
    """The report's Figures section: each figure drawn from its rows, or why it is not."""
    from analysis import figures  # matplotlib only when figures are drawn

    parts = ["## Figures"]
    for spec in FIGURES:
        data = getattr(figures, spec.draw)(frames[spec.rows], out / spec.file)
        if len(data):
            say(f"wrote {spec.file}")
        shown = f"![{spec.title}]({spec.file})\n\n{spec.shows}."
        parts += [f"### {spec.title}", shown if len(data) else f"Not drawn: {spec.missing}."]
    return "\n\n".join(parts)

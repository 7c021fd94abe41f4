"""The paper's figures from results, as PNG files (matplotlib's Agg canvas, no pyplot state).

Every function takes the tidy DataFrame of `analysis.load_results`, writes one PNG when it has
data to draw, and returns the data it plotted (a DataFrame, empty when there was nothing to
draw and no file was written), so callers and tests can check the numbers behind a figure.
Returned numbers are fractions, like the results; the figures draw them in percent
(`analysis.plotting` holds what the figures share: colours per method, sizes, saving).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from analysis.plotting import LABELS, grid, legend, save, scale, styled, variant_styles
from analysis.reliability_figure import reliability_diagrams
from analysis.stats import pareto_front
from analysis.variants import BASELINE
from study.results.schema import STATUS_OK

__all__ = ["ablation", "alpha_sweep", "dilemma", "epoch_curves", "reliability_diagrams"]

ALPHA_METRICS = ["test_acc", "test_ece", "test_cal_ece"]  # Figure 1
CURVE_METRICS = ["test_acc", "test_cal_ece"]  # per-epoch curves
DILEMMA = ("test_acc", "test_cal_ece")  # x is maximised, y minimised
FRONT_SPLIT = (
    "on test"  # the dilemma's front; the end summary's (study.results.summary) is on validation
)
ABLATION_METRICS = ["test_cal_ece", "test_conf"]  # Figure 2: top cal. ECE, bottom confidence
ABLATIONS = ["mixup_dt", "mixup_to", "mixup_sc", "mixup_io"]  # Figure 2 needs one of these
ABLATION_TARGETS = {  # Figure 2's colours: blue trains on mixed labels, green on one-hot labels
    "erm": "one-hot",
    "mixup": "mixed",
    "mixup_dt": "mixed",
    "mixup_to": "mixed",
    "mixup_sc": "one-hot",
    "mixup_io": "one-hot",
}
TARGET_COLOURS = {"mixed": "tab:blue", "one-hot": "tab:green"}
BACKBONE_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
POINT = {"s": 60, "alpha": 0.85, "edgecolors": "white", "linewidths": 0.5}  # dilemma markers
FRONT_RING = {"s": 220, "facecolors": "none", "edgecolors": "black", "linewidths": 1.8}


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == STATUS_OK]


def _panels(rows: list, cols: list) -> list[tuple[int, object, int, object]]:
    """(i, row, j, col) for every panel of a rows × cols grid."""
    return [(i, r, j, c) for i, r in enumerate(rows) for j, c in enumerate(cols)]


def spread(stats: pd.DataFrame, factor: float = 1.0) -> pd.Series | None:
    """The error bars of `_mean_std` rows, times `factor`: the std where two or more values were
    averaged, NaN (no bar) where one was; None (no bars at all) when no row has two — a study of
    one seed draws no zero-length bars."""
    std = stats["std"].where(stats["n"] > 1)
    return None if std.isna().all() else factor * std


def _mean_std(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Long form: *keys, metric, mean, std, n (over the rows of each group; fractions)."""
    stats = df.groupby(keys, observed=True, dropna=False)[metrics].agg(["mean", "std", "count"])
    long = stats.stack(level=0, future_stack=True).rename_axis([*keys, "metric"])
    return long.rename(columns={"count": "n"}).reset_index()


@styled
def alpha_sweep(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Figure 1: accuracy, ECE and calibrated ECE against mixup's α; ERM as a dashed line.

    Drawn only when mixup ran at two or more α. One row of panels per dataset, one line per
    backbone (mean ± std over seeds). Returns dataset, backbone, variant, alpha (NaN for ERM),
    metric, mean, std, n.
    """
    ok = _ok(df)
    sub = ok[(ok["method"] == "mixup") | (ok["variant"] == BASELINE)]
    if sub.loc[sub["method"] == "mixup", "alpha"].nunique() < 2:
        return pd.DataFrame()
    data = _mean_std(sub, ["dataset", "backbone", "variant", "alpha"], ALPHA_METRICS)
    datasets = list(data["dataset"].unique())
    fig, axes = grid(len(datasets), len(ALPHA_METRICS))
    backbones = list(data["backbone"].unique())
    colours = {str(b): BACKBONE_COLOURS[i % len(BACKBONE_COLOURS)] for i, b in enumerate(backbones)}
    for i, dataset, j, metric in _panels(datasets, ALPHA_METRICS):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        _alpha_panel(axes[i][j], here, colours, scale(metric))
        axes[i][j].set(title=f"{dataset}: {LABELS[metric]}", xlabel="mixup α")
    legend(axes, title=f"backbone\n(dashed: {BASELINE})")
    save(fig, path)
    return data


def _alpha_panel(ax: Axes, data: pd.DataFrame, colours: dict, factor: float) -> None:
    for backbone, rows in data.groupby("backbone", observed=True):
        colour = colours[str(backbone)]
        mixup = rows[rows["variant"] != BASELINE].sort_values("alpha")
        yerr = spread(mixup, factor)
        style = {"marker": "o", "markersize": 7, "color": colour, "capsize": 3, "linewidth": 1.8}
        ax.errorbar(mixup["alpha"], factor * mixup["mean"], yerr=yerr, label=str(backbone), **style)
        for value in rows.loc[rows["variant"] == BASELINE, "mean"]:
            ax.axhline(factor * value, color=colour, linestyle="--", linewidth=1.5)


@styled
def dilemma(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The accuracy–calibration dilemma: accuracy against calibrated ECE, one point per trial.

    One panel per dataset, one colour per method (its variants by marker), and the Pareto front
    (no other trial is both more accurate and better calibrated) ringed and joined by a line,
    so a front of one point is still marked. Returns one row per trial with dataset, backbone,
    variant, method, trial_id, test_acc, test_cal_ece and on_front.
    """
    x, y = DILEMMA
    keys = ["dataset", "backbone", "variant", "method", "trial_id"]
    data = _ok(df)[[*keys, x, y]].dropna(subset=[x, y]).reset_index(drop=True)
    if data.empty:
        return data
    data["on_front"] = False
    for _, rows in data.groupby("dataset", observed=True):
        data.loc[rows.index, "on_front"] = pareto_front(rows[x], rows[y])
    datasets = list(data["dataset"].unique())
    fig, axes = grid(1, len(datasets), width=5.5, height=4.5)
    styles = variant_styles(data)
    for j, dataset in enumerate(datasets):
        _dilemma_panel(axes[0][j], data[data["dataset"] == dataset], styles)
        axes[0][j].set(title=str(dataset), xlabel=LABELS[x], ylabel=LABELS[y])
    legend(axes)
    save(fig, path)
    return data


def _dilemma_panel(ax: Axes, data: pd.DataFrame, styles: pd.DataFrame) -> None:
    x, y = DILEMMA
    fx, fy = scale(x), scale(y)
    for variant, rows in data.groupby("variant", observed=True):
        style = styles.loc[str(variant)]
        ax.scatter(
            fx * rows[x],
            fy * rows[y],
            color=style["colour"],
            marker=style["marker"],
            label=style["legend"],
            **POINT,
        )
    front = data[data["on_front"]].sort_values(x)
    ax.step(fx * front[x], fy * front[y], where="post", color="black", linewidth=1.5)
    ax.scatter(fx * front[x], fy * front[y], label=f"Pareto front ({FRONT_SPLIT})", **FRONT_RING)


@styled
def epoch_curves(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Per-epoch test accuracy and calibrated ECE per variant (mean over backbones and seeds).

    Needs `load_results(..., epochs="all")`. One colour per method, one line style per variant
    of it. Returns dataset, variant, epoch, metric, mean, std, n.
    """
    # No status filter: metrics are null on diverged/error rows and means skip nulls.
    data = _mean_std(df, ["dataset", "variant", "epoch"], CURVE_METRICS)
    data = data.dropna(subset=["mean"])
    if data.empty:
        return data
    datasets = list(data["dataset"].unique())
    fig, axes = grid(len(datasets), len(CURVE_METRICS))
    styles = variant_styles(df[df["variant"].isin(data["variant"].unique())])
    for i, dataset, j, metric in _panels(datasets, CURVE_METRICS):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        for variant, rows in here.groupby("variant", observed=True):
            style = styles.loc[str(variant)]
            axes[i][j].plot(
                rows["epoch"],
                scale(metric) * rows["mean"],
                color=style["colour"],
                linestyle=style["line"],
                linewidth=2,
                label=style["legend"],
            )
        axes[i][j].set(title=f"{dataset}: {LABELS[metric]}", xlabel="epoch")
    legend(axes)
    save(fig, path)
    return data


@styled
def ablation(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Figure 2: calibrated ECE (top) and mean confidence (bottom) of ERM, mixup and its four
    ablations, blue for variants trained on mixed labels, green for one-hot labels.

    Drawn only when an ablation ran. Bars are means over backbones and seeds per dataset, with
    the std as error bars. Returns dataset, variant, targets, metric, mean, std, n.
    """
    ok = _ok(df)
    sub = ok[ok["method"].isin(list(ABLATION_TARGETS))]
    if not sub["method"].isin(ABLATIONS).any():
        return pd.DataFrame()
    targets = sub.groupby("variant", observed=True)["method"].first().map(ABLATION_TARGETS)
    data = _mean_std(sub, ["dataset", "variant"], ABLATION_METRICS)
    data["targets"] = data["variant"].map(targets).astype(str)
    datasets = list(data["dataset"].unique())
    fig, axes = grid(len(ABLATION_METRICS), len(datasets), width=5.0, height=3.8)
    for i, metric, j, dataset in _panels(ABLATION_METRICS, datasets):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        ax, factor, place = axes[i][j], scale(metric), range(len(here))
        colours = [TARGET_COLOURS[t] for t in here["targets"]]
        errors = spread(here, factor)
        ax.bar(place, factor * here["mean"], yerr=errors, capsize=3, color=colours)
        bottom = i == len(ABLATION_METRICS) - 1  # the variants' names under the last row only
        names = [str(v).replace(" (", "\n(") for v in here["variant"]] if bottom else []
        ax.set_xticks(list(place) if bottom else [], names, rotation=45, ha="right")
        ax.set(title=f"{dataset}: {LABELS[metric]}")
    patches = [Patch(color=c, label=f"{t} labels") for t, c in TARGET_COLOURS.items()]
    legend(axes, handles=patches)
    save(fig, path)
    return data

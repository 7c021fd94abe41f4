"""The paper's figures from results, as PNG files (matplotlib's Agg canvas, no pyplot state).

Every function takes the tidy DataFrame of `analysis.load_results`, writes one PNG when it has
data to draw, and returns the data it plotted (a DataFrame, empty when there was nothing to
draw and no file was written), so callers and tests can check the numbers behind a figure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from analysis.reliability import pool_bins
from analysis.stats import pareto_front
from analysis.variants import BASELINE, METRICS, PERCENT
from study.results import STATUS_OK

ALPHA_METRICS = ["test_acc", "test_ece", "test_cal_ece"]  # Figure 1
CURVE_METRICS = ["test_acc", "test_cal_ece"]  # per-epoch curves
DILEMMA = ("test_acc", "test_cal_ece")  # x is maximised, y minimised
ABLATION_METRICS = ["test_cal_ece", "test_conf"]  # Figure 2: top cal. ECE, bottom confidence
ABLATION_TARGETS = {  # Figure 2's colours: blue trains on mixed labels, green on one-hot labels
    "erm": "one-hot",
    "mixup": "mixed",
    "mixup_dt": "mixed",
    "mixup_to": "mixed",
    "mixup_sc": "one-hot",
    "mixup_io": "one-hot",
}
TARGET_COLOURS = {"mixed": "tab:blue", "one-hot": "tab:green"}
LABELS = {**{m.column: m.label for m in METRICS.values()}, "test_conf": "Mean confidence"}
STAGE_STYLES = {  # reliability diagrams: raw bars filled, after-TS bars outlined on top
    "raw": {"fill": True, "facecolor": "tab:red", "alpha": 0.45, "edgecolor": "none"},
    "after TS": {"fill": False, "edgecolor": "tab:blue", "linewidth": 1.2},
}
RELIABILITY_TICKS = [0.0, 0.5, 1.0]
PANEL_GAP = 0.25  # between reliability panels, in panel widths
PANEL_FRAME = {"color": "black", "linewidth": 0.8}
DIAGONAL = {"color": "black", "linestyle": "--", "linewidth": 1}
# Titles at a fixed height: matplotlib otherwise measures every panel's tick labels to place its
# title (nothing is drawn above the panels), a sixth of the drawing time.
FIXED_TITLES = {"axes.titley": 1.0}
TICKS = 5  # at most this many intervals between ticks per axis


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == STATUS_OK]


def _grid(
    rows: int,
    cols: int,
    width: float = 4.5,
    height: float = 3.4,
    bottom: float = 0.6,
    categories: bool = False,
) -> tuple[Figure, list]:
    """A rows × cols grid with fixed margins in inches, a strip on the right for the legend
    (constrained layout would cost seconds on big grids), titles at a fixed height, and at most
    TICKS intervals between ticks (on y only with `categories` on x)."""
    size = (width * cols + 2.5, height * rows + bottom - 0.2)
    margins = {"left": 0.7 / size[0], "right": 1 - 2.5 / size[0], "top": 1 - 0.5 / size[1]}
    margins |= {"bottom": bottom / size[1], "hspace": 0.3 + bottom / height, "wspace": 0.3}
    fig = Figure(figsize=size)
    with rc_context(FIXED_TITLES):
        axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=margins)
    for ax in axes.flat:  # fewer ticks than the automatic ~9: each costs a millisecond to draw
        for axis in [ax.yaxis] if categories else [ax.xaxis, ax.yaxis]:
            axis.set_major_locator(MaxNLocator(TICKS))
    return fig, axes


def _legend(fig: Figure, axes: list, title: str | None = None) -> None:
    """One legend for the figure, right of the panels, with every label any panel drew
    (placing one legend per panel at "best" costs seconds)."""
    handles: dict[str, object] = {}
    for ax in (ax for row in axes for ax in row):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    style = {"loc": "center right", "fontsize": "small", "title": title}
    fig.legend(list(handles.values()), list(handles), **style)


def _panels(rows: list, cols: list) -> list[tuple[int, object, int, object]]:
    """(i, row, j, col) for every panel of a rows × cols grid."""
    return [(i, r, j, c) for i, r in enumerate(rows) for j, c in enumerate(cols)]


def _save(fig: Figure, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, pil_kwargs={"compress_level": 1})  # fast zlib: bigger, quicker


def _colours(labels: list) -> dict[str, tuple]:
    cmap = colormaps["tab20"]
    return {str(label): cmap(i % cmap.N) for i, label in enumerate(labels)}


def _mean_std(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Long form: *keys, metric, mean, std, n (over the rows of each group)."""
    stats = df.groupby(keys, observed=True, dropna=False)[metrics].agg(["mean", "std", "count"])
    long = stats.stack(level=0, future_stack=True).rename_axis([*keys, "metric"])
    return long.rename(columns={"count": "n"}).reset_index()


def alpha_sweep(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Figure 1: accuracy, ECE and calibrated ECE against mixup's α; ERM as a dashed line.

    One row of panels per dataset, one line per backbone (mean ± std over seeds). Returns
    dataset, backbone, variant, alpha (NaN for ERM), metric, mean, std, n.
    """
    ok = _ok(df)
    sub = ok[(ok["method"] == "mixup") | (ok["variant"] == BASELINE)]
    if not (sub["method"] == "mixup").any():
        return pd.DataFrame()
    data = _mean_std(sub, ["dataset", "backbone", "variant", "alpha"], ALPHA_METRICS)
    datasets = list(data["dataset"].unique())
    fig, axes = _grid(len(datasets), len(ALPHA_METRICS))
    colours = _colours(list(data["backbone"].unique()))
    for i, dataset, j, metric in _panels(datasets, ALPHA_METRICS):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        _alpha_panel(axes[i][j], here, colours)
        axes[i][j].set(title=f"{dataset}: {LABELS[metric]}", xlabel="mixup α")
    _legend(fig, axes, title=f"dashed: {BASELINE}")
    _save(fig, path)
    return data


def _alpha_panel(ax: Axes, data: pd.DataFrame, colours: dict) -> None:
    for backbone, rows in data.groupby("backbone", observed=True):
        colour = colours[str(backbone)]
        mixup = rows[rows["variant"] != BASELINE].sort_values("alpha")
        yerr = mixup["std"].fillna(0.0)
        style = {"marker": "o", "color": colour, "capsize": 2}
        ax.errorbar(mixup["alpha"], mixup["mean"], yerr=yerr, label=str(backbone), **style)
        for value in rows.loc[rows["variant"] == BASELINE, "mean"]:
            ax.axhline(value, color=colour, linestyle="--", linewidth=1)


def dilemma(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The accuracy–calibration dilemma: accuracy against calibrated ECE, one point per trial.

    One panel per dataset, points coloured by variant, and the Pareto front (no other trial is
    both more accurate and better calibrated) drawn as a line. Returns one row per trial with
    dataset, backbone, variant, trial_id, test_acc, test_cal_ece and on_front.
    """
    x, y = DILEMMA
    keys = ["dataset", "backbone", "variant", "trial_id"]
    data = _ok(df)[[*keys, x, y]].dropna(subset=[x, y]).reset_index(drop=True)
    if data.empty:
        return data
    data["on_front"] = False
    for _, rows in data.groupby("dataset", observed=True):
        data.loc[rows.index, "on_front"] = pareto_front(rows[x], rows[y])
    datasets = list(data["dataset"].unique())
    fig, axes = _grid(1, len(datasets), width=5.5, height=4.5)
    colours = _colours(list(data["variant"].cat.categories))
    for j, dataset in enumerate(datasets):
        _dilemma_panel(axes[0][j], data[data["dataset"] == dataset], colours)
        axes[0][j].set(title=str(dataset), xlabel=LABELS[x], ylabel=LABELS[y])
    _legend(fig, axes)
    _save(fig, path)
    return data


def _dilemma_panel(ax: Axes, data: pd.DataFrame, colours: dict) -> None:
    x, y = DILEMMA
    for variant, rows in data.groupby("variant", observed=True):
        ax.scatter(rows[x], rows[y], s=12, alpha=0.7, color=colours[str(variant)], label=variant)
    front = data[data["on_front"]].sort_values(x)
    ax.step(front[x], front[y], where="post", color="black", linewidth=1, label="Pareto front")


def epoch_curves(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Per-epoch test accuracy and calibrated ECE per variant (mean over backbones and seeds).

    Needs `load_results(..., epochs="all")`. Returns dataset, variant, epoch, metric, mean,
    std, n.
    """
    # No status filter: metrics are null on diverged/error rows and means skip nulls.
    data = _mean_std(df, ["dataset", "variant", "epoch"], CURVE_METRICS)
    data = data.dropna(subset=["mean"])
    if data.empty:
        return data
    datasets = list(data["dataset"].unique())
    fig, axes = _grid(len(datasets), len(CURVE_METRICS))
    colours = _colours(list(df["variant"].cat.categories))
    for i, dataset, j, metric in _panels(datasets, CURVE_METRICS):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        for variant, rows in here.groupby("variant", observed=True):
            axes[i][j].plot(rows["epoch"], rows["mean"], color=colours[str(variant)], label=variant)
        axes[i][j].set(title=f"{dataset}: {LABELS[metric]}", xlabel="epoch")
    _legend(fig, axes)
    _save(fig, path)
    return data


def ablation(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Figure 2: calibrated ECE (top) and mean confidence (bottom) of ERM, mixup and its four
    ablations, blue for variants trained on mixed labels, green for one-hot labels.

    Bars are means over backbones and seeds per dataset, with the std as error bars. Returns
    dataset, variant, targets, metric, mean, std, n.
    """
    ok = _ok(df)
    sub = ok[ok["method"].isin(list(ABLATION_TARGETS))]
    if not sub["method"].isin(["mixup_dt", "mixup_to", "mixup_sc", "mixup_io"]).any():
        return pd.DataFrame()
    targets = sub.groupby("variant", observed=True)["method"].first().map(ABLATION_TARGETS)
    data = _mean_std(sub, ["dataset", "variant"], ABLATION_METRICS)
    data["targets"] = data["variant"].map(targets).astype(str)
    datasets = list(data["dataset"].unique())
    fig, axes = _grid(
        len(ABLATION_METRICS), len(datasets), width=5.0, height=4.2, bottom=1.4, categories=True
    )
    for i, metric, j, dataset in _panels(ABLATION_METRICS, datasets):
        here = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
        labels = [str(v) for v in here["variant"]]
        ax = axes[i][j]
        colours = [TARGET_COLOURS[t] for t in here["targets"]]
        ax.bar(labels, here["mean"], yerr=here["std"].fillna(0.0), capsize=2, color=colours)
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
        ax.set(title=f"{dataset}: {LABELS[metric]}")
    patches = [Patch(color=c, label=f"{t} labels") for t, c in TARGET_COLOURS.items()]
    fig.legend(handles=patches, loc="center right", fontsize="small")
    _save(fig, path)
    return data


def reliability_diagrams(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Reliability diagrams: accuracy per confidence bin, raw and after temperature scaling.

    One row of panels per dataset, one panel per variant; each pools the rows of `df` it covers
    (one per trial: every backbone and seed), and its top left corner gives the ECE of the
    pooled bins. A row of panels is one matplotlib Axes (the panels side by side in it): forty
    Axes would cost a second more to draw. Returns `analysis.reliability.pool_bins(df)`: empty,
    and no file written, when no ok row has bin statistics (results written before the schema
    had them).
    """
    data = pool_bins(df)
    if data.empty:
        return data
    datasets, variants = list(data["dataset"].unique()), list(data["variant"].unique())
    fig, axes = _grid(len(datasets), 1, width=3.2 * len(variants), height=3.2)
    step = 1 + PANEL_GAP  # from one panel's left edge to the next, in confidence units
    panels = dict(list(data.groupby(["dataset", "variant"], observed=True, sort=False)))
    for i, dataset in enumerate(datasets):
        ax = axes[i][0]
        for j, variant in enumerate(variants):
            here = panels.get((dataset, variant))
            if here is not None:  # else no trial of this variant on this dataset: a blank
                title = f"{dataset}: {variant} ({here['trials'].iloc[0]} trials)"
                _reliability_panel(ax, here, j * step, title)
        bottom = i == len(datasets) - 1  # confidence ticks under the last row only
        ticks = [j * step + t for j in range(len(variants)) for t in RELIABILITY_TICKS]
        ax.set_xticks(
            ticks if bottom else [],
            [f"{t:g}" for t in RELIABILITY_TICKS] * len(variants) if bottom else [],
        )
        ax.set(xlim=(-0.01, len(variants) * step - PANEL_GAP + 0.01), ylim=(0, 1))
        ax.set(yticks=RELIABILITY_TICKS, ylabel="accuracy", xlabel="confidence" if bottom else "")
        for spine in ax.spines.values():
            spine.set_visible(False)  # each panel draws its own frame
    handles = [Patch(label=f"{stage} accuracy", **style) for stage, style in STAGE_STYLES.items()]
    handles.append(Line2D([], [], label="confidence = accuracy", **DIAGONAL))
    title = "trials pooled over\nbackbones and seeds"
    fig.legend(handles=handles, loc="center right", fontsize="small", title=title)
    _save(fig, path)
    return data


def _reliability_panel(ax: Axes, data: pd.DataFrame, left: float, title: str) -> None:
    """One panel at x = `left`: accuracy per bin of each stage as bars (one step patch each),
    the diagonal, a frame, the title above and the pooled ECEs in the top left corner."""
    ax.plot([left, left + 1], [0, 1], **DIAGONAL)
    ax.plot([left, left + 1, left + 1, left, left], [0, 0, 1, 1, 0], **PANEL_FRAME)
    eces = []
    for stage, style in STAGE_STYLES.items():
        rows = data[data["stage"] == stage]
        edges = [*(left + rows["lo"]), left + rows["hi"].iloc[-1]]
        eces.append(f"{stage}: ECE {PERCENT * rows['ece'].iloc[0]:.2f}%")
        ax.stairs(rows["acc"].fillna(0.0), edges, baseline=0.0, **style)
    ax.text(left + 0.03, 0.97, "\n".join(eces), va="top", fontsize="x-small")
    ax.text(left + 0.5, 1.02, title, ha="center", va="bottom", fontsize="small")

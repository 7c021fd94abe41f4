"""What every figure shares: a grid of panels, one colour per method, percent axes, saving.

Figures are read at the size report.md shows them (about 1,000–1,400 pixels wide), so text is
11 pt, markers are large, every method has its own colour (variants of one method share it and
differ by marker or line style), the legend sits right beside the panels, and the PNG is cut
to what was drawn (`bbox_inches="tight"`: no label is clipped, no empty margin is kept).
Fractions are drawn as percentages, as the tables print them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.variants import METHOD_NAMES, METRICS, PERCENT

# One colour per method, far apart from each other (ERM black: the reference everywhere).
METHOD_COLOURS = {
    "erm": "black",
    "mixup": "tab:orange",
    "mixup_dt": "tab:brown",
    "mixup_to": "tab:olive",
    "mixup_sc": "tab:cyan",
    "mixup_io": "tab:pink",
    "mit_l": "tab:green",
    "mit_a": "tab:red",
    "cutmix": "tab:purple",
    "manifold_mixup": "tab:blue",
    "regmixup": "tab:gray",
    "label_smoothing": "gold",
}
SPARE_COLOURS = ["navy", "teal", "maroon", "darkkhaki", "indigo", "lime"]  # other methods
MARKERS = ["o", "s", "^", "D", "v", "P"]  # variants of one method
LINE_STYLES = ["-", "--", ":", "-."]
MAX_MARKED = 3  # a method with more variants (a searched one): one marker, one legend entry
STYLE = {"font.size": 11, "axes.titley": 1.0, "legend.fontsize": 10}  # fixed title height
TICKS = 5  # at most this many intervals between ticks per axis
DPI = 100
LABELS = {
    **{m.column: m.label + (" (%)" if m.percent else "") for m in METRICS.values()},
    "test_conf": "Mean confidence (%)",
}
PERCENT_COLUMNS = {m.column for m in METRICS.values() if m.percent} | {"test_conf"}


F = TypeVar("F", bound=Callable)


def styled(draw: F) -> F:
    """Run a figure function under STYLE (fonts are fixed when a text is created)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def scale(column: str) -> float:
    """What a column's values are multiplied by on a figure (percent for fractions)."""
    return PERCENT if column in PERCENT_COLUMNS else 1.0


def method_colour(method: str, spare: dict[str, str] | None = None) -> str:
    """The method's colour; an unknown method takes the next spare colour (kept in `spare`)."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    spare = {} if spare is None else spare
    return spare.setdefault(method, SPARE_COLOURS[len(spare) % len(SPARE_COLOURS)])


def variant_styles(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant label (the index): method, colour, marker, line style and legend label.

    Variants of one method share its colour and differ by marker and line style; a method with
    more than MAX_MARKED variants (a searched one) gets one marker and one legend entry.
    """
    pairs = df[["variant", "method"]].astype(str).drop_duplicates("variant")
    order = {str(v): i for i, v in enumerate(df["variant"].cat.categories)}
    pairs = pairs.assign(rank=pairs["variant"].map(order)).sort_values("rank")
    spare: dict[str, str] = {}
    rows = []
    for method, group in pairs.groupby("method", sort=False):
        many = len(group) > MAX_MARKED
        name = f"{METHOD_NAMES.get(method, method)} ({len(group)} variants)"
        for k, variant in enumerate(group["variant"]):
            style = {"variant": variant, "method": method, "colour": method_colour(method, spare)}
            style |= {
                "marker": MARKERS[0 if many else k],
                "line": LINE_STYLES[0 if many else k % len(LINE_STYLES)],
                "legend": name if many else variant,
            }
            rows.append(style)
    return pd.DataFrame(rows).set_index("variant")


def grid(rows: int, cols: int, width: float = 4.2, height: float = 3.3) -> tuple[Figure, list]:
    """A rows × cols grid of panels (inches per panel), at most TICKS intervals per axis."""
    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={"hspace": 0.45, "wspace": 0.3})
    for ax in axes.flat:
        for axis in [ax.xaxis, ax.yaxis]:
            axis.set_major_locator(MaxNLocator(TICKS))
    return fig, axes


def legend(axes: list, title: str | None = None, handles: list | None = None) -> None:
    """One legend right beside the top-right panel, with every label any panel drew."""
    found: dict[str, object] = {}
    if handles is None:
        for ax in (ax for row in axes for ax in row):
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                found.setdefault(label, handle)
        handles = list(found.values())
    corner: Axes = axes[0][-1]
    corner.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.03, 1.0),
        borderaxespad=0.0,
        title=title,
        frameon=False,
    )


def save(fig: Figure, path: str | Path) -> None:
    """Write the PNG, cut to what was drawn (labels and legend included)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(
        path, dpi=DPI, bbox_inches="tight", pad_inches=0.1, pil_kwargs={"compress_level": 1}
    )

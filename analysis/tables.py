"""The paper's tables from results: Tables 4/5 (`method_table`) and Table 1 (`table1`).

Tables 4 (calibrated ECE) and 5 (accuracy) of Wang et al. (CVPR 2023) have one row per dataset
and backbone, one column per variant, each cell "value (rank)" with the best bold and the second
underlined, and an "Avg. gain" row per dataset: the mean over backbones of (variant − ERM).
Table 1 sets ERM against mixup with α ∈ {0.1, 0.5, 1.0} for ECE, calibrated ECE and optimal ECE,
marking ▲ where mixup is better and ▼ where it is worse. Values are means over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import render, stats
from analysis.load import TRIAL_KEYS
from analysis.render import Style
from analysis.variants import BASELINE, Metric, get_metric
from study.results.schema import STATUS_OK

CELL_KEYS = ["dataset", "backbone", "variant"]
TABLE1_METRICS = ["test_ece", "test_cal_ece", "test_opt_ece"]
GAIN_ROW = "Avg. gain"
Escape = Callable[[str], str]


@dataclass(frozen=True)
class MethodTable:
    """One metric over datasets × backbones (rows) and variants (columns), as Tables 4 and 5.

    values, std, n: mean, standard deviation and number of seeds per cell;
    ranks: 1 = best per row (ties share the better rank; lower is better for ECE, NLL and
    Brier, higher for accuracy); avg_gain: per dataset and variant, the mean over backbones of
    value − ERM's value (NaN where ERM is missing).
    """

    metric: str
    values: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    ranks: pd.DataFrame
    avg_gain: pd.DataFrame

    def _cells(self, style: Style, escape: Escape) -> list[list[str]]:
        """Every "value ± std (rank)" cell, emphasised by rank (arrays, not per-cell lookups)."""
        spec = get_metric(self.metric)
        grids = [self.values, self.std, self.n, self.ranks]
        cells = np.stack([g.to_numpy(dtype=float) for g in grids], axis=-1)  # rows × cols × 4
        return [[_cell(spec, *cell, style, escape) for cell in row] for row in cells]

    def rows(self, style: Style, escape: Escape = str) -> list[list[str]]:
        """Formatted rows: each dataset's backbones, then its Avg. gain row."""
        spec, out = get_metric(self.metric), []
        cells = dict(zip(self.values.index, self._cells(style, escape), strict=True))
        for dataset, block in self.values.groupby(level="dataset", observed=True, sort=False):
            for key in block.index:
                out.append([escape(str(key[0])), escape(str(key[1])), *cells[key]])
            gains = self.avg_gain.loc[dataset]
            gain_cells = [escape(_gain(spec.show, gains, v)) for v in self.values.columns]
            out.append(["", escape(GAIN_ROW), *gain_cells])
        return out

    def header(self) -> list[str]:
        """Column heads: dataset, model, then the variants in table order."""
        return ["dataset", "model", *map(str, self.values.columns)]

    def to_markdown(self) -> str:
        """Cells "value ± std (rank)", best **bold**, second <u>underlined</u> (Tables 4/5)."""
        return render.markdown_table(self.header(), self.rows(render.MARKDOWN))

    def to_latex(self) -> str:
        """The same table as a booktabs tabular (\\textbf best, \\underline second)."""
        header = [render.latex_escape(h) for h in self.header()]
        return render.latex_table(header, self.rows(render.LATEX, render.latex_escape))

    def to_csv(self, path: str | Path | None = None) -> str:
        """Long form: dataset, model, variant, mean, std, n, rank (fractions, not percent)."""
        parts = {"mean": self.values, "std": self.std, "n": self.n, "rank": self.ranks}
        long = pd.concat({k: v.stack(future_stack=True) for k, v in parts.items()}, axis=1)
        text = long.dropna(subset=["mean"]).reset_index().to_csv(index=False)
        if path is not None:
            Path(path).write_text(text)
        return text


def _cell(
    spec: Metric, value: float, std: float, n: float, rank: float, style: Style, escape: Escape
) -> str:
    if pd.isna(value):
        return ""
    text = spec.show(value) + (f" ± {spec.show(std)}" if n > 1 else "")
    rank = int(rank)
    return {1: style.best, 2: style.second}.get(rank, "{}").format(escape(f"{text} ({rank})"))


def _gain(show: Callable[..., str], gains: pd.Series, variant: str) -> str:
    value = gains.get(variant, float("nan"))
    return "—" if variant == BASELINE or pd.isna(value) else show(value, signed=True)


def ok_trials(df: pd.DataFrame) -> pd.DataFrame:
    """The ok rows of a one-row-per-trial frame; ValueError when a trial has several rows (all
    epochs were loaded), since averaging epochs as if they were seeds would be wrong."""
    if df.duplicated(TRIAL_KEYS).any():
        raise ValueError(
            "tables need one row per trial: load_results(path, epochs='last' or 'best')"
        )
    return df[df["status"] == STATUS_OK]


def cell_stats(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and count of `metric` per (dataset, backbone, variant) over ok trials."""
    ok = ok_trials(df)
    return ok.groupby(CELL_KEYS, observed=True)[metric].agg(["mean", "std", "count"])


def method_table(df: pd.DataFrame, metric: str) -> MethodTable:
    """Tables 4/5 for `metric` (a column, e.g. "test_cal_ece") from one row per trial."""
    spec = get_metric(metric)
    wide = {k: _wide(s) for k, s in cell_stats(df, metric).items()}
    values = wide["mean"]
    ranks = values.rank(axis=1, ascending=not spec.higher_is_better, method="min")
    if BASELINE in values.columns:
        gain = values.sub(values[BASELINE], axis=0)
    else:
        gain = values * float("nan")
    avg_gain = gain.groupby(level="dataset", observed=True).mean()
    return MethodTable(metric, values, wide["std"], wide["count"].fillna(0), ranks, avg_gain)


def _wide(series: pd.Series) -> pd.DataFrame:
    """(dataset, backbone, variant) → rows (dataset, model) × columns in variant order."""
    wide = series.unstack("variant")
    present = [v for v in series.index.get_level_values("variant").categories if v in wide]
    wide = wide[present]
    wide.columns = pd.Index([str(c) for c in present], name="variant")
    wide.index = wide.index.set_names(["dataset", "model"])
    return wide


@dataclass(frozen=True)
class Table1:
    """Table 1: rows (dataset, metric), columns (variant, model); marks ▲▼ (△▽ inside noise)."""

    values: pd.DataFrame
    marks: pd.DataFrame

    def to_markdown(self) -> str:
        """Cells in percent with their mark, as the paper prints Table 1."""
        header = ["dataset", "metric", *(f"{v} · {m}" for v, m in self.values.columns)]
        rows = []
        for (dataset, metric), values in self.values.iterrows():
            spec, marks = get_metric(metric), self.marks.loc[(dataset, metric)]
            cells = [spec.show(values[c]) + marks[c] for c in self.values.columns]
            rows.append([str(dataset), spec.label, *cells])
        return render.markdown_table(header, rows)


def table1(df: pd.DataFrame) -> Table1:
    """Table 1 from one row per trial: ERM and every mixup α, for ECE, cal. ECE and opt. ECE."""
    ok = ok_trials(df)
    sub = ok[(ok["method"] == "mixup") | (ok["variant"] == BASELINE)]
    values, marks = [], []
    for metric in TABLE1_METRICS:
        values.append(sub.groupby(CELL_KEYS, observed=True)[metric].mean().rename(metric))
        diff = stats.diff_from_baseline(sub, metric, by=CELL_KEYS)
        marks.append(diff.set_index(CELL_KEYS)["mark"].rename(metric))
    long = pd.concat(values, axis=1).rename_axis(columns="metric").stack(future_stack=True)
    mark_long = pd.concat(marks, axis=1).rename_axis(columns="metric").stack(future_stack=True)
    mark_long = mark_long.reindex(long.index).fillna("")
    # a cell one dataset has and another lacks is NaN in the other's row once wide: no mark
    return Table1(_table1_wide(long), _table1_wide(mark_long).fillna(""))


def _table1_wide(long: pd.Series) -> pd.DataFrame:
    """Rows (dataset, metric) in Table 1's metric order; columns (variant, model)."""
    wide = long.unstack(["variant", "backbone"]).sort_index(axis=1)
    wide.columns = wide.columns.set_names(["variant", "model"])
    datasets = wide.index.get_level_values("dataset").unique()
    rows = pd.MultiIndex.from_product([datasets, TABLE1_METRICS], names=["dataset", "metric"])
    return wide.reindex(rows)

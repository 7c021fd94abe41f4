"""`analysis report`: one markdown file with the paper's tables and figures from a results dir.

The report answers the paper's questions on the user's own results (Wang et al., CVPR 2023):
does mixup help calibration once each model is temperature-scaled (Tables 1 and 4), what does
it do to accuracy (Table 5), where is the accuracy–calibration trade-off (Figure 1, the dilemma
plot), and what do the ablations show (Figure 2). Each number sits beside the paper's where the
paper has the cell, and differences from ERM get bootstrap intervals the paper does not give.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import paper, render, stats, tables
from analysis.load import LABEL_KEYS, TRIAL_KEYS, read_results
from analysis.reliability import BIN_COLUMNS
from analysis.variants import Metric, get_metric
from study.results import SCHEMA_VERSION, STATUS_OK

TABLE_METRICS = {  # metric → where the paper has it
    "test_cal_ece": "Table 4",
    "test_acc": "Table 5",
    "test_ece": "no paper table",
    "test_nll": "no paper table",
    "test_brier": "no paper table",
}
STAT_METRICS = ["test_acc", "test_cal_ece"]
LEGEND = f"{stats.MARK_LEGEND}."
ROW_KEYS = [*TRIAL_KEYS, *LABEL_KEYS, "seed", "epoch", "status"]
TABLE_COLUMNS = [*ROW_KEYS, *TABLE_METRICS, "test_opt_ece", "test_conf"]
CURVE_COLUMNS = [*ROW_KEYS, "epochs", "message", "test_acc", "test_cal_ece"]
TABLES_NOTE = (
    "Mean over seeds (± std with two or more seeds), rank in brackets, best **bold**, second "
    "<u>underlined</u>; Avg. gain is the mean over backbones of value − ERM."
)
MAX_LISTED = 20  # failed trials listed by name; the rest are counted
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: file name, title, what it shows, and which rows it needs."""

    file: str
    title: str
    shows: str
    draw: str  # name of the analysis.figures function
    epochs: str  # "selected" (one row per trial) or "all"
    missing: str = "no data for it"  # why it is skipped when there is nothing to draw


FIGURES = [
    FigureSpec(
        file="figure1_alpha.png",
        title="Figure 1: mixup's α",
        shows="Accuracy, ECE and calibrated ECE against α per backbone; dashed lines are ERM",
        draw="alpha_sweep",
        epochs="selected",
    ),
    FigureSpec(
        file="dilemma.png",
        title="The accuracy–calibration dilemma",
        shows="One point per trial; the black line is the Pareto front (accuracy up, "
        "calibrated ECE down)",
        draw="dilemma",
        epochs="selected",
    ),
    FigureSpec(
        file="epoch_curves.png",
        title="Training curves",
        shows="Test accuracy and calibrated ECE per epoch, mean over backbones and seeds",
        draw="epoch_curves",
        epochs="all",
    ),
    FigureSpec(
        file="figure2_ablation.png",
        title="Figure 2: ablations",
        shows="Calibrated ECE and mean confidence; blue: mixed labels, green: one-hot labels",
        draw="ablation",
        epochs="selected",
    ),
    FigureSpec(
        file="reliability.png",
        title="Reliability diagrams",
        shows="Accuracy per confidence bin at each trial's selected epoch, pooled over "
        "backbones and seeds; filled red bars: raw logits, blue outlines: after temperature "
        "scaling (T fitted on validation); the dashed diagonal is perfect calibration; each "
        "panel's top left corner gives the ECEs of its pooled bins",
        draw="reliability_diagrams",
        epochs="selected",
        missing="these results have no per-bin statistics (the test_bin_* columns are null: "
        "written before the schema had them, or no trial has an ok epoch)",
    ),
]


def build_report(
    results: str | Path,
    out: str | Path,
    epochs: str = "last",
    progress: Progress | None = None,
) -> Path:
    """Write `out`/report.md (with PNG figures and CSV/LaTeX tables) and return its path.

    `epochs` picks each trial's row for the tables ("last" or "best" by validation accuracy).
    Raises analysis.load.ResultsError when `results` holds no results of this schema.
    """
    say = _timed(progress or (lambda _: None))
    out = Path(out)
    # One read of each file, before any output (a refusal is one line): every epoch's curve
    # columns, and the bins (15 values per list, 6 lists) only at each trial's chosen epoch.
    read = read_results(
        results, epochs, columns=[*TABLE_COLUMNS, *BIN_COLUMNS], every=CURVE_COLUMNS
    )
    files, chosen, all_rows = read.files, read.selected, read.every
    say(f"read {len(all_rows):,} rows of {len(chosen):,} trials in {len(files):,} files; tables")
    title = f"# Results report: study {_names(all_rows['study'])}"
    parts = [title, _coverage(results, files, all_rows) + _skipped(read.skipped)]
    parts += [_method_tables(chosen, out), _table1(chosen)]
    say("bootstrap intervals and the paper's numbers")
    parts += [_statistics(chosen), _paper(chosen)]
    say("figures")
    parts.append(_figures({"selected": chosen, "all": all_rows}, out, say))
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    report.write_text("\n\n".join(parts) + "\n")
    say(f"wrote {report}")
    return report


def _timed(progress: Progress) -> Progress:
    start = time.perf_counter()
    return lambda message: progress(f"[{time.perf_counter() - start:5.1f}s] {message}")


def _names(values: pd.Series) -> str:
    """Distinct values in their natural order (categories' order, else sorted); a run of
    consecutive integers (seeds) as "first–last"."""
    present = values.dropna().unique()
    if isinstance(values.dtype, pd.CategoricalDtype):
        ordered = [v for v in values.cat.categories if v in set(present)]
    else:
        ordered = sorted(present)
    if len(ordered) > 2 and pd.api.types.is_integer_dtype(values):
        if ordered[-1] - ordered[0] == len(ordered) - 1:
            return f"{ordered[0]}–{ordered[-1]}"
    return ", ".join(map(str, ordered)) or "none"


def _coverage(results: str | Path, files: list[str], all_rows: pd.DataFrame) -> str:
    """What the study covered, from each trial's last reported row."""
    last = all_rows.drop_duplicates(TRIAL_KEYS, keep="last")
    counts = last["status"].astype(str).value_counts()
    reached = last.loc[last["status"] == STATUS_OK, "epoch"]
    lines = [
        "## What the study covered",
        f"- results: `{results}` ({len(files)} Parquet files, schema version {SCHEMA_VERSION})",
        f"- trials: {len(last)} ({', '.join(f'{n} {s}' for s, n in counts.items())})",
        f"- datasets: {_names(last['dataset'])}",
        f"- models: {_names(last['backbone'])}",
        f"- variants: {', '.join(map(str, last['variant'].cat.categories))}",
        f"- seeds: {_names(last['seed'])}",
        f"- epochs planned: {_names(last['epochs'])}; last epoch reached by ok trials: "
        + (f"{reached.min()}–{reached.max()}" if len(reached) else "none"),
    ]
    return "\n".join(lines) + "\n\n" + _failures(last)


def _skipped(skipped: list[tuple[str, str]]) -> str:
    """The files left out as unreadable or not results (study.results_files), one line each."""
    if not skipped:
        return ""
    lines = [f"- `{f}`: {why}" for f, why in skipped]
    return "\n\nFiles skipped (not results files of this schema):\n\n" + "\n".join(lines)


def _failures(last: pd.DataFrame) -> str:
    failed = last[last["status"] != STATUS_OK]
    if failed.empty:
        return "No trial diverged or errored."
    columns = ["trial_id", "dataset", "backbone", "variant", "seed", "epoch", "status", "message"]
    listed = failed[columns].head(MAX_LISTED).astype(object).fillna("?")
    rows = [[str(v) for v in r] for r in listed.itertuples(index=False)]
    more = len(failed) - len(rows)
    tail = f"\n\n… and {more} more." if more > 0 else ""
    note = "Trials that diverged or errored (their metrics are null and not averaged):\n\n"
    return note + render.markdown_table(columns, rows) + tail


def _method_tables(chosen: pd.DataFrame, out: Path) -> str:
    """Tables 4/5 layout for each metric; CSV and LaTeX copies under out/tables/."""
    parts = ["## Tables 4 and 5: every variant on every backbone", TABLES_NOTE]
    if not (chosen["status"] == STATUS_OK).any():
        return f"{parts[0]}\n\nNo trial has an ok epoch: nothing to tabulate."
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for metric, where in TABLE_METRICS.items():
        table = tables.method_table(chosen, metric)
        table.to_csv(out / "tables" / f"{metric}.csv")
        (out / "tables" / f"{metric}.tex").write_text(table.to_latex() + "\n")
        title = f"### {get_metric(metric).title} (paper: {where})"
        parts += [title, table.to_markdown()]
    return "\n\n".join(parts)


def _table1(chosen: pd.DataFrame) -> str:
    head = "## Table 1: ERM against mixup, before and after temperature scaling"
    ok = chosen[chosen["status"] == STATUS_OK]
    if not ((ok["method"] == "mixup").any() and (ok["variant"] == "ERM").any()):
        return f"{head}\n\nSkipped: Table 1 needs both ERM and mixup trials with ok epochs."
    view = tables.table1(chosen)
    return f"{head}\n\n{LEGEND}\n\n{view.to_markdown()}"


def _statistics(chosen: pd.DataFrame) -> str:
    """Paired differences from ERM with 95% bootstrap intervals, per dataset and variant."""
    note = f"Paired by dataset, backbone and seed; intervals need two or more pairs. {LEGEND}"
    parts = ["## Differences from ERM, with 95% bootstrap intervals", note]
    for metric in STAT_METRICS:
        spec = get_metric(metric)
        rows = [_diff_row(r, spec) for r in stats.diff_from_baseline(chosen, metric).itertuples()]
        header = ["dataset", "variant", "mean difference", "95% interval", "pairs", "mark"]
        body = render.markdown_table(header, rows) if rows else "No variant has ERM pairs."
        parts += [f"### {spec.title}", body]
    return "\n\n".join(parts)


def _diff_row(r: tuple, spec: Metric) -> list[str]:
    interval = f"[{spec.show(r.lo, True)}, {spec.show(r.hi, True)}]" if r.n > 1 else ""
    return [str(r.dataset), str(r.variant), spec.show(r.mean, True), interval, str(r.n), r.mark]


def _paper(chosen: pd.DataFrame) -> str:
    head = "## Beside the paper (Tables 1, 4, 5 of Wang et al., CVPR 2023)"
    comparison = paper.compare(chosen)
    if comparison.empty:
        return (
            f"{head}\n\nNo cell of the paper's tables matches these datasets, models and variants."
        )
    summary = comparison.assign(abs_diff=comparison["diff"].abs())
    summary = summary.groupby(["table", "metric"])["abs_diff"].agg(["mean", "max", "count"])
    lines = [
        f"- {t} ({get_metric(m).label}): {int(r['count'])} cells, mean |ours − paper| "
        f"{get_metric(m).show(r['mean'])}, largest {get_metric(m).show(r['max'])}"
        for (t, m), r in summary.iterrows()
    ]
    note = "Paper columns: see analysis/paper.py for the mapping of its last three columns."
    body = paper.comparison_markdown(comparison)
    return "\n\n".join([head, note, "\n".join(lines), body])


def _figures(frames: dict[str, pd.DataFrame], out: Path, say: Progress) -> str:
    from analysis import figures  # matplotlib only when figures are drawn

    parts = ["## Figures"]
    for spec in FIGURES:
        say(f"figure {spec.file}")
        data = getattr(figures, spec.draw)(frames[spec.epochs], out / spec.file)
        shown = f"![{spec.title}]({spec.file})\n\n{spec.shows}."
        parts += [f"### {spec.title}", shown if len(data) else f"Skipped: {spec.missing}."]
    return "\n\n".join(parts)

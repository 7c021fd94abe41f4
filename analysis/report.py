"""`analysis report`: one markdown file with the paper's tables and figures from a results dir.

It opens with the Findings (`analysis.findings`): each of the paper's claims supported,
contradicted or inconclusive on these results. Each configuration and seed counts once, and a
searched method is one column, its best trial on validation (`analysis.trials`).
The report answers the paper's questions on the user's own results (Wang et al., CVPR 2023):
does mixup help calibration once each model is temperature-scaled (Tables 1 and 4), what does
it do to accuracy (Table 5), where is the accuracy–calibration trade-off (Figure 1, the dilemma
plot), and what do the ablations show (Figure 2). Each number sits beside the paper's where the
paper has the cell, and differences from ERM get intervals the paper does not give (Student-t
over replicates, `analysis.stats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis import findings, paper, render, report_figures, settings, stats, tables, trials
from analysis.load import LABEL_KEYS, TRIAL_KEYS, read_results
from analysis.reliability import BIN_COLUMNS
from analysis.variants import METRICS, Metric, get_metric
from study.results.schema import SCHEMA_VERSION, STATUS_OK

TABLE_METRICS = {  # metric → where the paper has it
    "test_cal_ece": "Table 4",
    "test_acc": "Table 5",
    "test_ece": "no paper table",
    "test_nll": "no paper table",
    "test_brier": "no paper table",
    # the other measures of calibration after scaling (study.train.calibration); null in rows
    # written before the schema had them, whose tables are left out
    "test_cal_ace": "no paper table; equal-mass bins",
    "test_cal_cw_ece": "no paper table; every class",
    "test_cal_smece": "no paper table; Błasiok & Nakkiran 2023",
}
STAT_METRICS = ["test_acc", "test_cal_ece"]
LEGEND = f"{stats.MARK_LEGEND}."
ROW_KEYS = [*TRIAL_KEYS, *LABEL_KEYS, "seed", "epoch", "status"]
TABLE_COLUMNS = [*ROW_KEYS, *TABLE_METRICS, "test_opt_ece", "test_conf", *findings.COLUMNS]
CURVE_COLUMNS = [*ROW_KEYS, "epochs", "message", "test_acc", "test_cal_ece"]
TABLES_NOTE = (
    "Mean over seeds (± std with two or more seeds), rank in brackets, best **bold**, second "
    "<u>underlined</u>; Avg. gain is the mean over backbones of value − ERM."
)
MAX_LISTED = 20  # failed trials listed by name; the rest are counted
Progress = Callable[[str], None]


def build_report(
    results: str | Path,
    out: str | Path,
    epochs: str = "last",
    progress: Progress | None = None,
    select: str | None = None,
) -> Path:
    """Write `out`/report.md (with PNG figures and CSV/LaTeX tables) and return its path.

    `epochs` picks each trial's row for the tables ("last" or "best" by validation accuracy);
    `select`, the validation metric that picks a searched method's best trial (default: the
    spec's first objective). Raises analysis.load.ResultsError when `results` holds no results
    of this schema.
    """
    say = _timed(progress or (lambda _: None))
    out = Path(out)
    # One read of each file, before any output (a refusal is one line): every epoch's curve
    # columns, and the bins (15 values per list, 6 lists) only at each trial's chosen epoch.
    read = read_results(
        results, epochs, columns=[*TABLE_COLUMNS, *BIN_COLUMNS], every=CURVE_COLUMNS
    )
    files, chosen, all_rows = read.files, read.selected, read.every
    say(f"read {len(all_rows):,} rows of {len(chosen):,} trials in {len(files):,} files")
    # Each configuration and seed once; a searched method by its best trial (analysis.trials).
    search = trials.read_search(results).selecting(select)
    unique = trials.drop_repeats(settings.separate(chosen))
    view = trials.collapse_searched(unique, search)
    say("findings")
    title = f"# Results report: study {_names(all_rows['study'])}"
    parts = [title, findings.markdown(findings.assess(chosen, search))]
    parts += [
        _coverage(results, files, all_rows, view) + _skipped(read.skipped),
        _searched(view, unique, search),
    ]
    say("tables")
    parts += [_method_tables(view, out), _table1(view)]
    say("intervals and the paper's numbers")
    parts += [_statistics(view), _paper(view)]
    say("figures")
    frames = {"trials": unique, "view": view, "curves": trials.curves_of(all_rows, view)}
    parts.append(report_figures.section(frames, out, say))
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    report.write_text("\n\n".join(p for p in parts if p) + "\n")
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


def _span(values: pd.Series) -> str:
    """`3–8`, or `8 (every trial)` when all are one value, or `none`."""
    if values.empty:
        return "none"
    low, high = values.min(), values.max()
    return f"{low} (every trial)" if low == high else f"{low}–{high}"


def _coverage(
    results: str | Path, files: list[str], all_rows: pd.DataFrame, view: pd.DataFrame
) -> str:
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
        f"- variants: {_names(view['variant'])}",
        f"- seeds: {_names(last['seed'])}",
        f"- epochs planned: {_names(last['epochs'])}; last epoch reached by ok trials: "
        + _span(reached),
    ]
    return "\n".join(lines) + "\n\n" + _failures(last)


def _skipped(skipped: list[tuple[str, str]]) -> str:
    """The files left out as unreadable or not results (study.results.files), one line each."""
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


def _searched(view: pd.DataFrame, unique: pd.DataFrame, search: trials.Search) -> str:
    """The trial standing for each searched method, or nothing when no method was searched."""
    rows = trials.chosen(view, unique, search)
    if rows.empty:
        return ""
    head = "## Searched methods: one column each, its best trial by validation"
    note = (
        f"These methods' α/Δλ were searched ({search.source}); each table column holds, per "
        f"dataset, backbone and replicate, the trial with {search.rule()} (validation only: "
        "a test metric never chooses; `--select METRIC` picks by another)."
    )
    cells = [[_shown(column, v) for column, v in row.items()] for _, row in rows.iterrows()]
    body = render.markdown_table(list(rows.columns), cells)
    return "\n\n".join([head, note, body])


def _shown(column: str, value: object) -> str:
    """A cell of the searched-methods table: metrics as the tables print them, α/Δλ short."""
    if pd.isna(value):
        return ""
    if column in METRICS:
        return get_metric(column).show(value)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _method_tables(chosen: pd.DataFrame, out: Path) -> str:
    """Tables 4/5 layout for each metric; CSV and LaTeX copies under out/tables/."""
    parts = ["## Tables 4 and 5: every variant on every backbone", TABLES_NOTE]
    if not (chosen["status"] == STATUS_OK).any():
        return f"{parts[0]}\n\nNo trial has an ok epoch: nothing to tabulate."
    (out / "tables").mkdir(parents=True, exist_ok=True)
    for metric, where in TABLE_METRICS.items():
        if chosen[metric].isna().all():
            continue
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
    """Paired differences from ERM with 95% Student-t intervals, per dataset and variant."""
    note = (
        "Paired by dataset, backbone and replicate (split seed, seed); backbones pooled by a "
        "stratified paired t; intervals need two or more replicates; Holm's correction runs "
        f"over each table's rows. {LEGEND}"
    )
    parts = ["## Differences from ERM, with 95% intervals", note]
    for metric in STAT_METRICS:
        spec = get_metric(metric)
        rows = [_diff_row(r, spec) for r in stats.diff_from_baseline(chosen, metric).itertuples()]
        header = ["dataset", "variant", "mean difference", "95% interval", "Holm p", "pairs"]
        header += ["replicates needed (0.5 points, 80% power)", "mark"]
        body = render.markdown_table(header, rows) if rows else "No variant has ERM pairs."
        parts += [f"### {spec.title}", body]
    return "\n\n".join(parts)


def _diff_row(r: tuple, spec: Metric) -> list[str]:
    finite = pd.notna(r.lo)
    interval = f"[{spec.show(r.lo, True)}, {spec.show(r.hi, True)}]" if finite else ""
    p = f"{r.p_holm:.2g}" if pd.notna(r.p_holm) else ""
    needed = "" if r.needed is None or pd.isna(r.needed) else str(int(r.needed))
    return [str(r.dataset), str(r.variant), spec.show(r.mean, True), interval, p, str(r.n)] + [
        needed,
        r.mark,
    ]


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

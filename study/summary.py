"""A study's end summary (printed by `study run`), from its results files."""

from __future__ import annotations

import os

from study import results_files, results_read
from study.pareto import pareto_front
from study.results import STATUS_OK

SUMMARY_COLUMNS = ["method", "alpha", "margin", "trial_id", "epoch"]
SUMMARY_METRICS = ["val_acc", "val_cal_ece", "test_acc", "test_cal_ece"]
SUMMARY_READ = [
    "study",
    "trial_id",
    "epoch",
    "status",
    "method",
    "alpha",
    "margin",
    *SUMMARY_METRICS,
]


def summarize(directory: str | os.PathLike) -> str:
    """A study's end: trials by final status; per method the trial with the best validation
    accuracy and the one with the best validation calibrated ECE, with their test numbers;
    and the accuracy–calibrated-ECE Pareto front on validation (the dilemma of Wang et al.,
    CVPR 2023). Each trial counts with its last ok epoch. Files that are not results are skipped
    and named (study.results_files), so one bad file never hides the others."""
    try:
        read = results_read.read(directory, SUMMARY_READ)
    except results_files.ResultsError as err:
        return str(err)
    df = read.table.to_pandas().sort_values(["trial_id", "epoch"], kind="stable")
    df = df.drop_duplicates(["study", "trial_id", "epoch"], keep="last")
    skipped = [f"skipped {f}: not a results file ({why})" for f, why in read.skipped]
    final = df.groupby("trial_id")["status"].last().value_counts()
    ok = df[df["status"] == STATUS_OK].groupby("trial_id").tail(1)
    lines = [f"{final.sum()} trials: " + ", ".join(f"{n} {s}" for s, n in final.items())]
    lines += skipped
    if ok.empty:
        return "\n".join(lines)
    show = SUMMARY_COLUMNS + SUMMARY_METRICS
    best = {
        "best validation accuracy per method": ok.groupby("method")["val_acc"].idxmax(),
        "best validation calibrated ECE per method": ok.groupby("method")["val_cal_ece"].idxmin(),
    }
    front = ok[pareto_front(ok["val_acc"], ok["val_cal_ece"])]
    tables = {
        **{k: ok.loc[v, show] for k, v in best.items()},
        "Pareto front (val_acc up, val_cal_ece down)": front.sort_values(
            "val_acc", ascending=False
        )[show],
    }
    for title, table in tables.items():
        lines += ["", f"{title}:", table.to_string(index=False, float_format="{:.4f}".format)]
    return "\n".join(lines)

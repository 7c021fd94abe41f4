"""A study's end summary (printed by `study run`), from its results files."""

from __future__ import annotations

import os

from study.pareto import pareto_front
from study.results import files as results_files
from study.results import read as results_read
from study.results.schema import STATUS_OK

SUMMARY_COLUMNS = ["method", "alpha", "margin", "trial_id", "epoch"]
SUMMARY_METRICS = ["val_acc", "val_cal_ece", "test_acc", "test_cal_ece"]
ACC = "best validation accuracy per method"
ACC_AND_ECE = "best validation accuracy and calibrated ECE per method (one trial is best at both)"
ECE_OTHER = "best validation calibrated ECE per method, where another trial than the most accurate"
FRONT = "Pareto front on validation (val_acc up, val_cal_ece down)"
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
    accuracy and the one with the best validation calibrated ECE, with their test numbers (one
    table when one trial is best at both for every method, else the second table holds only the
    methods where the two differ and names the others); and the accuracy–calibrated-ECE Pareto
    front on validation (the dilemma of Wang et al., CVPR 2023). Each trial counts with its last
    ok epoch (as the live status and Optuna do). Files that are not results are skipped
    and named (study.results.files), so one bad file never hides the others."""
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
    by_acc = ok.groupby("method")["val_acc"].idxmax()
    by_ece = ok.groupby("method")["val_cal_ece"].idxmin()
    same = by_acc[by_acc == by_ece.reindex(by_acc.index)].index.tolist()
    if len(same) == len(by_acc):
        tables = {ACC_AND_ECE: ok.loc[by_acc, show]}
    else:
        other = by_ece.drop(same)
        note = f" (the same trial for: {', '.join(map(str, same))})" if same else ""
        tables = {ACC: ok.loc[by_acc, show], ECE_OTHER + note: ok.loc[other, show]}
    front = ok[pareto_front(ok["val_acc"], ok["val_cal_ece"])]
    tables[FRONT] = front.sort_values("val_acc", ascending=False)[show]
    for title, table in tables.items():
        lines += ["", f"{title}:", table.to_string(index=False, float_format="{:.4f}".format)]
    return "\n".join(lines)

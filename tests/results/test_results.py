"""The driver-side results writer without Ray: rows keyed on (trial_id, epoch), a re-reported
epoch replacing its row, error rows with the error's last line, restored writers reading the
files again, orphaned trials set aside, and the end-of-study summary."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pandas as pd
import pytest

from study.results import summary
from study.results.schema import COLUMN_NAMES, IDENTITY, SCHEMA_VERSION
from study.results.summary import summarize
from study.spec import parse_spec
from study.train import resolve
from study.train.identity import trial_columns
from study.tune.writer import ResultsWriter

SPEC = parse_spec(
    {
        "name": "unit",
        "dataset": {"name": "fake"},
        "model": {"name": "resnet18", "width": 8},
        "train": {"epochs": 3},
        "space": {"method.name": ["erm", "mit_a"]},
    }
)


def row(epoch: int, method: str = "mit_a", **metrics) -> dict:
    cfg = SPEC.trial_config({"method.name": method})
    base = {"val_acc": 0.5, "val_cal_ece": 0.05, "test_acc": 0.5, "test_cal_ece": 0.04}
    return {**trial_columns(cfg), "epoch": epoch, "status": "ok", "message": "", **base, **metrics}


def trial(trial_id: str, method: str = "mit_a", error_file: str | None = None):
    return SimpleNamespace(trial_id=trial_id, config={"method.name": method}, error_file=error_file)


@pytest.fixture
def writer(tmp_path) -> ResultsWriter:
    return ResultsWriter(tmp_path / "results", "unit", SPEC)


def report(writer: ResultsWriter, t, r: dict) -> None:
    writer.on_trial_result(0, [], t, {"row": r, "epoch": r["epoch"]})


def test_reported_epochs_are_written_and_a_rereport_replaces_its_row(writer):
    t = trial("a")
    for epoch in (1, 2, 1, 2, 3):  # epochs 1 and 2 redone after a restore
        report(writer, t, row(epoch, val_acc=0.1 * epoch))
    df = pd.read_parquet(writer.directory)
    assert list(df.columns) == COLUMN_NAMES
    assert list(df.epoch) == [1, 2, 3] and list(df.trial_id) == ["a"] * 3
    assert (df.study == "unit").all() and (df.schema_version == SCHEMA_VERSION).all()


def test_restored_writer_reads_the_files_again(writer):
    """A writer restored from Tune's snapshot starts from the files, not from what it held when
    pickled: epochs written after the snapshot (by the crashed driver) are kept."""
    report(writer, trial("a"), row(1))
    snapshot = pickle.dumps(writer)
    report(writer, trial("a"), row(2))  # after the snapshot, before the crash
    restored = pickle.loads(snapshot)
    report(restored, trial("a"), row(3))
    assert list(pd.read_parquet(writer.directory).epoch) == [1, 2, 3]


def test_error_row_has_the_message_and_the_failed_epoch(writer, tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1\nTraceback ...\n  raise ValueError\nValueError: boom\n\n")
    t = trial("b", error_file=str(error_file))
    report(writer, t, row(1))
    writer.on_trial_error(0, [], t)
    df = pd.read_parquet(writer.directory).sort_values("epoch")
    assert list(df.status) == ["ok", "error"] and list(df.epoch) == [1, 2]
    last = df.iloc[-1]
    assert last.message == "ValueError: boom" and last.method == "mit_a" and last.epochs == 3
    assert pd.isna(last.val_acc)


def test_error_before_any_epoch_without_an_error_file(writer):
    writer.on_trial_error(0, [], trial("c", method="erm"))
    df = pd.read_parquet(writer.directory)
    assert list(df.epoch) == [1] and df.status.item() == "error"
    assert df.message.item() == "the trial failed without an error message"


def test_trials_the_study_no_longer_has_are_set_aside(writer):
    for trial_id in ("kept", "orphan"):
        report(writer, trial(trial_id), row(1))
    writer.on_experiment_end([trial("kept")])
    assert set(pd.read_parquet(writer.directory).trial_id) == {"kept"}
    assert (writer.directory.parent / "orphaned_results" / "orphan.e0001.parquet").exists()


@pytest.mark.parametrize("method", ["erm", "mixup", "mit_a", "regmixup"])
def test_trial_columns_are_the_schemas_identity(method):
    """One list names a row's identity (study.results.schema.IDENTITY): what trial_columns
    gives, in order, and what a rebuilt error row copies (study.results.quarantine)."""
    cols = trial_columns(resolve.trial_config({"method": {"name": method}}))
    assert tuple(cols) == IDENTITY


def test_trial_columns_null_what_the_method_does_not_take():
    erm = trial_columns(resolve.trial_config({"method": {"name": "erm", "alpha": 0.4}}))
    assert erm["alpha"] is None and erm["margin"] is None
    mit = trial_columns(
        resolve.trial_config({"method": {"name": "mit_l", "alpha": 0.4, "constraint": False}})
    )
    assert mit["alpha"] == 0.4 and mit["margin"] is None


def test_summary_one_table_when_one_trial_is_best_at_both(writer):
    """Two identical tables say nothing twice: one table, titled as both."""
    for trial_id, method, acc, ece in [("a", "erm", 0.9, 0.01), ("b", "erm", 0.8, 0.03)]:
        report(writer, trial(trial_id, method), row(1, method, val_acc=acc, val_cal_ece=ece))
    text = summarize(writer.directory)
    assert f"{summary.ACC_AND_ECE}:" in text
    assert f"{summary.ACC}:" not in text and summary.ECE_OTHER not in text


def test_summary_per_method_and_pareto_front(writer):
    scores = {
        "trial_a": ("erm", 0.90, 0.010),
        "trial_b": ("mit_a", 0.95, 0.020),
        "trial_c": ("mit_a", 0.85, 0.005),
        "trial_e": ("erm", 0.80, 0.030),  # dominated by a
    }
    for trial_id, (method, acc, ece) in scores.items():
        t = trial(trial_id, method)
        report(writer, t, row(1, method, val_acc=0.99, val_cal_ece=0.001))  # not the last epoch
        report(writer, t, row(2, method, val_acc=acc, val_cal_ece=ece))
    writer.on_trial_error(0, [], trial("trial_d", "erm"))
    text = summarize(writer.directory)
    head = text.splitlines()[0]
    assert head == "5 trials: 4 ok, 1 error"

    def section(title: str) -> str:
        """The block of the summary under `title` (up to the next blank line)."""
        return text.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0]

    def named(block: str) -> set[str]:
        return {t for t in [*scores, "trial_d"] if t in block}

    assert named(section("best validation accuracy per method")) == {"trial_a", "trial_b"}
    # erm's most accurate trial is also its best calibrated: named, not printed twice
    ece = f"{summary.ECE_OTHER} (the same trial for: erm)"
    assert named(section(ece)) == {"trial_c"}
    front = section("Pareto front on validation (val_acc up, val_cal_ece down)")
    assert named(front) == {"trial_a", "trial_b", "trial_c"}
    assert "0.9500" in front and "0.9900" not in text  # last epochs' numbers, 4 decimals
    assert summarize(writer.directory.parent / "empty").startswith("no results")

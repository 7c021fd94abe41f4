"""analysis.load: reading the Parquet contract, epoch choice, variant labels, aggregation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from analysis_fixtures import grid, write

from analysis import aggregate, load_results, synthetic
from analysis.load import TRIAL_KEYS, ResultsError, read_results
from study.results.files import write_atomic
from study.results.schema import (
    COLUMN_NAMES,
    SCHEMA_VERSION,
    STATUS_DIVERGED,
    STATUS_ERROR,
    STATUS_OK,
)


@pytest.fixture
def results(tmp_path):
    cells = grid(["cifar10"], ["resnet18", "tv_resnet18"])
    cells["pretrained"] = cells["model"].str.startswith("tv_")
    return write(cells, tmp_path / "results", seeds=2, epochs=4, files=3)


def test_last_gives_one_row_per_trial_with_contract_columns(results):
    df = load_results(results)
    assert len(df) == 2 * 6 * 2  # models × variants × seeds
    assert (df["epoch"] == 4).all()
    assert set(COLUMN_NAMES) <= set(df.columns)
    assert {"variant", "backbone"} <= set(df.columns)


def test_all_gives_every_epoch_sorted(results):
    df = load_results(results, "all")
    assert len(df) == 24 * 4
    first = df[df["trial_id"] == df["trial_id"].iloc[0]]
    assert first["epoch"].tolist() == [1, 2, 3, 4]


def test_variant_and_backbone_labels(results):
    df = load_results(results)
    assert list(df["variant"].cat.categories) == [
        "ERM",
        "Mixup (α=0.1)",
        "Mixup (α=1.0)",
        "Mixup-DT",
        "Mixup-SC",
        "MIT-A (Δλ>0.5)",
    ]
    assert set(df["backbone"].astype(str)) == {"resnet18", "tv_resnet18†"}


def test_alpha_shown_when_an_ablation_has_several(tmp_path):
    variants = [("erm", None, None), ("mixup_io", 0.5, None), ("mixup_io", 1.0, None)]
    variants += [("mit_l", 1.0, None), ("mit_l", 1.0, 0.0)]
    write(grid(["svhn"], ["resnet18"], variants), tmp_path)
    labels = list(load_results(tmp_path)["variant"].cat.categories)
    assert labels == ["ERM", "Mixup-IO (α=0.5)", "Mixup-IO (α=1.0)", "MIT-L (Δλ>0)"]


def test_columns_subset_reads_the_keys_too(results):
    df = load_results(results, columns=["test_acc"])
    assert "test_acc" in df and "val_acc" not in df and "config_json" not in df
    assert {"trial_id", "method", "variant", "backbone"} <= set(df.columns)


def _two_peaks(tmp_path):
    """One trial whose validation accuracy peaks at epoch 2 and test accuracy at epoch 3."""
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:1], 1), 4)
    rows["val_acc"] = [0.5, 0.9, 0.6, 0.7]
    rows["test_acc"] = [0.5, 0.6, 0.95, 0.7]
    write_atomic(synthetic.to_arrow(rows), tmp_path / "t.parquet")
    return tmp_path


def test_best_picks_epoch_by_validation_never_test(tmp_path):
    df = load_results(_two_peaks(tmp_path), "best")
    assert df["epoch"].tolist() == [2]
    assert load_results(tmp_path, "best", best_by="val_nll")["epoch"].tolist() == [4]
    with pytest.raises(ValueError, match="validation"):
        load_results(tmp_path, "best", best_by="test_acc")


def test_failed_trials_keep_their_last_row_and_aggregate_skips_them(tmp_path):
    frame = synthetic.trials(grid(["svhn"], ["resnet18"], [("erm", None, None)]), 3)
    rows = synthetic.epoch_rows(frame, 5)
    rows = synthetic.fail_trials(rows, ["t000000"], STATUS_DIVERGED, "loss is nan", epoch=1)
    rows = synthetic.fail_trials(rows, ["t000001"], STATUS_ERROR, "out of memory", epoch=4)
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r.parquet")
    last = load_results(tmp_path).set_index("trial_id")
    assert last["status"].tolist() == [STATUS_DIVERGED, STATUS_ERROR, STATUS_OK]
    assert last["test_acc"].isna().tolist() == [True, True, False]
    assert last.loc["t000001", "message"] == "out of memory"
    best = load_results(tmp_path, "best").set_index("trial_id")
    assert best["status"].tolist() == [STATUS_DIVERGED, STATUS_OK, STATUS_OK]
    assert best["epoch"].tolist() == [1, 3, 5]  # early stopping before the error
    stats = aggregate(last.reset_index(), ["test_acc"])
    assert stats[("test_acc", "n")].tolist() == [1]


def test_aggregate_mean_std_n_over_seeds(tmp_path):
    frame = synthetic.trials(grid(["svhn"], ["resnet18"], [("erm", None, None)]), 3)
    rows = synthetic.epoch_rows(frame, 2)
    rows.loc[rows["epoch"] == 2, "test_acc"] = [0.7, 0.8, 0.9]
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r.parquet")
    stats = aggregate(load_results(tmp_path), ["test_acc"])
    row = stats.loc[("svhn", "resnet18", "ERM"), "test_acc"]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1)
    assert row["n"] == 3
    by_epoch = aggregate(load_results(tmp_path, "all"), ["test_acc"])
    assert by_epoch.index.names[-1] == "epoch" and len(by_epoch) == 2


def test_refuses_empty_and_missing(tmp_path):
    with pytest.raises(ResultsError, match="no .parquet"):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="no such"):
        load_results(tmp_path / "nope")


def _good(directory):
    """Two trials, one file each, as a study writes them."""
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:2], 1), 3)
    directory.mkdir(parents=True, exist_ok=True)
    for trial_id, part in rows.groupby("trial_id"):
        write_atomic(synthetic.to_arrow(part), directory / f"{trial_id}.parquet")
    return rows


def _bad_file(kind: str, path) -> str:
    """Write a bad file of `kind` at `path`; the fragment its skip message must hold."""
    good = synthetic.to_arrow(
        synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[2:3], 1), 3)
    )
    if kind == "truncated":
        write_atomic(good, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "unreadable"
    if kind == "empty":
        path.write_bytes(b"")
        return "unreadable"
    if kind == "foreign":
        pq.write_table(pa.table({"x": [1, 2]}), path)
        return "columns not in the results schema: x"
    if kind == "foreign-with-version":
        pq.write_table(pa.table({"name": ["a"], "schema_version": [SCHEMA_VERSION]}), path)
        return "columns not in the results schema: name"
    if kind == "keys-only":  # contract names, but not a results table: no trial_id
        pq.write_table(pa.table({"study": ["s"], "epoch": [1], "schema_version": [1]}), path)
        return "no trial_id, status column"
    if kind == "newer":
        table = good.set_column(
            good.schema.get_field_index("schema_version"),
            "schema_version",
            pa.array([SCHEMA_VERSION + 1] * len(good)),
        )
        write_atomic(table, path)
        return f"schema version {SCHEMA_VERSION + 1}"
    assert kind == "types"
    keys = {k: ["x"] for k in [*TRIAL_KEYS, "status"]}
    pq.write_table(pa.table({**keys, "epoch": ["one"], "schema_version": [1]}), path)
    return "column epoch is string, not int64"


BAD = ["truncated", "empty", "foreign", "foreign-with-version", "keys-only", "newer", "types"]


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_file_is_skipped_and_named_and_the_rest_used(tmp_path, caplog, kind):
    rows = _good(tmp_path)
    why = _bad_file(kind, tmp_path / "bad.parquet")
    with caplog.at_level(logging.WARNING, logger="study.results"):
        read = read_results(tmp_path, "all", columns=["test_acc"])
    assert read.selected["test_acc"].tolist() == rows["test_acc"].tolist()
    assert [f.endswith("bad.parquet") for f, _ in read.skipped] == [True]
    assert why in read.skipped[0][1]
    assert len(read.files) == 2 and not any(f.endswith("bad.parquet") for f in read.files)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "bad.parquet" in warned[0] and why in warned[0]


def test_only_bad_files_are_refused_naming_one(tmp_path):
    for kind in ("foreign", "empty"):
        _bad_file(kind, tmp_path / f"{kind}.parquet")
    with pytest.raises(ResultsError, match=r"empty.parquet is not a results file.*1 more"):
        load_results(tmp_path)


def test_old_schema_files_read_with_missing_columns_null(tmp_path):
    """A version-1 file (no `constraint`) and a version-2 file written before later columns
    existed (here: no test_opt_ece and no bins) read beside a current one."""
    mit = grid(["svhn"], ["resnet18"], [("mit_a", 1.0, 0.5)])
    rows = synthetic.epoch_rows(synthetic.trials(mit, 3), 2).assign(constraint=True)
    table = synthetic.to_arrow(rows)
    by_trial = {t: table.filter(pc.equal(table["trial_id"], t)) for t in rows["trial_id"]}
    old, early, now = by_trial.values()
    old = old.drop_columns(["constraint"]).set_column(
        old.schema.get_field_index("schema_version") - 1, "schema_version", pa.array([1, 1])
    )
    early = early.drop_columns(["test_opt_ece", *BINS])
    for name, part in (("old", old), ("early", early), ("now", now)):
        pq.write_table(part, tmp_path / f"{name}.parquet")
    df = load_results(
        tmp_path, columns=["constraint", "test_opt_ece", "test_acc", "schema_version", *BINS]
    )
    df = df.set_index(df["trial_id"].astype(str)).loc[list(by_trial)]  # old, early, now
    assert df["constraint"].isna().tolist() == [True, False, False]
    assert df["test_opt_ece"].isna().tolist() == [False, True, False]
    assert [b is None for b in df["test_bin_count"]] == [False, True, False]
    last = rows.groupby("trial_id").tail(1).set_index("trial_id")
    assert df["test_acc"].tolist() == last.loc[list(by_trial), "test_acc"].tolist()
    assert df["schema_version"].tolist() == [1, 2, 2]


def test_study_directory_its_results_and_a_uri_read_the_same(tmp_path):
    _good(tmp_path / "study" / "results")
    want = load_results(tmp_path / "study" / "results")
    for where in (tmp_path / "study", f"file://{tmp_path}/study/results", str(tmp_path / "study")):
        pd.testing.assert_frame_equal(load_results(where), want)


def test_duplicate_epoch_rows_count_once(tmp_path):
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:1], 1), 2)
    write_atomic(synthetic.to_arrow(rows), tmp_path / "a.parquet")
    write_atomic(synthetic.to_arrow(rows.assign(test_acc=0.5)), tmp_path / "b.parquet")
    every = load_results(tmp_path, "all")
    assert every["epoch"].tolist() == [1, 2] and (every["test_acc"] == 0.5).all()  # b's rows


# A study writes one small file per trial; the loader takes what it can from the footers'
# statistics and keeps the bins only at each file's own selected rows. Every way of writing the
# same rows must give the same frames.

BINS = ["test_bin_count", "test_bin_acc", "test_cal_bin_conf"]


def _rows(seeds: int = 2, epochs: int = 4) -> pd.DataFrame:
    """Rows of 12 trials (noisy, so "best" differs from "last"), one diverged, one errored."""
    frame = synthetic.trials(grid(["svhn"], ["resnet18"]), seeds)
    rows = synthetic.epoch_rows(frame, epochs, noise=0.05, seed=3)
    rows = synthetic.fail_trials(rows, ["t000002"], STATUS_DIVERGED, "loss is nan", epoch=3)
    return synthetic.fail_trials(rows, ["t000005"], STATUS_ERROR, "boom", epoch=1)


def _write_per_trial(rows: pd.DataFrame, directory, **options) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for trial_id, part in rows.groupby("trial_id", sort=False):
        pq.write_table(synthetic.to_arrow(part), directory / f"{trial_id}.parquet", **options)


def _frames(directory, **kwargs) -> dict[str, pd.DataFrame]:
    columns = ["test_acc", "test_cal_ece", "message", "epochs", "alpha", *BINS]
    frames = {e: load_results(directory, e, columns=columns, **kwargs) for e in ("last", "best")}
    frames["all"] = load_results(directory, "all", columns=["test_acc", "message"], **kwargs)
    return frames


def _assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for epochs, expect in want.items():
        frame = got[epochs]
        assert list(frame.columns) == list(expect.columns), epochs
        for column in frame.columns:
            a, b = frame[column].reset_index(drop=True), expect[column].reset_index(drop=True)
            if column in BINS:
                assert all(
                    (x is None and y is None) or np.array_equal(x, y, equal_nan=True)
                    for x, y in zip(a, b, strict=True)
                ), (epochs, column)
            else:
                pd.testing.assert_series_equal(a, b, check_categorical=False, obj=column)


@pytest.fixture(scope="module")
def one_file(tmp_path_factory):
    """The rows in one file: the reference every other layout is compared with."""
    directory = tmp_path_factory.mktemp("one")
    write_atomic(synthetic.to_arrow(_rows()), directory / "all.parquet")
    return {best_by: _frames(directory, best_by=best_by) for best_by in ("val_acc", "val_nll")}


@pytest.mark.parametrize(
    "options",
    [{}, {"write_statistics": False}, {"row_group_size": 3}],
    ids=["stats", "no-stats", "row-groups"],
)
def test_one_file_per_trial_reads_as_one_file(tmp_path, one_file, options):
    _write_per_trial(_rows(), tmp_path, **options)
    for best_by, frames in one_file.items():
        _assert_same(_frames(tmp_path, best_by=best_by), frames)


def test_bins_come_from_the_scan_that_read_the_scalars(tmp_path, one_file, monkeypatch):
    """Per-trial files: the bins at the chosen epochs are kept from the scan that read every
    row's scalars (study.results.read.Keep); no file is read again for them."""
    from study.results import rows as results_rows

    again = []
    real = results_rows._read
    monkeypatch.setattr(results_rows, "_read", lambda *a: again.append(a[2]) or real(*a))
    _write_per_trial(_rows(), tmp_path)
    for best_by, frames in one_file.items():
        _assert_same(_frames(tmp_path, best_by=best_by), frames)
    assert again == []


@pytest.mark.parametrize("batch", [1, 500])
def test_a_compacted_study_with_later_per_trial_files_reads_as_one_file(
    tmp_path, one_file, monkeypatch, batch
):
    """Each trial's first epochs compacted, the later ones (and epoch 2 again) in per-trial
    files, one file per scan or all in one: the chosen rows come partly from the scans, partly
    from the compacted file's shortlist or row groups; the same frames as one file."""
    from study.results import compact
    from study.results import read as results_read

    monkeypatch.setattr(results_read, "BATCH_FILES", batch)
    rows = _rows()
    _write_per_trial(rows[rows["epoch"] <= 2], tmp_path / "results")
    compact.compact(tmp_path)
    _write_per_trial(rows[rows["epoch"] >= 2], tmp_path / "results")
    for best_by, frames in one_file.items():
        _assert_same(_frames(tmp_path, best_by=best_by), frames)


def test_bins_read_in_batches_of_files_give_the_same_frames(tmp_path, one_file, monkeypatch):
    from study.results import read as results_read

    monkeypatch.setattr(results_read, "BATCH_FILES", 5)  # 12 files: batches of 5, 5 and 2
    _write_per_trial(_rows(), tmp_path)
    for best_by, frames in one_file.items():
        _assert_same(_frames(tmp_path, best_by=best_by), frames)


def test_threads_give_the_same_frames(tmp_path, one_file):
    _write_per_trial(_rows(), tmp_path)
    for threads in (1, 3):
        got = read_results(tmp_path, "best", columns=[*BINS], every=["test_acc"], threads=threads)
        assert got.selected["epoch"].tolist() == one_file["val_acc"]["best"]["epoch"].tolist()
        assert len(got.every) == len(one_file["val_acc"]["all"]) and len(got.files) == 12


def test_other_stored_types_are_cast(tmp_path, one_file):
    """Strings stored as large strings or dictionaries, integers as int32: the contract's
    types come back, and statistics are not trusted for them."""
    table = synthetic.to_arrow(_rows())
    for name in ("trial_id", "status"):
        table = table.set_column(
            table.schema.get_field_index(name), name, table[name].cast(pa.large_string())
        )
    for name in ("dataset", "message"):
        table = table.set_column(
            table.schema.get_field_index(name), name, table[name].dictionary_encode()
        )
    table = table.set_column(
        table.schema.get_field_index("epoch"), "epoch", table["epoch"].cast(pa.int32())
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    _assert_same(_frames(tmp_path), one_file["val_acc"])


def test_float_statistics_are_not_trusted(tmp_path):
    """Statistics skip NaN: an α of NaN beside 1.0 in one file must stay NaN."""
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:2], 1), 2)
    table = synthetic.to_arrow(rows)
    alpha = pa.array([np.nan, np.nan, 1.0, 1.0], from_pandas=False)
    pq.write_table(
        table.set_column(table.schema.get_field_index("alpha"), "alpha", alpha),
        tmp_path / "r.parquet",
    )
    df = load_results(tmp_path)
    assert np.isnan(df["alpha"].iloc[0]) and df["alpha"].iloc[1] == 1.0


def test_a_trial_spread_over_files_gets_the_bins_of_its_chosen_row(tmp_path):
    """a.parquet has epochs 1–3 (best: 2); b.parquet reports epoch 2 again, worse. The chosen
    epoch is then 3, whose bins a.parquet's own choice (epoch 2) did not keep."""
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:1], 1), 3)
    rows["val_acc"] = [0.5, 0.9, 0.7]
    again = rows.iloc[[1]].assign(
        val_acc=0.6, test_bin_count=rows["test_bin_count"].iloc[[0]].values
    )
    write_atomic(synthetic.to_arrow(rows), tmp_path / "a.parquet")
    write_atomic(synthetic.to_arrow(again), tmp_path / "b.parquet")
    best = load_results(tmp_path, "best", columns=BINS)
    assert best["epoch"].tolist() == [3]
    assert np.array_equal(best["test_bin_count"].iloc[0], rows["test_bin_count"].iloc[2])
    every = load_results(tmp_path, "all", columns=BINS)
    assert every["epoch"].tolist() == [1, 2, 3]  # epoch 2 from b.parquet: its last report
    assert np.array_equal(every["test_bin_count"].iloc[1], rows["test_bin_count"].iloc[0])


def test_report_of_a_study_directory_lists_the_skipped_file(tmp_path, capsys):
    from analysis.cli import main

    _good(tmp_path / "study" / "results")
    (tmp_path / "study" / "results" / "zero.parquet").write_bytes(b"")
    assert main(["report", str(tmp_path / "study")]) == 0
    report = capsys.readouterr().out.strip()
    assert report == str(tmp_path / "study" / "report" / "report.md")
    text = Path(report).read_text()
    assert "Files skipped" in text and "zero.parquet`: unreadable" in text

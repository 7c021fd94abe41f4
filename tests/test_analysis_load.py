"""analysis.load: reading the Parquet contract, epoch choice, variant labels, aggregation."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_fixtures import grid, write

from analysis import aggregate, load_results, synthetic
from analysis.load import ResultsError
from study.results import (
    COLUMN_NAMES,
    SCHEMA_VERSION,
    STATUS_DIVERGED,
    STATUS_ERROR,
    STATUS_OK,
    write_atomic,
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


def test_refuses_empty_missing_and_foreign(tmp_path):
    with pytest.raises(ResultsError, match="no .parquet"):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="no such"):
        load_results(tmp_path / "nope")
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "foreign.parquet")
    with pytest.raises(ResultsError, match="foreign.parquet.*no schema_version"):
        load_results(tmp_path)


def test_refuses_another_schema_version(tmp_path):
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:1], 1), 2)
    rows["schema_version"] = SCHEMA_VERSION + 1
    write_atomic(synthetic.to_arrow(rows), tmp_path / "new.parquet")
    with pytest.raises(ResultsError, match=f"new.parquet.*schema version {SCHEMA_VERSION + 1}"):
        load_results(tmp_path)


def test_refuses_wrong_column_types(tmp_path):
    pq.write_table(pa.table({"epoch": ["one"], "schema_version": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(ResultsError, match="schema version"):
        load_results(tmp_path)


def test_duplicate_epoch_rows_count_once(tmp_path):
    rows = synthetic.epoch_rows(synthetic.trials(grid(["svhn"], ["resnet18"])[:1], 1), 2)
    write_atomic(synthetic.to_arrow(rows), tmp_path / "a.parquet")
    write_atomic(synthetic.to_arrow(rows), tmp_path / "b.parquet")
    assert len(load_results(tmp_path, "all")) == 2
    assert isinstance(load_results(tmp_path), pd.DataFrame)

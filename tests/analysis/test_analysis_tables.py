"""analysis.tables: Tables 4/5 (ranks, Avg. gain, rendering) and the Table 1 view."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import grid, paper_table_cells, write

from analysis import load_results, method_table, paper, synthetic, table1
from analysis.variants import PERCENT
from study.results.files import write_atomic


@pytest.fixture(scope="module")
def table4(tmp_path_factory):
    """Synthetic results whose calibrated ECE is the paper's Table 4, CIFAR-10 and CIFAR-100."""
    cells = paper_table_cells("Table 4", ["cifar10", "cifar100"])
    directory = write(cells, tmp_path_factory.mktemp("table4"), epochs=2, files=2)
    return cells, method_table(load_results(directory), "test_cal_ece")


def _paper_grid(cells: pd.DataFrame, column: str) -> pd.DataFrame:
    return cells.pivot(index=["dataset", "model"], columns="variant", values=column)


def test_table4_reproduces_the_papers_ranks_except_ties(table4):
    cells, table = table4
    paper_ranks = _paper_grid(cells, "rank")
    values = _paper_grid(cells, "test_cal_ece").round(6)
    ours = table.ranks.rename(index=str).loc[paper_ranks.index, paper_ranks.columns]
    tied = values.apply(lambda row: row.duplicated(keep=False), axis=1)
    assert tied.to_numpy().sum() == 8  # printed ties, all in CIFAR-10 (ResNet-18, 110, 152)
    compared = ~tied.to_numpy()
    np.testing.assert_array_equal(ours.to_numpy()[compared], paper_ranks.to_numpy()[compared])


def test_table4_reproduces_the_papers_avg_gain(table4):
    _, table = table4
    gains = paper.paper_gains()
    gains = gains[(gains["table"] == "Table 4") & gains["dataset"].isin(["cifar10", "cifar100"])]
    for row in gains.itertuples():
        ours = table.avg_gain.loc[row.dataset, row.variant]
        assert abs(ours - row.gain) * PERCENT <= 0.01 + 1e-9, (row.dataset, row.variant)


def test_values_are_the_mean_over_seeds_and_accuracy_ranks_high_first(tmp_path):
    cells = grid(["svhn"], ["resnet18"], [("erm", None, None), ("mixup", 1.0, None)])
    frame = synthetic.trials(cells, 2)
    rows = synthetic.epoch_rows(frame, 1)
    rows["test_acc"] = [0.90, 0.92, 0.95, 0.93]  # ERM seeds 0, 1; mixup seeds 0, 1
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r.parquet")
    table = method_table(load_results(tmp_path), "test_acc")
    assert table.values.loc[("svhn", "resnet18")].tolist() == pytest.approx([0.91, 0.94])
    assert table.ranks.loc[("svhn", "resnet18")].tolist() == [2, 1]
    assert table.n.loc[("svhn", "resnet18")].tolist() == [2, 2]
    assert table.avg_gain.loc["svhn", "Mixup (α=1.0)"] == pytest.approx(0.03)
    markdown = table.to_markdown()
    assert "**94.00 ± 1.41 (1)**" in markdown and "<u>91.00 ± 1.41 (2)</u>" in markdown
    assert "| +3.00 |" in markdown


def test_renderings_carry_the_same_cells(table4):
    _, table = table4
    markdown, latex = table.to_markdown(), table.to_latex()
    assert "**0.56 (1)**" in markdown and "<u>0.59 (2)</u>" in markdown  # CIFAR-10 ResNet-18
    assert "\\textbf{0.56 (1)}" in latex and "\\underline{0.59 (2)}" in latex
    assert "MIT-A ($\\Delta\\lambda$>0.5)" in latex
    assert markdown.count("Avg. gain") == 2
    long = pd.read_csv(io.StringIO(table.to_csv()))
    assert len(long) == 2 * 4 * 11
    row = long[(long["model"] == "resnet50") & (long["variant"] == "Mixup-IO")]
    assert row[row["dataset"] == "cifar10"]["mean"].item() == pytest.approx(0.0046)


def test_tables_refuse_several_rows_per_trial(tmp_path):
    write(grid(["svhn"], ["resnet18"]), tmp_path, epochs=3)
    with pytest.raises(ValueError, match="one row per trial"):
        method_table(load_results(tmp_path, "all"), "test_acc")
    with pytest.raises(ValueError, match="unknown metric"):
        method_table(load_results(tmp_path), "test_conf")


def test_table1_marks_better_worse_and_noise(tmp_path):
    variants = [("erm", None, None), ("mixup", 0.1, None), ("mixup", 1.0, None)]
    frame = synthetic.trials(grid(["cifar10"], ["resnet18"], variants), 4)
    rows = synthetic.epoch_rows(frame, 1)
    noise = np.array([0.001, -0.001, 0.002, -0.002])
    erm_cal, cal_01, cal_10 = 0.010 + noise, 0.020 + noise, 0.0095 + noise[::-1] * 3
    rows["test_cal_ece"] = np.concatenate([erm_cal, cal_01, cal_10])
    rows["test_ece"] = np.concatenate([np.full(4, 0.05), np.full(4, 0.02), np.full(4, 0.08)])
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r.parquet")
    view = table1(load_results(tmp_path))
    marks = view.marks.loc["cifar10"]
    assert marks.loc["test_cal_ece", ("Mixup (α=0.1)", "resnet18")] == "▼"  # worse, clearly
    assert marks.loc["test_cal_ece", ("Mixup (α=1.0)", "resnet18")] == "△"  # better, in noise
    assert marks.loc["test_ece", ("Mixup (α=0.1)", "resnet18")] == "▲"
    assert marks.loc["test_ece", ("Mixup (α=1.0)", "resnet18")] == "▼"
    assert marks.loc["test_ece", ("ERM", "resnet18")] == ""
    assert view.values.loc[("cifar10", "test_ece"), ("ERM", "resnet18")] == pytest.approx(0.05)
    assert "2.00▲" in view.to_markdown()


def test_table1_with_a_cell_one_dataset_lacks(tmp_path):
    """A mixup α run on one dataset only: the other dataset's cell is empty, not a crash
    (`analysis report` failed with a TypeError on benchmarks/bench_analysis.py's results)."""
    variants = [("erm", None, None), ("mixup", 1.0, None)]
    both = grid(["cifar10", "cifar100"], ["resnet18"], variants)
    one = grid(["cifar10"], ["resnet18"], [("mixup", 0.1, None)])
    frame = synthetic.trials(pd.concat([both, one], ignore_index=True), 2)
    write_atomic(synthetic.to_arrow(synthetic.epoch_rows(frame, 1)), tmp_path / "r.parquet")
    view = table1(load_results(tmp_path))
    cell = ("Mixup (α=0.1)", "resnet18")
    assert view.marks.loc[("cifar100", "test_ece"), cell] == ""
    assert np.isnan(view.values.loc[("cifar100", "test_ece"), cell])
    assert "nan" not in view.to_markdown().lower()

"""analysis.paper: the transcribed Tables 1, 4, 5 are self-consistent; compare() lines us up."""

from __future__ import annotations

import pytest
from analysis_fixtures import paper_table_cells, write

from analysis import load_results, paper
from analysis.variants import PERCENT


def test_tables_have_every_printed_cell():
    cells = paper.paper_cells()
    assert cells.groupby("table").size().to_dict() == {
        "Table 1": 4 * 3 * 4 * 4,  # datasets × metrics × (ERM + 3 α) × backbones
        "Table 4": (4 + 4 + 4 + 6) * 11,  # backbones of the four datasets × columns
        "Table 5": (4 + 4 + 4 + 6) * 11,
    }
    assert cells["value"].between(0, 1).all()  # fractions, like our results
    assert set(cells["variant"]) >= {"MIT-A (Δλ>0)", "MIT-L (Δλ>0.5)", "MIT-A (Δλ>0.5)"}


@pytest.mark.parametrize("table", ["Table 4", "Table 5"])
def test_printed_ranks_agree_with_printed_values(table):
    """A transcription check: in every row, a strictly better value has a better rank."""
    cells = paper.paper_cells()
    cells = cells[cells["table"] == table]
    higher = table == "Table 5"
    for _, row in cells.groupby(["dataset", "model"]):
        values, ranks = row["value"].to_numpy(), row["rank"].to_numpy()
        assert sorted(ranks) == list(range(1, 12))
        for v, r in zip(values, ranks, strict=True):
            better = values > v if higher else values < v
            assert (ranks[better] < r).all()


@pytest.mark.parametrize(("table", "tolerance"), [("Table 4", 0.011), ("Table 5", 0.07)])
def test_printed_avg_gain_agrees_with_printed_values(table, tolerance):
    """Avg. gain recomputed from the rounded cells (one decimal in Table 5, hence looser)."""
    cells = paper.paper_cells()
    wide = cells[cells["table"] == table].pivot(
        index=["dataset", "model"], columns="variant", values="value"
    )
    gains = wide.sub(wide["ERM"], axis=0).groupby(level="dataset").mean()
    for row in paper.paper_gains().query("table == @table").itertuples():
        assert abs(gains.loc[row.dataset, row.variant] - row.gain) * PERCENT <= tolerance


def test_table1_cal_ece_matches_table4():
    cells = paper.paper_cells()
    keys = ["dataset", "model", "variant"]
    t1 = cells.query("table == 'Table 1' and metric == 'test_cal_ece'").set_index(keys)["value"]
    t4 = cells.query("table == 'Table 4'").set_index(keys)["value"]
    shared = t1.index.intersection(t4.index)
    assert len(shared) == 4 * 4 * 4
    assert (t1.loc[shared] == t4.loc[shared]).all()


def test_compare_puts_ours_beside_the_papers(tmp_path):
    cells = paper_table_cells("Table 5", ["svhn"])
    cells["test_acc"] += 0.01  # we are one point better everywhere
    comparison = paper.compare(load_results(write(cells, tmp_path)))
    table5 = comparison[comparison["table"] == "Table 5"]
    assert len(table5) == 4 * 11
    assert table5["diff"].to_numpy() == pytest.approx(0.01)
    assert (table5["n"] == 1).all()
    markdown = paper.comparison_markdown(table5.head(1))
    assert "| Table 5 | Accuracy | svhn | resnet18 | ERM | 96.40 | 95.40 | +1.00 |" in markdown

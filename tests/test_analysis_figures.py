"""analysis.figures: every figure is written, non-empty, and plots the data it should."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_fixtures import grid, write

from analysis import figures, load_results

VARIANTS = [
    ("erm", None, None),
    ("mixup", 0.1, None),
    ("mixup", 1.0, None),
    ("mixup_dt", 1.0, None),
    ("mixup_io", 1.0, None),
    ("mit_a", 1.0, 0.5),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two datasets × two backbones; accuracy and cal. ECE planted per variant (no noise)."""
    cells = grid(["svhn", "cifar10"], ["resnet18", "resnet50"], VARIANTS)
    index = np.arange(len(cells))
    cells["test_acc"] = 0.70 + 0.01 * index
    cells["test_cal_ece"] = 0.010 + 0.001 * (index * 7 % len(cells))
    cells["test_conf"] = 0.9
    directory = write(cells, tmp_path_factory.mktemp("fig") / "results", seeds=2, epochs=3)
    return cells, load_results(directory), load_results(directory, "all")


def _written(path) -> None:
    assert path.exists() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_alpha_sweep_plots_mixup_means_and_erm(results, tmp_path):
    cells, last, _ = results
    data = figures.alpha_sweep(last, tmp_path / "f1.png")
    _written(tmp_path / "f1.png")
    acc = data[data["metric"] == "test_acc"].set_index(["dataset", "backbone", "variant"])
    expect = cells.set_index(["dataset", "model", "method", "alpha"])["test_acc"]
    assert acc.loc[("svhn", "resnet18", "Mixup (α=0.1)"), "mean"] == pytest.approx(
        expect.loc[("svhn", "resnet18", "mixup", 0.1)]
    )
    assert np.isnan(acc.loc[("svhn", "resnet18", "ERM"), "alpha"])
    assert set(data["variant"]) == {"ERM", "Mixup (α=0.1)", "Mixup (α=1.0)"}
    assert (data["n"] == 2).all()


def test_dilemma_marks_the_pareto_front(results, tmp_path):
    _, last, _ = results
    data = figures.dilemma(last, tmp_path / "d.png")
    _written(tmp_path / "d.png")
    assert len(data) == len(last)
    for _, rows in data.groupby("dataset", observed=True):
        front = rows[rows["on_front"]]
        best_acc = rows["test_acc"].max()
        assert (front["test_acc"] == best_acc).any()  # the most accurate trial is on the front
        lowest = rows.loc[rows["test_cal_ece"].idxmin()]
        assert front["test_cal_ece"].min() == lowest["test_cal_ece"]


def test_epoch_curves_average_each_epoch(results, tmp_path):
    _, _, every = results
    data = figures.epoch_curves(every, tmp_path / "c.png")
    _written(tmp_path / "c.png")
    assert sorted(data["epoch"].unique()) == [1, 2, 3]
    one = data[(data["dataset"] == "svhn") & (data["variant"] == "ERM") & (data["epoch"] == 2)]
    expect = every[(every["dataset"] == "svhn") & (every["variant"] == "ERM")]
    expect = expect[expect["epoch"] == 2]["test_acc"].mean()
    assert one.set_index("metric").loc["test_acc", "mean"] == pytest.approx(expect)


def test_ablation_colours_by_target_kind(results, tmp_path):
    _, last, _ = results
    data = figures.ablation(last, tmp_path / "a.png")
    _written(tmp_path / "a.png")
    kinds = data.drop_duplicates("variant").set_index("variant")["targets"].to_dict()
    assert kinds == {
        "ERM": "one-hot",
        "Mixup (α=0.1)": "mixed",
        "Mixup (α=1.0)": "mixed",
        "Mixup-DT": "mixed",
        "Mixup-IO": "one-hot",
    }
    conf = data[data["metric"] == "test_conf"]["mean"]
    assert conf.to_numpy() == pytest.approx(0.9)


def test_figures_without_their_data_write_nothing(results, tmp_path):
    _, last, _ = results
    erm_only = last[last["method"] == "erm"]
    assert figures.alpha_sweep(erm_only, tmp_path / "f1.png").empty
    assert figures.ablation(erm_only, tmp_path / "a.png").empty
    assert not list(tmp_path.iterdir())


def test_reliability_diagrams_are_skipped_with_a_note(results):
    _, last, _ = results
    note = figures.reliability_diagrams(last)
    assert note.startswith("Reliability diagrams skipped") and "test_bin_" in note

"""analysis.figures: every figure is written, non-empty, and plots the data it should."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_fixtures import grid, write

from analysis import figures, load_results, plotting, reliability, report, synthetic
from analysis.load import read_rows, result_files

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


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Three files of 4-epoch trials; t000004 diverged at epoch 3, so its best epoch is 2."""
    directory = tmp_path_factory.mktemp("bins")
    frame = synthetic.trials(grid(["svhn"], ["resnet18", "resnet50"], VARIANTS[:3]), 2)
    for i, part in enumerate(synthetic.chunks(frame, 3)):
        rows = synthetic.epoch_rows(part, 4, noise=0.01, seed=i)
        rows = synthetic.fail_trials(rows, ["t000004"], "diverged", "loss is nan", epoch=3)
        pq.write_table(synthetic.to_arrow(rows), directory / f"part-{i}.parquet")
    return directory


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


DILEMMA_POINTS = [  # dataset, method, alpha, test_acc, test_cal_ece, on the front (by hand)
    ("svhn", "erm", None, 0.90, 0.020, True),
    ("svhn", "mixup", 0.1, 0.92, 0.030, True),
    ("svhn", "mixup", 0.5, 0.91, 0.040, False),  # beaten by α=0.1: more accurate, lower ECE
    ("svhn", "mixup", 1.0, 0.89, 0.010, True),
    ("svhn", "mit_a", 1.0, 0.90, 0.025, False),  # as accurate as ERM, higher ECE
    ("cifar10", "erm", None, 0.95, 0.010, True),  # beats every other: a front of one point
    ("cifar10", "mixup", 1.0, 0.94, 0.020, False),
]


def test_dilemma_marks_the_pareto_front(tmp_path):
    keys = ["dataset", "method", "alpha", "test_acc", "test_cal_ece", "front"]
    cells = pd.DataFrame(DILEMMA_POINTS, columns=keys).assign(model="resnet18", margin=np.nan)
    write(cells.drop(columns="front"), tmp_path / "r", epochs=1)
    data = figures.dilemma(load_results(tmp_path / "r"), tmp_path / "d.png")
    _written(tmp_path / "d.png")
    got = data.set_index(["dataset", "test_acc", "test_cal_ece"])["on_front"]
    want = cells.set_index(["dataset", "test_acc", "test_cal_ece"])["front"]
    assert got.loc[want.index].tolist() == want.tolist()
    assert data.groupby("dataset")["on_front"].sum().to_dict() == {"svhn": 3, "cifar10": 1}


def test_each_method_has_its_own_colour(results):
    _, last, _ = results
    many = pd.DataFrame(
        {"method": ["mixup"] * 5 + ["cutmix", "erm"], "variant": [f"v{i}" for i in range(7)]}
    )
    many["variant"] = pd.Categorical(many["variant"], ordered=True)
    for frame in (last, many):
        styles = plotting.variant_styles(frame)
        colours = styles.groupby("method")["colour"].agg(["nunique", "first"])
        assert (colours["nunique"] == 1).all() and colours["first"].is_unique
    styles = plotting.variant_styles(last).loc[["Mixup (α=0.1)", "Mixup (α=1.0)"]]
    assert styles["marker"].is_unique and styles["legend"].tolist() == list(styles.index)
    searched = plotting.variant_styles(many)  # more than MAX_MARKED variants: one legend entry
    assert set(searched.loc[searched["method"] == "mixup", "legend"]) == {"Mixup (5 variants)"}


def test_figure1_needs_two_alphas(results, tmp_path):
    _, last, _ = results
    one_alpha = last[(last["method"] != "mixup") | (last["alpha"] == 1.0)]
    assert figures.alpha_sweep(one_alpha, tmp_path / "f1.png").empty
    assert not (tmp_path / "f1.png").exists()


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


# Reliability diagrams: the pooled bins, a hand-built example, and results without bins.

HAND_BINS = [  # dataset, variant, status, count, acc, conf (3 bins: [0, ⅓], (⅓, ⅔], (⅔, 1])
    ("svhn", "ERM", "ok", [2, 0, 8], [0.5, np.nan, 0.75], [0.2, np.nan, 0.9]),
    ("svhn", "ERM", "ok", [0, 5, 5], [np.nan, 0.4, 1.0], [np.nan, 0.5, 0.8]),
    ("svhn", "ERM", "diverged", None, None, None),  # null bins: left out
    ("svhn", "Mixup (α=1.0)", "ok", [0, 0, 4], [np.nan, np.nan, 1.0], [np.nan, np.nan, 0.9]),
]


def _hand_frame() -> pd.DataFrame:
    """HAND_BINS as a load_results-like frame, after TS the same bins as raw."""
    keys = ["dataset", "variant", "status"]
    rows = [dict(zip(keys, row[:3], strict=True)) for row in HAND_BINS]
    for row, (*_, count, acc, conf) in zip(rows, HAND_BINS, strict=True):
        for prefix in reliability.STAGES.values():
            row |= {f"{prefix}count": count, f"{prefix}acc": acc, f"{prefix}conf": conf}
    return pd.DataFrame(rows)


def test_pooled_bins_and_their_ece_by_hand(tmp_path):
    data = figures.reliability_diagrams(_hand_frame(), tmp_path / "r.png")
    _written(tmp_path / "r.png")
    erm = data[(data["variant"] == "ERM") & (data["stage"] == "raw")]
    assert erm["count"].tolist() == [2, 5, 13]  # 10 + 10 samples; the diverged row left out
    assert erm["acc"].to_numpy() == pytest.approx([0.5, 0.4, (8 * 0.75 + 5 * 1.0) / 13])
    assert erm["conf"].to_numpy() == pytest.approx([0.2, 0.5, (8 * 0.9 + 5 * 0.8) / 13])
    assert erm["lo"].to_numpy() == pytest.approx([0, 1 / 3, 2 / 3])
    # (2·|0.5 − 0.2| + 5·|0.4 − 0.5| + 13·|11/13 − 11.2/13|) / 20
    assert erm["ece"].to_numpy() == pytest.approx((0.6 + 0.5 + 0.2) / 20)
    assert (erm["trials"] == 2).all()
    mixup = data[(data["variant"] == "Mixup (α=1.0)") & (data["stage"] == "after TS")]
    assert mixup["count"].tolist() == [0, 0, 4] and np.isnan(mixup["acc"].iloc[0])
    assert mixup["ece"].iloc[0] == pytest.approx(0.1)


def test_ece_from_bins_of_one_trial():
    _, _, _, count, acc, conf = HAND_BINS[0]
    assert reliability.ece_from_bins(count, acc, conf) == pytest.approx((0.6 + 1.2) / 10)


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[16:24]  # IHDR: width, height (big-endian)
    return int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")


def test_reliability_diagrams_pool_every_trial(results, tmp_path):
    _, last, _ = results
    data = figures.reliability_diagrams(last, tmp_path / "r.png")
    _written(tmp_path / "r.png")
    totals = data.groupby(["dataset", "variant", "stage"], observed=True)["count"].sum()
    assert (totals == 4 * synthetic.TEST_SAMPLES).all()  # 2 backbones × 2 seeds pooled
    assert len(totals) == 2 * len(VARIANTS) * 2 and (data["trials"] == 4).all()
    width, height = _png_size(tmp_path / "r.png")  # a grid (2 datasets × 2 rows of 4), no strip
    assert width < 1800 and height > width / 2


def test_pooled_ece_is_the_planted_ece(tmp_path):
    """Seeds of one cell are identical (no noise), so their pooled bins have the cell's own
    ECE: the value planted in the synthetic results, raw and after TS."""
    variants = [("erm", None, None), ("mixup", 1.0, None), ("cutmix", 1.0, None)]
    cells = grid(["svhn"], ["resnet18"], variants)
    cells["test_acc"], cells["test_conf"] = [0.90, 0.91, 0.92], [0.93, 0.88, 0.935]
    cells["test_ece"], cells["test_cal_ece"] = [0.04, 0.035, 0.05], [0.012, 0.02, 0.015]
    last = load_results(write(cells, tmp_path / "r", seeds=2, epochs=2))
    data = figures.reliability_diagrams(last, tmp_path / "r.png")
    ece = data.drop_duplicates(["variant", "stage"]).set_index(["variant", "stage"])["ece"]
    assert ece.loc[["ERM", "Mixup (α=1.0)", "CutMix"], "raw"].to_numpy() == pytest.approx(
        [0.04, 0.035, 0.05]
    )
    assert ece.loc[["ERM", "Mixup (α=1.0)", "CutMix"], "after TS"].to_numpy() == pytest.approx(
        [0.012, 0.02, 0.015]
    )


def test_synthetic_bins_match_accuracy_and_ece():
    acc, conf, ece = (
        np.array([0.9, 0.7, 0.95]),
        np.array([0.93, 0.6, 0.99]),
        np.array([0.03, 0.1, 0.05]),
    )
    bins = synthetic.reliability_bins(acc, conf, ece)
    count = bins["count"]
    assert (count.sum(1) == synthetic.TEST_SAMPLES).all()
    pooled_acc = np.nansum(count * bins["acc"], 1) / count.sum(1)
    assert pooled_acc == pytest.approx(acc)
    assert reliability.ece_from_bins(count, bins["acc"], bins["conf"]) == pytest.approx(ece)


@pytest.mark.parametrize("epochs", ["last", "best"])
def test_bins_are_read_at_the_selected_epoch(results_dir, epochs):
    chosen = load_results(results_dir, epochs, columns=reliability.BIN_COLUMNS)
    every = load_results(results_dir, "all", columns=reliability.BIN_COLUMNS)
    diverged = chosen.set_index("trial_id").loc["t000004"]
    assert diverged["epoch"] == (3 if epochs == "last" else 2)
    assert (diverged["test_bin_count"] is None) == (epochs == "last")  # null on diverged rows
    keys = list(zip(chosen["trial_id"], chosen["epoch"], strict=True))
    expect = every.set_index(["trial_id", "epoch"]).loc[keys]
    for column in reliability.BIN_COLUMNS:
        for got, want in zip(chosen[column], expect[column], strict=True):
            assert (got is None and want is None) or np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("absent", [False, True], ids=["null", "absent"])
def test_results_without_bins_get_a_note(tmp_path, absent):
    cells = grid(["svhn"], ["resnet18"], VARIANTS[:2])
    frame = synthetic.trials(cells, 1)
    table = synthetic.to_arrow(synthetic.epoch_rows(frame, 2, bins=False))
    if absent:  # written before the schema had the columns
        table = table.drop_columns(reliability.BIN_COLUMNS)
    pq.write_table(table, tmp_path / "part.parquet")
    assert figures.reliability_diagrams(load_results(tmp_path), tmp_path / "r.png").empty
    assert not (tmp_path / "r.png").exists()
    text = report.build_report(tmp_path, tmp_path / "report").read_text()
    assert "### Reliability diagrams\n\nNot drawn: these results have no per-bin statistics" in text
    assert "reliability.png" not in text


def test_read_rows_keeps_the_order_asked_for(results_dir):
    columns = ["trial_id", "epoch", "test_bin_count"]
    positions = np.array([13, 0, 40, 7])  # across the three files, not ascending
    got = read_rows(results_dir, columns, positions).to_pylist()
    every = pa.concat_tables(pq.read_table(f, columns=columns) for f in result_files(results_dir))
    assert got == every.take(positions).to_pylist()

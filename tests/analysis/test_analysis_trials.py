"""analysis.trials: a searched method is one table column (its best trial on validation)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from analysis_fixtures import grid, write

from analysis import load_results, trials
from analysis.cli import main

ALPHAS = [0.11, 0.23, 0.37, 0.52, 0.81, 1.9]
SPEC = {  # what `study run` saves beside results/: a TPE search over mixup's α
    "name": "searched",
    "search": {
        "sampler": "tpe",
        "objectives": [
            {"metric": "val_acc", "mode": "max"},
            {"metric": "val_cal_ece", "mode": "min"},
        ],
    },
    "space": {
        "method.name": {"choices": ["erm", "mixup"]},
        "method.alpha": {"float": [0.1, 2.0], "log": True, "when": {"method.name": ["mixup"]}},
    },
}


def _searched_cells(alphas: list[float]) -> pd.DataFrame:
    """ERM and mixup at each α, one trial each. α=0.37 and α=0.52 tie on val_acc; 0.37 has the
    lower val_cal_ece, so it wins. α=1.9 has the best *test* accuracy: it must not win."""
    cells = grid(
        ["digits"], ["small_cnn"], [("erm", None, None)] + [("mixup", a, None) for a in alphas]
    )
    cells["val_acc"] = [0.90] + [0.95 if a in (0.37, 0.52) else 0.93 for a in alphas]
    cells["val_cal_ece"] = [0.02] + [0.010 if a == 0.37 else 0.015 for a in alphas]
    cells["test_acc"] = [0.90] + [0.97 if a == 1.9 else 0.90 + a / 10 for a in alphas]
    return cells


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("searched")
    write(_searched_cells(ALPHAS), root / "results", epochs=2)
    (root / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    return root


def test_spec_names_the_searched_methods_and_objectives(study):
    search = trials.read_search(study / "results")
    assert search.methods == {"mixup"}
    assert search.objectives == (("val_acc", "max"), ("val_cal_ece", "min"))
    assert trials.read_search(study) == search  # the study dir itself works too


def test_a_range_for_every_method_leaves_erm_alone(tmp_path):
    spec = {**SPEC, "space": {"method.alpha": {"float": [0.1, 2.0]}}}  # no `when`: all methods
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    df = load_results(write(_searched_cells(ALPHAS[:2]), tmp_path / "results", epochs=1))
    assert trials.searched(df, trials.read_search(tmp_path / "results")) == ["mixup"]


def test_searched_method_is_its_best_trial_on_validation(study):
    df = load_results(study / "results")
    view = trials.collapse_searched(df, trials.read_search(study / "results"))
    assert [str(v) for v in view["variant"].cat.categories] == ["ERM", "Mixup (best of 6)"]
    best = view[view["method"] == "mixup"]
    assert len(best) == 1 and best["alpha"].item() == 0.37  # val tie broken by val_cal_ece
    assert best["test_acc"].item() == pytest.approx(0.937)  # not α=1.9's better test accuracy


def test_a_searched_study_report_has_one_column_per_method(study):
    assert main(["report", str(study / "results")]) == 0
    text = (study / "report" / "report.md").read_text()
    header = "| dataset | model | ERM | Mixup (best of 6) |"
    assert text.count(header) == 5  # the five metric tables
    assert "α=0.11" not in text.split("## Tables 4 and 5")[1]
    assert "## Searched methods: one column each" in text
    assert "| digits | small_cnn | 0 | 0 | Mixup (best of 6) | t000003 | 0.37 |" in text
    table = pd.read_csv(study / "report" / "tables" / "test_acc.csv")
    assert table["variant"].tolist() == ["ERM", "Mixup (best of 6)"]


def test_without_a_spec_many_values_mean_searched(tmp_path):
    many = load_results(write(_searched_cells(ALPHAS), tmp_path / "many", epochs=1))
    assert trials.searched(many, trials.read_search(tmp_path / "many")) == ["mixup"]
    few = load_results(write(_searched_cells([0.1, 0.5, 1.0]), tmp_path / "few", epochs=1))
    assert trials.searched(few, trials.Search()) == []  # the paper's grid keeps its α columns
    assert trials.collapse_searched(few, trials.Search()) is few


def test_curves_follow_the_chosen_trials(study):
    read = load_results(study / "results", "all")
    view = trials.collapse_searched(load_results(study / "results"), trials.read_search(study))
    curves = trials.curves_of(read, view)
    assert sorted(curves["trial_id"].unique()) == ["t000000", "t000003"]
    assert set(curves["variant"].astype(str)) == {"ERM", "Mixup (best of 6)"}
    assert len(curves) == 2 * 2  # two trials × two epochs

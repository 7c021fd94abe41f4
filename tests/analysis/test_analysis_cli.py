"""`analysis report`: the report's content, and one-line refusals with exit status 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_fixtures import grid, paper_table_cells, write

from analysis import synthetic
from analysis.cli import main
from study.results.files import write_atomic
from study.results.schema import SCHEMA_VERSION, STATUS_ERROR


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report on Table 5's SVHN cells, 2 seeds, one trial errored at its second epoch."""
    root = tmp_path_factory.mktemp("study")
    cells = paper_table_cells("Table 5", ["svhn"])
    frame = synthetic.trials(cells, 2)
    rows = synthetic.epoch_rows(frame, 3, noise=0.001)
    rows = synthetic.fail_trials(rows, ["t000003"], STATUS_ERROR, "boom", epoch=2)
    write_atomic(synthetic.to_arrow(rows), root / "results" / "part.parquet")
    assert main(["report", str(root / "results")]) == 0
    return root / "report"


def test_report_holds_tables_figures_and_coverage(report):
    text = (report / "report.md").read_text()
    for heading in [
        "## What the study covered",
        "### Calibrated ECE (%) (paper: Table 4)",
        "### Accuracy (%) (paper: Table 5)",
        "## Table 1: ERM against mixup",
        "## Differences from ERM, with 95% intervals",
        "## Beside the paper",
        "![Figure 1: mixup's α](figure1_alpha.png)",
        "![The accuracy–calibration dilemma](dilemma.png)",
        "![Training curves](epoch_curves.png)",
        "![Figure 2: ablations](figure2_ablation.png)",
        "![Reliability diagrams](reliability.png)",
    ]:
        assert heading in text
    assert "- trials: 88 (87 ok, 1 error)" in text
    assert "- seeds: 0, 1" in text and "- models: resnet18, resnet50, resnet110, resnet152" in text
    assert "| t000003 | svhn | resnet18 | Mixup (α=0.1) | 1 | 2 | error | boom |" in text
    assert "Skipped:" not in text
    for name in ["figure1_alpha", "dilemma", "epoch_curves", "figure2_ablation", "reliability"]:
        assert (report / f"{name}.png").stat().st_size > 5000
    assert (report / "tables" / "test_cal_ece.tex").read_text().startswith("\\begin{tabular}")


def test_report_compares_with_the_paper(report):
    text = (report / "report.md").read_text()
    assert "- Table 5 (Accuracy): 44 cells" in text
    cell = (
        r"\| Table 5 \| Accuracy \| svhn \| resnet50 \| MIT-A \(Δλ>0.5\) \| 96\.2\d \| 96\.20 \| "
    )
    assert re.search(cell + r"[+-]0\.0\d \|", text)  # noise 0.001: ours within 0.1 point


def _refusal(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_empty_directory_is_refused_in_one_line(tmp_path, capsys):
    assert "no .parquet files" in _refusal(capsys, ["report", str(tmp_path)])
    assert not (tmp_path.parent / "report").exists()


def test_foreign_parquet_is_refused_in_one_line(tmp_path, capsys):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    assert "other.parquet is not a results file" in _refusal(capsys, ["report", str(tmp_path)])


def test_other_schema_version_is_refused_in_one_line(tmp_path, capsys):
    rows = synthetic.epoch_rows(synthetic.trials(paper_table_cells("Table 5", ["svhn"]), 1), 1)
    rows["schema_version"] = SCHEMA_VERSION + 1
    write_atomic(synthetic.to_arrow(rows), tmp_path / "r.parquet")
    line = _refusal(capsys, ["report", str(tmp_path), "--out", str(tmp_path / "out")])
    assert f"schema version {SCHEMA_VERSION + 1}" in line


def test_bad_arguments_exit_2_in_one_line(tmp_path, capsys):
    assert "invalid choice" in _refusal(capsys, ["report", str(tmp_path), "--epochs", "all"])
    assert "required" in _refusal(capsys, [])


def test_python_m_analysis_refuses_missing_directory(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        == f"analysis: no results at {tmp_path / 'missing'}: no such file or directory"
    )


def test_best_epochs_report(tmp_path):
    """ERM's trial peaks on validation at epoch 1 (test accuracy 55%), not at its last epoch
    (90%): `--epochs best` must tabulate 55% and `last` 90%."""
    cells = grid(["svhn"], ["resnet18"], [("erm", None, None), ("mixup", 1.0, None)])
    rows = synthetic.epoch_rows(synthetic.trials(cells, 1), 3)
    erm_first = (rows["method"] == "erm") & (rows["epoch"] == 1)
    rows.loc[erm_first, ["val_acc", "test_acc"]] = [0.99, 0.55]
    write_atomic(synthetic.to_arrow(rows), tmp_path / "results" / "r.parquet")
    for epochs, expect in [("best", 0.55), ("last", 0.90)]:
        out = tmp_path / epochs
        argv = ["report", str(tmp_path / "results"), "--out", str(out), "--epochs", epochs]
        assert main(argv) == 0
        table = pd.read_csv(out / "tables" / "test_acc.csv").set_index("variant")
        assert table.loc["ERM", "mean"] == pytest.approx(expect)
        assert table.loc["Mixup (α=1.0)", "mean"] == pytest.approx(0.90)  # its best is its last


def test_figures_not_drawn_are_neither_logged_nor_linked(tmp_path, capsys):
    """ERM and mixup at one α: no Figure 1 (one α) and no Figure 2 (no ablation)."""
    cells = grid(["svhn"], ["resnet18"], [("erm", None, None), ("mixup", 1.0, None)])
    write(cells, tmp_path / "results", seeds=2, epochs=2)
    assert main(["report", str(tmp_path / "results")]) == 0
    err, text = capsys.readouterr().err, (tmp_path / "report" / "report.md").read_text()
    for skipped in ["figure1_alpha.png", "figure2_ablation.png"]:
        assert skipped not in err and skipped not in text
        assert not (tmp_path / "report" / skipped).exists()
    for drawn in ["dilemma.png", "epoch_curves.png", "reliability.png"]:
        assert f"wrote {drawn}" in err and f"]({drawn})" in text
    assert "Not drawn: mixup ran at fewer than two α values." in text


def test_an_image_folder_labelled_cifar10_sits_beside_the_paper(tmp_path):
    """`dataset.label: cifar10` puts "cifar10" in the results' dataset column: the paper's
    CIFAR-10 cells apply although the data came from an image folder."""
    cells = paper_table_cells("Table 5", ["cifar10"])
    cells = cells[cells["method"] == "erm"]  # its four backbones
    frame = synthetic.trials(cells, 1)
    configs = [json.loads(c) for c in frame["config_json"]]
    for config in configs:
        config["dataset"] = {"name": "imagefolder", "root": "/data/cifar10", "label": "cifar10"}
    frame["config_json"] = [json.dumps(c) for c in configs]
    write_atomic(synthetic.to_arrow(synthetic.epoch_rows(frame, 1)), tmp_path / "r" / "p.parquet")
    assert main(["report", str(tmp_path / "r")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "- Table 5 (Accuracy): 4 cells" in text and "- datasets: cifar10" in text
    assert "| Table 5 | Accuracy | cifar10 | resnet18 | ERM | 94.50 | 94.50 | +0.00 |" in text


def test_report_on_trials_that_all_failed(tmp_path):
    cells = paper_table_cells("Table 5", ["svhn"]).head(2)
    frame = synthetic.trials(cells, 1)
    rows = synthetic.fail_trials(
        synthetic.epoch_rows(frame, 2), ["t000000", "t000001"], STATUS_ERROR, "boom", epoch=1
    )
    rows.loc[rows["trial_id"] == "t000000", ["dataset", "method", "model"]] = None  # bad config
    write_atomic(synthetic.to_arrow(rows), tmp_path / "results" / "r.parquet")
    assert main(["report", str(tmp_path / "results")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert (
        "- trials: 2 (2 error)" in text and "| t000000 | ? | ? | ? | 0 | 1 | error | boom |" in text
    )
    assert "No trial has an ok epoch" in text and "Table 1 needs both" in text

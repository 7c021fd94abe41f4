"""`study trial`: the issue's exact command works and writes the contract's rows; bad input
exits 2 with one line naming the problem and the valid choices, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from study.cli.main import main
from study.results.schema import COLUMN_NAMES

EXACT = (
    "--set dataset.name=fake --set model.name=resnet18 --set model.width=8 "
    "--set method.name=mit_a --set method.alpha=1.0 --set method.margin=0.5 "
    "--set train.epochs=1"
).split()


def test_the_issue_command_writes_parquet_rows(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "study.cli", "trial", *EXACT, "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout and "test_cal_ece" in proc.stdout
    df = pd.read_parquet(out)
    assert list(df.columns) == COLUMN_NAMES and len(df) == 1
    row = df.iloc[0]
    assert (row.method, row.alpha, row.margin, row.epoch, row.status) == (
        "mit_a",
        1.0,
        0.5,
        1,
        "ok",
    )
    assert row.study == "trial" and row.node_id == "" and row.gpu_ids == ""


BAD = [
    (["--set", "method.name=mixout"], "unknown method 'mixout'; valid: cutmix, erm"),
    (["--set", "dataset.name=imagenet"], "unknown dataset 'imagenet'; valid: cifar10"),
    (["--set", "model.name=vgg"], "unknown model 'vgg'; valid: resnet110"),
    (["--set", "train.epoch=3"], "unknown key train.epoch; valid keys: epochs"),
    (["--set", "trian.epochs=3"], "unknown setting 'trian.epochs'"),
    (["--set", "method.name=mixup", "--set", "method.alpha=0"], "method.alpha must be > 0"),
    (["--set", "method.name=mit_a", "--set", "method.margin=1.2"], "margin must be in [0, 1)"),
    (["--set", "train.epochs=two"], "train.epochs must be int, got 'two'"),
    (["--set", "method.alpha=[1]"], "method.alpha must be float or null"),
    (
        ["--set", "dataset.name=cifar10", "--set", "dataset.root=/nonexistent"],
        "cifar10 not found under /nonexistent",
    ),
    (
        [
            "--set",
            "runtime.device=cuda:0",
            "--set",
            "dataset.name=digits",
            "--set",
            "model.name=small_cnn",
        ],
        "no CUDA device",
    ),
    (["--set", "noequals"], "--set expects SECTION.KEY=VALUE"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    import torch

    if "CUDA" in message and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["trial", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("study trial: error: ")
    assert message in err


def test_trial_of_a_spec_runs_its_fixed_settings_and_exits_1_on_divergence(tmp_path, capsys):
    """`study trial SPEC`: the spec's fixed settings with --set on top; a diverged trial
    prints why, writes its diverged row and exits 1 (not 0, not a user error)."""
    import json

    import yaml

    spec = {
        "dataset": {"name": "fake", "train_size": 64, "val_size": 32, "test_size": 32},
        "model": {"name": "resnet18", "width": 4},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05},
        "runtime": {"device": "cpu"},
        "grid": {"train.seed": [0, 1]},
    }
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["trial", str(path), "--results", str(tmp_path / "ok"), "--quiet"]) == 0
    ok = pd.read_parquet(tmp_path / "ok")
    cfg = json.loads(ok.config_json.iloc[0])
    assert list(ok.epoch) == [1, 2] and (ok.status == "ok").all()
    assert (cfg["model"]["width"], cfg["train"]["lr"], cfg["dataset"]["train_size"]) == (
        4,
        0.05,
        64,
    )
    capsys.readouterr()
    sets = ["--set", "train.lr=1.0e+30", "--set", "train.momentum=0"]
    argv = ["trial", str(path), *sets, "--results", str(tmp_path / "bad"), "--quiet"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    bad = pd.read_parquet(tmp_path / "bad")
    assert list(bad.status) == ["diverged"] and bad.epoch.item() == 1
    assert bad.message.item().startswith("diverged at epoch 1, step ") and bad.message.item() in out
    assert json.loads(bad.config_json.item())["model"]["width"] == 4

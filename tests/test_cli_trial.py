"""`study trial`: the issue's exact command works and writes the contract's rows; bad input
exits 2 with one line naming the problem and the valid choices, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from study.cli import main
from study.results import COLUMN_NAMES

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
    (["--set", "method.name=mixout"], "unknown method 'mixout'; valid: erm"),
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

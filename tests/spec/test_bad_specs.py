"""Bad specs are refused on load: `study run` exits 2 with one line on stderr naming the problem,
no traceback, nothing started (no Ray, no study directory). In-process through `study.cli.main`,
plus the installed `study` executable for two of them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
import yaml

from study.cli.main import main

GOOD = {
    "dataset": {"name": "fake", "train_size": 64},
    "model": {"name": "resnet18", "width": 8},
    "train": {"batch_size": 32},  # at most the 64 training images
    "space": {
        "method.name": ["erm", "mit_a"],
        "method.margin": {"float": [0.0, 0.5], "when": {"method.name": "mit_a"}},
    },
}
ALPHA = "method.alpha"
TWO_GOALS = [{"metric": "val_acc", "mode": "max"}, {"metric": "val_cal_ece", "mode": "min"}]

BAD = {  # name: (changes to GOOD, a fragment of the one-line error)
    "unknown top-level key": ({"searchh": {}}, "unknown spec key 'searchh'"),
    "unknown setting": ({"train": {"epoch": 3}}, "unknown key train.epoch"),
    "wrong type": ({"train": {"epochs": "ten"}}, "train.epochs must be int"),
    "empty choices": ({"space": {"method.name": []}}, "choices must be a non-empty list"),
    "low above high": ({"space": {ALPHA: {"float": [2.0, 0.5]}}}, "impossible bounds"),
    "log from zero": ({"space": {ALPHA: {"float": [0, 1], "log": True}}}, "impossible bounds"),
    "unreported objective": (
        {"search": {"objectives": [{"metric": "val_accuracy"}]}},
        "search.objectives metric must be one of",
    ),
    "test metric as objective": (
        {"search": {"objectives": [{"metric": "test_acc", "mode": "max"}]}},
        "search.objectives metric must be one of",
    ),
    "ASHA with two objectives": (
        {"search": {"objectives": TWO_GOALS, "asha": {"grace_period": 1}}},
        "search.asha stops trials on one metric",
    ),
    "unknown method": ({"space": {"method.name": ["mit_a", "mixupp"]}}, "unknown method 'mixupp'"),
    "margin past 1": (
        {"space": {"method.name": ["mit_l"], "method.margin": {"float": [0.0, 1.2]}}},
        "method.margin must be in [0, 1)",
    ),
    "condition on an unknown parameter": (
        {"space": {ALPHA: {"float": [0.1, 1], "when": {"method.nam": "mit_a"}}}},
        "can never hold",
    ),
    "grid with tpe": (
        {"space": None, "grid": {"train.seed": [0, 1]}, "search": {"sampler": "tpe"}},
        "a `grid:` goes with sampler grid",
    ),
    "varying the shared data": (
        {"space": {"dataset.train_size": {"int": [32, 64]}}},
        "can't vary: the loaded data is shared",
    ),
    "float range on an int setting": (
        {"space": {"train.epochs": {"float": [1, 5]}}},
        "does not fit",
    ),
    "unknown sampler": ({"search": {"sampler": "cmaes"}}, "search.sampler must be one of"),
    "unset environment variable": (
        {"dataset": {"name": "fake", "root": "${SURELY_UNSET_VARIABLE}"}},
        "SURELY_UNSET_VARIABLE is not set",
    ),
    "cuda without a GPU per trial": ({"runtime": {"device": "cuda"}}, "needs resources.gpu > 0"),
    "repeated objective": (
        {"search": {"objectives": [{"metric": "val_acc"}, {"metric": "val_acc", "mode": "min"}]}},
        "search.objectives repeats a metric",
    ),
    "storage that is not a URL": (
        {"search": {"storage": "studies/optuna.db"}},
        "search.storage must be a URL",
    ),
    "more than one GPU, not whole": ({"resources": {"gpu": 1.5}}, "resources.gpu must be a"),
    "negative GPUs": ({"resources": {"gpu": -0.5}}, "resources.gpu must be a"),
    "ASHA reduction factor 1": (
        {"search": {"asha": {"reduction_factor": 1}}},
        "search.asha.reduction_factor must be > 1",
    ),
    "ASHA reduction factor below 1": (
        {"search": {"asha": {"reduction_factor": 0.5}}},
        "search.asha.reduction_factor must be > 1",
    ),
    "ASHA grace period 0": (
        {"search": {"asha": {"grace_period": 0}}},
        "search.asha.grace_period must be positive",
    ),
    "grid with trials": (
        {"space": None, "grid": {"train.seed": [0, 1]}, "search": {"trials": 3}},
        "search.trials: a grid runs each of its 2 points once",
    ),
    "repeated grid value": (
        {"space": None, "grid": {"train.seed": [0, 1, 0]}},
        "grid train.seed repeats a value",
    ),
    "repeated grid mapping": (
        {"space": None, "grid": {"method": [{"name": "erm"}, {"name": "erm"}]}},
        "grid method repeats a value",
    ),
    "step that does not divide the range": (
        {"space": {ALPHA: {"float": [0.1, 1.0], "step": 0.4}}},
        "impossible bounds",
    ),
    "negative step": ({"space": {ALPHA: {"float": [0.1, 0.9], "step": -0.4}}}, "impossible bounds"),
    "log with a step": (
        {"space": {ALPHA: {"float": [0.1, 1.0], "log": True, "step": 0.3}}},
        "impossible bounds",
    ),
    "int step that does not divide the range": (
        {"space": {"train.epochs": {"int": [1, 10], "step": 4}}},
        "impossible bounds",
    ),
    "equal bounds": ({"space": {ALPHA: {"float": [0.5, 0.5]}}}, "impossible bounds"),
}


def write(tmp_path, changes: dict) -> str:
    """GOOD with `changes`: a `space` change adds or replaces parameters, others replace a key
    (None drops it)."""
    spec = {
        **GOOD,
        **{k: {**GOOD.get(k, {}), **v} if k == "space" and v else v for k, v in changes.items()},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}))
    return str(path)


def refused(capsys, tmp_path, argv: list[str]) -> str:
    assert main([*argv, "--storage", str(tmp_path / "studies")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("study run: error: ")
    assert not (tmp_path / "studies").exists() and not ray.is_initialized()
    return err


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_spec_exits_2_with_one_line(case, capsys, tmp_path):
    changes, fragment = BAD[case]
    assert fragment in refused(capsys, tmp_path, ["run", write(tmp_path, changes)])


def test_good_spec_is_accepted_by_validate(capsys, tmp_path):
    assert main(["validate", write(tmp_path, {})]) == 0
    assert "method.margin" in capsys.readouterr().out


def test_unreadable_specs_and_settings(capsys, tmp_path):
    (tmp_path / "broken.yaml").write_text("space: [unclosed\n")
    assert "invalid YAML" in refused(capsys, tmp_path, ["run", str(tmp_path / "broken.yaml")])
    assert "cannot read spec" in refused(capsys, tmp_path, ["run", str(tmp_path / "none.yaml")])
    unknown = ["run", write(tmp_path, {}), "--set", "trian.epochs=2"]
    assert "unknown setting 'trian.epochs'" in refused(capsys, tmp_path, unknown)


@pytest.mark.parametrize("case", ["unknown top-level key", "low above high"])
def test_the_study_executable_prints_one_line(case, tmp_path):
    path = write(tmp_path, BAD[case][0])
    cmd = [sys.executable, "-m", "study.cli", "run", path, "--storage", str(tmp_path / "s")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()

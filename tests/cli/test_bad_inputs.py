"""The attack as a suite: a corpus of bad inputs, each refused before any work with one line on
stderr naming the problem (exit 2, no traceback). Specs go through `study validate` in-process
(the same loading and checks as `study run`); `--set` values through `study trial`; a
representative set runs the real executables as subprocesses (tests/cli/test_bad_inputs_cli.py).
docs/reliability.md counts them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from study.cli.main import main as study_main

GOOD = {  # a spec that validates; each case changes one thing
    "dataset": {"name": "fake", "train_size": 64},
    "model": {"name": "resnet18", "width": 8},
    "train": {"epochs": 2, "batch_size": 32},
    "runtime": {"device": "cpu"},
    "space": {"method.name": ["erm", "mixup"]},
}
TEXT = yaml.safe_dump(GOOD)  # GOOD as YAML text, for cases only text can say
BOMB = "".join(  # 9**8 leaves from 8 lines of aliases (the billion laughs)
    f"  - &a{i} [{','.join([f'*a{i - 1}' if i else 'L'] * 9)}]\n" for i in range(8)
)


def _with(section: str, **values) -> dict:
    return {**GOOD, section: {**GOOD.get(section, {}), **values}}


def _method(**values) -> dict:
    """GOOD with a fixed method (its space would override it)."""
    return {**{k: v for k, v in GOOD.items() if k != "space"}, "method": values}


INF, NAN = float("inf"), float("nan")
# name: (spec as YAML text or a dict, a fragment of the one-line error)
SPECS: dict[str, tuple[str | dict, str]] = {
    "empty file": ("", "names nothing to run"),
    "empty mapping": ("{}\n", "names nothing to run"),
    "only a name": ("name: x\n", "names nothing to run"),
    "only search settings": ("search: {trials: 3}\n", "names nothing to run"),
    "duplicate top-level key": (
        "dataset: {name: fake}\ndataset: {name: digits}\n",
        "duplicate key 'dataset' at line 2",
    ),
    "duplicate nested key": ("train:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr' at line 3"),
    "a list, not a mapping": ("- a\n- b\n", "must be a mapping, got list"),
    "a scalar, not a mapping": ("hello\n", "must be a mapping, got str"),
    "unclosed bracket": ("space: [unclosed\n", "invalid YAML"),
    "quoted number": ("train: {lr: '1e-3'}\n", "train.lr must be float"),
    "lr NaN": (_with("train", lr=NAN), "train.lr must be positive and finite, got nan"),
    "lr inf": (_with("train", lr=INF), "train.lr must be positive and finite, got inf"),
    "lr negative": (_with("train", lr=-0.1), "train.lr must be positive"),
    "lr zero": (_with("train", lr=0), "train.lr must be positive"),
    "momentum negative": (_with("train", momentum=-0.1), "train.momentum must be in [0, 1)"),
    "momentum one": (_with("train", momentum=1.0), "train.momentum must be in [0, 1)"),
    "momentum NaN": (_with("train", momentum=NAN), "train.momentum must be in [0, 1)"),
    "weight decay negative": (_with("train", weight_decay=-1e-4), "train.weight_decay must be"),
    "weight decay inf": (_with("train", weight_decay=INF), "train.weight_decay must be"),
    "gamma zero": (_with("train", gamma=0), "train.gamma must be in (0, 1]"),
    "gamma above one": (_with("train", gamma=2), "train.gamma must be in (0, 1]"),
    "epochs 10**9": (_with("train", epochs=10**9), "train.epochs must be at most 10,000"),
    "epochs zero": (_with("train", epochs=0), "train.epochs must be positive"),
    "epochs negative": (_with("train", epochs=-3), "train.epochs must be positive"),
    "epochs fractional": (_with("train", epochs=2.5), "train.epochs must be int"),
    "milestones decreasing": (_with("train", milestones=[250, 150]), "train.milestones must be"),
    "milestone zero": (_with("train", milestones=[0]), "train.milestones must be"),
    "milestone repeated": (_with("train", milestones=[5, 5]), "train.milestones must be"),
    "milestone past the cap": (_with("train", milestones=[10**6]), "train.milestones must be"),
    "milestone not an int": (_with("train", milestones=[1.5]), "train.milestones must be int"),
    "batch size zero": (_with("train", batch_size=0), "train.batch_size must be positive"),
    "eval batch negative": (_with("train", eval_batch_size=-1), "train.eval_batch_size must be"),
    "seed negative": (_with("train", seed=-1), "train.seed must be in [0, 2**32)"),
    "seed 2**32": (_with("train", seed=2**32), "train.seed must be in [0, 2**32)"),
    "split seed negative": (_with("dataset", split_seed=-1), "dataset.split_seed must be in"),
    "threads zero": (_with("runtime", threads=0), "runtime.threads must be in [1, 1,024]"),
    "threads negative": (_with("runtime", threads=-2), "runtime.threads must be in [1, 1,024]"),
    "threads 100000": (_with("runtime", threads=100_000), "runtime.threads must be in [1, 1,024]"),
    "bins 1e8": (_with("calibration", n_bins=10**8), "calibration.n_bins must be at most 1,000"),
    "milestone past the epochs": (_with("train", milestones=[5]), "must each come before train"),
    "milestone at the last epoch": (_with("train", milestones=[1, 2]), "drop [2] or train longer"),
    "grid milestone past the epochs": (
        {**GOOD, "space": None, "grid": {"train.milestones": [[1], [3]]}},
        "drop [3] or train longer (in the trial train.milestones=[3])",
    ),
    "batch above train_size": (_with("train", batch_size=65), "larger than dataset.train_size=64"),
    "batch size 10**30": (_with("train", batch_size=10**30), "train.batch_size must be at most"),
    "batch size 1e30": (_with("train", batch_size=1e30), "train.batch_size must be int, got 1e+30"),
    "eval batch 10**9": (_with("train", eval_batch_size=10**9), "eval_batch_size must be at most"),
    "train_size 1": (_with("dataset", train_size=1), "dataset.train_size must be at least 2"),
    "name of 101 characters": ({**GOOD, "name": "n" * 101}, "spec name must be letters"),
    "epochs 1:30 (sexagesimal)": (
        TEXT.replace("epochs: 2", "epochs: 1:30"),
        "train.epochs must be int, got '1:30'",
    ),
    "download yes (YAML 1.1)": (
        TEXT.replace("name: fake", "name: fake\n  download: yes"),
        "dataset.download must be true or false, got 'yes'",
    ),
    "augment off (YAML 1.1)": (
        TEXT.replace("name: fake", "name: fake\n  augment: off"),
        "dataset.augment must be true or false, got 'off'",
    ),
    "seed 0b101 (YAML 1.1)": (TEXT.replace("epochs: 2", "seed: 0b101"), "must be int, got '0b101'"),
    "alias bomb": (TEXT + "description:\n" + BOMB, "expands past 100,000 nodes"),
    "recursive alias": (TEXT + "description: &d [*d]\n", "recursive YAML is refused"),
    "recursive mapping": ("train: &t {lr: *t}\n", "recursive YAML is refused"),
    "nested 5000 deep": (TEXT + "description: " + "[" * 5000 + "]" * 5000, "more than 100 levels"),
    "over 1 MiB": (TEXT + "#" * (1 << 20), "is larger than 1,048,576 bytes"),
    "binary": (bytes(range(256)) * 4, "is not UTF-8 text (byte 0x80 at offset 128)"),
    "UTF-16": (TEXT.encode("utf-16"), "is not UTF-8 text (UTF-16 at offset 0): save it as UTF-8"),
    "device cuda:abc": (_with("runtime", device="cuda:abc"), "runtime.device must be auto, cpu"),
    "device gpu": (_with("runtime", device="gpu"), "runtime.device must be auto, cpu"),
    "device cpu:0": (_with("runtime", device="cpu:0"), "runtime.device must be auto, cpu"),
    "device cuda: only": (_with("runtime", device="cuda:"), "runtime.device must be auto, cpu"),
    "device cuda:1 twice": (_with("runtime", device="cuda:1cuda:1"), "runtime.device must be"),
    "alpha inf": (_method(name="mixup", alpha=INF), "method.alpha must be > 0 and finite"),
    "alpha NaN": (_method(name="mixup", alpha=NAN), "method.alpha must be > 0"),
    "alpha negative": (_method(name="mixup", alpha=-1), "method.alpha must be > 0"),
    "alpha zero": (_method(name="mixup", alpha=0), "method.alpha must be > 0"),
    "margin NaN": (_method(name="mit_l", margin=NAN), "method.margin must be in [0, 1)"),
    "margin one": (_method(name="mit_l", margin=1.0), "method.margin must be in [0, 1)"),
    "width zero": (_with("model", width=0), "model.width must be positive"),
    "bins zero": (_with("calibration", n_bins=0), "calibration.n_bins must be positive"),
    "calibration objective": (
        _with("calibration", objective="brier"),
        "calibration.objective must be one of",
    ),
    "val size zero": (_with("dataset", val_size=0), "dataset.val_size must be a positive"),
    "unknown dataset": (_with("dataset", name="imagenet"), "unknown dataset 'imagenet'"),
    "unknown model": (_with("model", name="vgg"), "unknown model 'vgg'"),
    "unknown method": (_method(name="mixout"), "unknown method 'mixout'"),
    "cpu zero": ({**GOOD, "resources": {"cpu": 0}}, "resources.cpu must be positive"),
    "cpu inf": ({**GOOD, "resources": {"cpu": INF}}, "resources.cpu must be finite"),
    "gpu negative": ({**GOOD, "resources": {"gpu": -1}}, "resources.gpu must be a fraction"),
    "gpu 1.5": ({**GOOD, "resources": {"gpu": 1.5}}, "resources.gpu must be a fraction"),
    "trials zero": ({**GOOD, "search": {"trials": 0}}, "search.trials must be positive"),
    "sampler cmaes": ({**GOOD, "search": {"sampler": "cmaes"}}, "search.sampler must be one of"),
    "search seed negative": ({**GOOD, "search": {"seed": -1}}, "search.seed must be ≥ 0"),
    "max failures negative": ({**GOOD, "tune": {"max_failures": -1}}, "tune.max_failures"),
    "checkpoint every zero": ({**GOOD, "tune": {"checkpoint_every": 0}}, "checkpoint_every"),
    "space low above high": (
        {**GOOD, "space": {"train.lr": {"float": [1.0, 0.1]}}},
        "impossible bounds",
    ),
    "space lr up to inf": (
        {**GOOD, "space": {"train.lr": {"float": [0.1, INF]}}},
        "train.lr must be positive and finite, got inf",
    ),
    "space momentum to one": (
        {**GOOD, "space": {"train.momentum": {"float": [0.5, 1.0]}}},
        "train.momentum must be in [0, 1)",
    ),
    "grid without values": ({**GOOD, "space": None, "grid": {"train.seed": []}}, "non-empty"),
    "bad name": ({**GOOD, "name": "a b"}, "spec name must be letters"),
    "unknown top-level key": ({**GOOD, "trainer": {}}, "unknown spec key 'trainer'"),
    "unset variable": (_with("dataset", root="${SURELY_UNSET_I9}"), "SURELY_UNSET_I9 is not set"),
}
# --set values of `study trial` (refused before any data loads)
SETS: dict[str, tuple[list[str], str]] = {
    "set without =": (["train.lr"], "--set expects SECTION.KEY=VALUE"),
    "set lr .nan": (["train.lr=.nan"], "train.lr must be positive and finite"),
    "set lr -.inf": (["train.lr=-.inf"], "train.lr must be positive and finite"),
    "set device cuda:x": (["runtime.device=cuda:x"], "runtime.device must be auto, cpu"),
    "set threads -1": (["runtime.threads=-1"], "runtime.threads must be in [1, 1,024]"),
    "set threads above the cores": (
        [f"runtime.threads={(os.cpu_count() or 1) + 1}"],
        f"this machine has {os.cpu_count() or 1} CPU cores",
    ),
    "set n_bins 10**8": (["calibration.n_bins=100000000"], "calibration.n_bins must be at most"),
    "set epochs 1:30": (["train.epochs=1:30"], "train.epochs must be int, got '1:30'"),
    "set milestones past the epochs": (
        ["train.epochs=2", "train.milestones=[3]"],
        "train.milestones [3] must each come before train.epochs=2",
    ),
    "set train_size 1": (["dataset.train_size=1"], "dataset.train_size must be at least 2"),
    "set batch 1e30": (["train.batch_size=1e30"], "train.batch_size must be int, got 1e+30"),
    "set batch above train_size": (
        ["dataset.train_size=8", "train.batch_size=9"],
        "larger than dataset.train_size=8",
    ),
    "set download on": (["dataset.download=on"], "must be true or false, got 'on'"),
    "set recursive alias": (["train.seed=&a [*a]"], "--set train.seed: an alias refers to"),
    "set alias bomb": (
        ["train.seed=[" + BOMB.replace("\n  - ", ", ").strip("- \n") + "]"],
        "--set train.seed: the document expands past 100,000 nodes",
    ),
    "set unknown section": (["trian.lr=0.1"], "unknown setting 'trian.lr'"),
    "set momentum 1e0": (["train.momentum=1e0"], "train.momentum must be in [0, 1)"),
}


def _write(path: Path, spec: str | bytes | dict) -> Path:
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    else:
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


def _one_line(capsys, argv: list[str], prefix: str) -> str:
    assert study_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(prefix), err
    return err


@pytest.mark.parametrize("case", SPECS, ids=list(SPECS))
def test_bad_spec_refused_in_one_line(case, capsys, tmp_path):
    spec, fragment = SPECS[case]
    path = _write(tmp_path / "bad.yaml", spec)
    assert fragment in _one_line(capsys, ["validate", str(path)], "study validate: error: ")


@pytest.mark.parametrize("case", SETS, ids=list(SETS))
def test_bad_set_refused_before_any_data(case, capsys, tmp_path, monkeypatch):
    sets, fragment = SETS[case]
    monkeypatch.setattr("study.train.data.load", lambda *a: pytest.fail("data loaded"))
    argv = ["trial", *(a for s in sets for a in ("--set", s))]
    assert fragment in _one_line(capsys, argv, "study trial: error: ")


def test_exponent_floats_and_merge_keys_are_accepted(capsys, tmp_path):
    text = "model: &m {name: resnet18, width: 8}\ntrain: {lr: 1e-3, weight_decay: 5E-4}\n"
    path = _write(tmp_path / "ok.yaml", text + "dataset: {name: fake}\n")
    assert study_main(["validate", str(path)]) == 0
    assert "lr=0.001" in capsys.readouterr().out
    from study.yamlio import parse_sets

    assert parse_sets(["train.lr=1e-3", "train.seed=3"]) == {"train.lr": 0.001, "train.seed": 3}


def test_resume_without_spec_yaml_is_one_line(capsys, tmp_path):
    spec = _write(tmp_path / "s.yaml", GOOD)
    (tmp_path / "studies" / "s" / "tune").mkdir(parents=True)
    argv = ["run", str(spec), "--storage", str(tmp_path / "studies"), "--resume"]
    assert "has no spec.yaml (deleted?)" in _one_line(capsys, argv, "study run: error: ")


def _images(root: Path, bad: bytes | None = None) -> Path:
    """A 2-class image folder of 8×8 JPEGs; `bad` replaces one training image's bytes."""
    rng = np.random.default_rng(0)
    for part, n in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            (root / part / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / label / f"{i}.jpg")
    if bad is not None:
        (root / "train" / "a" / "3.jpg").write_bytes(bad)
    return root


def _jpeg_cases(tmp_path: Path) -> dict[str, bytes]:
    good = (_images(tmp_path / "ref") / "train" / "a" / "0.jpg").read_bytes()
    return {"truncated": good[: len(good) // 2], "not an image": b"hello", "empty": b""}


@pytest.mark.parametrize("kind", ["truncated", "not an image", "empty"])
def test_corrupt_image_is_named_in_one_line(kind, capsys, tmp_path):
    root = _images(tmp_path / "data", _jpeg_cases(tmp_path)[kind])
    argv = ["trial", "--set", "dataset.name=imagefolder", "--set", f"dataset.root={root}"]
    argv += ["--set", "dataset.val_size=2", "--quiet"]
    err = _one_line(capsys, argv, "study trial: error: ")
    assert f"cannot decode image {root / 'train' / 'a' / '3.jpg'}: " in err

"""What a spec file may be and how its YAML reads (study.yamlio), and the limits known only once
the data is read (study.train.limits): refused in one line, before Ray or a study directory; and the
accepted forms still read as they did (every search_spaces/ spec unchanged)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml
from test_bad_inputs import GOOD, _one_line, _write

from study.cli.main import main
from study.spec import load_spec
from study.yamlio import dump_yaml, load_yaml, parse_sets

SPACES = sorted((Path(__file__).parents[2] / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_search_space_reads_as_before(path):
    """YAML 1.2 changes nothing here: each spec reads as PyYAML's YAML 1.1 read it (none holds
    an exponent float, a leading zero, a base-60 number or yes/no), and validates."""
    text = path.read_text()
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_spec(path).name == path.stem


YAML_12 = {  # plain scalar: what it is
    "010": 10,
    "0o17": 15,
    "0x1F": 31,
    "1_000": 1000,
    "+5": 5,
    "1:30": "1:30",
    "0b101": "0b101",
    "1e-3": 0.001,
    "5E4": 50000.0,
    ".5": 0.5,
    "1.": 1.0,
    "-.inf": float("-inf"),
    "yes": "yes",
    "off": "off",
    "y": "y",
    "true": True,
    "False": False,
    "null": None,
    "~": None,
}


@pytest.mark.parametrize("text", YAML_12, ids=list(YAML_12))
def test_scalars_read_as_yaml_1_2(text):
    value = load_yaml(f"k: {text}")["k"]
    assert value == YAML_12[text] and type(value) is type(YAML_12[text])
    assert parse_sets([f"train.seed={text}"]) == {"train.seed": YAML_12[text]}


@pytest.mark.parametrize("text", YAML_12, ids=list(YAML_12))
def test_strings_that_look_like_numbers_are_written_quoted(text):
    """spec.yaml is written by dump_yaml: a string reads back as that string, in YAML 1.2 and
    in YAML 1.1 (pandas users' yaml.safe_load)."""
    dumped = dump_yaml({"k": text})
    assert load_yaml(dumped) == {"k": text} == yaml.safe_load(dumped)


def _late_writer(fifo: Path) -> None:
    """Unblock a reader of `fifo` after 5 s (the old code read it and hung forever; it then
    fails the test instead); gives up after 30 s when nobody opened it."""

    def write() -> None:
        for _ in range(300):
            time.sleep(0.1)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader (yet)
                continue
            time.sleep(5)
            os.close(fd)
            return

    threading.Thread(target=write, daemon=True).start()


def _fifo(t: Path) -> Path:
    os.mkfifo(t / "pipe.yaml")
    _late_writer(t / "pipe.yaml")
    return t / "pipe.yaml"


def _loop(t: Path) -> Path:
    (t / "loop.yaml").symlink_to(t / "loop.yaml")
    return t / "loop.yaml"


PATHS = {  # a spec path that is no spec file: (builder, fragment of the one line)
    "a directory": (lambda t: t, "is a directory: give a YAML file"),
    "a FIFO": (_fifo, "is a FIFO (named pipe): give a YAML file"),
    "/dev/zero": (lambda t: Path("/dev/zero"), "/dev/zero is not a regular file"),
    "a symlink loop": (_loop, "Too many levels of symbolic links"),
    "extends a FIFO": (
        lambda t: (_fifo(t), _write(t / "x.yaml", "extends: pipe.yaml\n"))[1],
        "pipe.yaml is a FIFO",
    ),
}


@pytest.mark.parametrize("case", PATHS, ids=list(PATHS))
def test_a_spec_path_that_is_no_file_is_one_line(case, capsys, tmp_path):
    build, fragment = PATHS[case]
    path = build(tmp_path)
    assert fragment in _one_line(capsys, ["validate", str(path)], "study validate: error: ")
    run = ["run", str(path), "--storage", str(tmp_path / "studies")]
    assert fragment in _one_line(capsys, run, "study run: error: ")
    assert not (tmp_path / "studies").exists() and not ray.is_initialized()


DIGITS = {**GOOD, "dataset": {"name": "digits", "val_size": 1430}}  # 1,437 - 1,430: 7 images
DIGITS["train"] = {"epochs": 2, "batch_size": 8}


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        ([], "train.batch_size=8 is larger than the 7 training images of digits"),
        (["dataset.val_size=1436"], "the training split of digits has 1 image(s)"),
        ([f"runtime.threads={(os.cpu_count() or 1) + 1}"], "CPU cores: give at most"),
    ],
    ids=["batch above the split", "a split of one", "threads above the cores"],
)
def test_limits_of_the_data_and_the_machine_before_ray(sets, fragment, capsys, tmp_path):
    """Known once the data is read (or of this machine): `study run` (a local Ray) and `study
    trial` refuse them before Ray, a study directory, or an epoch."""
    spec = str(_write(tmp_path / "d.yaml", DIGITS))
    argv = [a for s in sets for a in ("--set", s)]
    run = ["run", spec, "--storage", str(tmp_path / "studies"), *argv]
    assert fragment in _one_line(capsys, run, "study run: error: ")
    studies = tmp_path / "studies"  # the storage check may make the root, never a study in it
    assert not (studies.exists() and any(studies.iterdir())) and not ray.is_initialized()
    trial = ["trial", spec, "--results", str(tmp_path / "out"), *argv]
    assert fragment in _one_line(capsys, trial, "study trial: error: ")
    assert not (tmp_path / "out").exists()


def test_the_limits_accept_what_fits(capsys, tmp_path):
    """A batch of the whole split, and milestones before the last epoch, validate."""
    spec = {**DIGITS, "train": {"epochs": 3, "batch_size": 7, "milestones": [1, 2]}}
    assert main(["validate", str(_write(tmp_path / "ok.yaml", spec))]) == 0
    assert "milestones=[1, 2]" in capsys.readouterr().out

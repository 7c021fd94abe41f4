"""The bad-input corpus through the real executables: `study` and `analysis` subprocesses, each
refused with exit 2, one stderr line, no traceback, nothing created (tests/cli/test_bad_inputs.py
holds the in-process tables)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_inputs import GOOD, NAN, SETS, SPECS, TEXT, _with, _write


def _run(*argv: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    module = "analysis" if argv[0] == "analysis" else "study.cli"
    cmd = [sys.executable, "-m", module, *argv[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def _loop(t: Path) -> str:
    """A symlink that points at itself."""
    (t / "loop").symlink_to(t / "loop")
    return str(t / "loop")


def _fifo(t: Path) -> str:
    """A named pipe (reading it would wait for a writer: the old code hung)."""
    os.mkfifo(t / "pipe.yaml")
    return str(t / "pipe.yaml")


# Real executables: (argv builder, fragment). The tmp path is passed in.
CLI = {
    "run: empty spec": (lambda t: ["study", "run", str(_write(t / "e.yaml", "{}\n"))], "nothing"),
    "validate: duplicate key": (
        lambda t: ["study", "validate", str(_write(t / "d.yaml", "train: {lr: 1, lr: 2}\n"))],
        "duplicate key 'lr'",
    ),
    "run: lr NaN": (
        lambda t: ["study", "run", str(_write(t / "n.yaml", _with("train", lr=NAN)))],
        "train.lr must be positive and finite",
    ),
    "trial: --results is a file": (
        lambda t: ["study", "trial", "--set", "dataset.name=digits", "--results", str(t / "f")],
        "--results",
    ),
    "trial: --results under a file": (
        lambda t: ["study", "trial", "--set", "dataset.name=digits", "--results", f"{t}/f/x"],
        "can't be made",
    ),
    "trial: device cuda:abc": (
        lambda t: ["study", "trial", "--set", "runtime.device=cuda:abc"],
        "runtime.device must be",
    ),
    "run: --storage ''": (
        lambda t: ["study", "run", str(_write(t / "g.yaml", GOOD)), "--storage", ""],
        "--storage '' is empty",
    ),
    "run: --storage a symlink loop": (
        lambda t: ["study", "run", str(_write(t / "g.yaml", GOOD)), "--storage", _loop(t)],
        "Symlink loop",
    ),
    "run: --name of 260 characters": (
        lambda t: ["study", "run", str(_write(t / "g.yaml", GOOD)), "--name", "n" * 260],
        "spec name must be letters, digits, '_', '.', '-' (at most 100)",
    ),
    "run: --name ''": (
        lambda t: ["study", "run", str(_write(t / "g.yaml", GOOD)), "--name", ""],
        "spec name must be letters",
    ),
    "validate: a FIFO": (lambda t: ["study", "validate", _fifo(t)], "is a FIFO (named pipe)"),
    "validate: /dev/zero": (lambda t: ["study", "validate", "/dev/zero"], "not a regular file"),
    "validate: UTF-16": (
        lambda t: ["study", "validate", str(_write(t / "u.yaml", TEXT.encode("utf-16")))],
        "is not UTF-8 text (UTF-16",
    ),
    "trial: a recursive --set": (
        lambda t: ["study", "trial", "--set", "train.seed=&a [*a, *a]"],
        "recursive YAML is refused",
    ),
    "report: --out is a file": (
        lambda t: ["analysis", "report", str(t), "--out", str(t / "f")],
        "--out",
    ),
}


@pytest.mark.parametrize("case", CLI, ids=list(CLI))
def test_the_executables_print_one_line(case, tmp_path):
    build, fragment = CLI[case]
    (tmp_path / "f").write_text("a file")
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path)}
    done = _run(*build(tmp_path), env=env, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr, done.stderr
    assert (tmp_path / "f").read_text() == "a file" and not (tmp_path / "studies").exists()


def test_the_corpus_is_large_enough():
    assert len(SPECS) + len(SETS) + len(CLI) >= 120

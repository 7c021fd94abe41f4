"""Every example in every `study … --help` works as printed (issue 20), and `--set`'s help lists
every section and key.

The examples that can run offline are run, in the order the help prints them (run, resume,
trial, compact, validate: `study resume` and `study compact` need the study `study run` made),
as shell commands in a fresh folder holding search_spaces/, with the venv's bin/ first on PATH,
each to exit 0. The examples that need what no test machine has — a Ray cluster
(`--address`), S3 (`s3://`) or the CIFAR-10 images (`CIFAR10_DIR`) — are only parsed by
`study`'s own argparse parser, and their spec files must exist. The run examples train (the
demo study among them, minutes on 2 cores): `slow`."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from study.cli import main as cli
from study.spec import Resources, Search, TuneSettings
from study.train.config import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
NEEDS_MORE = ("--address", "s3://", "CIFAR10_DIR")  # a cluster, S3, the CIFAR-10 images


def examples() -> list[str]:
    """Every example line of every command's --help, in the order printed."""
    lines = []
    for text in cli.EXAMPLES.values():
        for line in text.replace("\\\n", " ").splitlines()[1:]:  # continued lines joined
            command = line.split("  #", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def test_every_help_ends_with_its_examples(capsys):
    for command, text in cli.EXAMPLES.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert text.strip() in capsys.readouterr().out


def test_set_help_lists_every_section_and_key(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    classes = {n: f().__class__ for n, f in SECTIONS.items()}
    classes |= {"search": Search, "resources": Resources, "tune": TuneSettings}
    for name, cls in classes.items():
        keys = ", ".join(f.name for f in dataclasses.fields(cls))
        assert f"  {name}: {keys}" in out


def test_examples_that_need_a_cluster_s3_or_cifar10_parse():
    offline = [e for e in examples() if any(m in e for m in NEEDS_MORE)]
    assert offline, "the examples changed: check NEEDS_MORE"
    for example in offline:
        words = [w for w in shlex.split(example) if "=" not in w or w.startswith("-")]
        assert words[0] == "study"
        args = cli._parser().parse_args(words[1:])
        where = getattr(args, "spec", None) or args.directory  # compact takes a directory
        assert str(where).startswith("s3://") or (ROOT / where).exists(), example


@pytest.mark.slow
def test_every_offline_example_runs(tmp_path):
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for example in examples():
        if any(m in example for m in NEEDS_MORE):
            continue
        done = subprocess.run(
            ["bash", "-c", example], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{example}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

"""The README's commands, as written, in order, twice (issue 20: "every command works after
every other"): `make demo`, then the list under "A study on Ray Tune", then all of it again.

Run in a fresh folder holding the project's Makefile, pyproject.toml and search_spaces/ and this
venv as `.venv` (symlinks, so `make` finds the venv installed and installs nothing); each
command goes to bash exactly as the README prints it, and must exit 0. Nothing is shrunk: the
README's own commands are the small ones (its `study run` is `--trials 4 --set
train.epochs=2`), and `make demo` is the full demo, minutes on 2 cores each time: `slow`. The
optuna-dashboard line (a server that runs until stopped) is checked by its path existing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def readme_commands() -> list[str]:
    """`make demo` and the bash block under "## A study on Ray Tune", comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## A study on Ray Tune", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return ["make demo", *(line for line in lines if line)]


def test_the_readme_lists_runnable_commands():
    commands = readme_commands()
    assert commands[0] == "make demo" and len(commands) >= 4
    assert all(c.startswith((".venv/bin/", "make ")) for c in commands)
    assert (
        "optuna-dashboard sqlite:///studies/demo/latest/optuna.db"
        in (ROOT / "README.md").read_text()
    )


@pytest.mark.slow
def test_readme_commands_in_order_twice(tmp_path):
    for name in ("Makefile", "pyproject.toml", "search_spaces"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(VENV)
    installed = subprocess.run(["make", "-q", ".venv/.installed"], cwd=tmp_path)
    if installed.returncode != 0:  # `make demo` would reinstall this venv from the copy
        pytest.skip("the venv is older than pyproject.toml: run `make test` first")
    codes = []
    for _ in range(2):
        for command in readme_commands():
            done = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True
            )
            codes.append((command, done.returncode))
            assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(codes)
    studies = sorted(p.name for p in (tmp_path / "studies" / "demo").iterdir())
    assert len(studies) == 5  # two `make demo`, two `study run`, and `latest`
    assert (tmp_path / ".venv" / "bin" / "optuna-dashboard").exists()

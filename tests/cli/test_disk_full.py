"""A full disk is one line on stderr, exit 1: the path, the free space there, and what to run
once space is freed (study.diskfull); nothing written is lost. Writes that fail for want of
space are simulated where they happen (the results writer, compaction's file), and for real on
a small tmpfs when this process may mount one."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy.exc
import yaml

from study import diskfull
from study.cli.main import main

SPEC = {
    "dataset": {"name": "fake", "train_size": 64, "val_size": 32, "test_size": 32},
    "model": {"name": "resnet18", "width": 8},
    "train": {"epochs": 3, "batch_size": 32},
    "runtime": {"device": "cpu"},
    "resources": {"cpu": 1},
    "tune": {"max_concurrent_trials": 1},
    "grid": {"train.seed": [0, 1, 2]},
}
RAY_LOG = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\s+WARNING\s")  # Ray's own warnings (its token)
TRIAL = ["--set", "dataset.name=fake", "--set", "dataset.train_size=64", "--set", "model.width=4"]
TRIAL += ["--set", "train.epochs=2", "--set", "train.batch_size=32", "--set", "runtime.device=cpu"]


def _enospc(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", None if path is None else str(path))


def _sqlite_full() -> Exception:
    return sqlalchemy.exc.OperationalError(
        "COMMIT", {}, sqlite3.OperationalError("database or disk is full")
    )


def _chained() -> Exception:
    try:
        raise _enospc("/x/results/t.parquet")
    except OSError as e:
        try:
            raise RuntimeError("a callback failed") from e
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize(
    ("err", "full"),
    [
        (_enospc("/x"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (_sqlite_full(), True),  # Optuna's SQLite commit
        (OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"), True),
        (_chained(), True),
        (PermissionError(errno.EACCES, "Permission denied"), False),
        (ValueError("no space in this name"), False),
    ],
    ids=["ENOSPC", "EDQUOT", "sqlite full", "pyarrow's words", "chained", "EACCES", "other"],
)
def test_a_full_disk_is_found_in_the_chain(err, full):
    assert (diskfull.full_cause(err) is not None) is full


def test_the_line_names_the_path_and_the_free_space(tmp_path):
    with pytest.raises(diskfull.DiskFull) as got:
        with diskfull.one_line(tmp_path, "free space, then continue: study run s.yaml --resume"):
            raise _chained()
    line = str(got.value)
    assert line.startswith("no space left on device writing /x/results/t.parquet (")
    assert " free there; [Errno 28] No space left on device" in line and "\n" not in line
    assert line.endswith(
        "what was written is kept; free space, then continue: study run s.yaml --resume"
    )
    assert diskfull.free_space(tmp_path).endswith(" free")


def _one_error_line(capsys, argv: list[str], prefix: str) -> str:
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    err = "\n".join(x for x in lines if not RAY_LOG.match(x))
    assert len(err.splitlines()) == 1 and err.startswith(prefix), lines
    assert "no space left on device writing " in err and " free there" in err, err
    return err


def test_study_trial_results_on_a_full_disk(capsys, tmp_path, monkeypatch):
    def full(table, path, filesystem=None, options=None):
        raise _enospc(path)

    monkeypatch.setattr("study.results.trial_rows.write_atomic", full)
    argv = ["trial", *TRIAL, "--results", str(tmp_path / "out"), "--quiet"]
    err = _one_error_line(capsys, argv, "study trial: error: ")
    assert str(tmp_path / "out") in err and err.strip().endswith("run the trial again")


def test_study_compact_on_a_full_disk_keeps_every_file(capsys, tmp_path, monkeypatch):
    assert main(["trial", *TRIAL, "--results", str(tmp_path), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.parquet")}
    capsys.readouterr()

    def full(fs, read, order, cuts, path, schema):
        raise _enospc(path)

    monkeypatch.setattr("study.results.compact._write", full)
    err = _one_error_line(capsys, ["compact", str(tmp_path)], "study compact: error: ")
    assert err.strip().endswith(f"run it again: study compact {tmp_path}")
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.parquet")} == before


def _all_rows(results: Path) -> None:
    """Every trial's epochs 1..3 once, all ok: nothing lost, nothing duplicated."""
    df = pd.read_parquet(results)
    assert df.groupby("trial_id").epoch.apply(sorted).tolist() == [[1, 2, 3]] * 3
    assert (df.status == "ok").all() and not df.duplicated(["trial_id", "epoch"]).any()


@pytest.mark.slow
def test_study_run_when_the_results_writer_meets_a_full_disk(capsys, tmp_path, monkeypatch):
    """The writer fails on its fourth row (a real in-process study on Ray): one line naming the
    resume command; resumed with space, every row is there once."""
    from study.results import trial_rows as results  # where TrialRows calls it

    real, calls = results.write_atomic, []

    def fills_up(table, path, filesystem=None, options=None):
        calls.append(path)
        if len(calls) >= 4:
            raise _enospc(Path(path).parent / f".{Path(path).stem}.tmp")
        real(table, path, filesystem, options)

    spec = tmp_path / "df.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    argv = ["run", str(spec), "--storage", str(tmp_path / "studies")]
    monkeypatch.setattr(results, "write_atomic", fills_up)
    err = _one_error_line(capsys, argv, "study run: error: no space left on device writing ")
    assert err.strip().endswith(f"continue: study run {spec} --storage {tmp_path}/studies --resume")
    monkeypatch.setattr(results, "write_atomic", real)
    assert main([*argv, "--resume"]) == 0
    _all_rows(tmp_path / "studies" / "df" / "results")


@pytest.mark.slow
def test_study_run_on_a_really_full_disk():
    """A 3 MB tmpfs fills during the study (checkpoints, rows, Optuna's database): one line and
    exit 1; with space again (the tmpfs grown) `--resume` finishes with every row once."""
    tmp_path = Path(tempfile.mkdtemp(prefix="df", dir="/tmp"))  # Ray's sockets: ≤ 107 bytes
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)])
    if mounted.returncode != 0:
        pytest.skip("this process may not mount a tmpfs")
    try:
        (tmp_path / "df.yaml").write_text(yaml.safe_dump(SPEC))
        cmd = [sys.executable, "-m", "study.cli", "run", "df.yaml", "--storage", "small"]
        env = {**os.environ, "RAY_TMPDIR": str(tmp_path)}

        def study(*extra: str) -> subprocess.CompletedProcess:
            run = subprocess.run
            return run([*cmd, *extra], capture_output=True, text=True, cwd=tmp_path, env=env)

        done = study()
        ours = [line for line in done.stderr.splitlines() if not RAY_LOG.match(line)]
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(ours) == 1 and ours[0].startswith("study run: error: no space left"), ours
        assert ours[0].endswith("continue: study run df.yaml --storage small --resume")
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        again = study("--resume")
        assert again.returncode == 0, again.stderr
        _all_rows(mnt / "df" / "results")
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        shutil.rmtree(tmp_path, ignore_errors=True)

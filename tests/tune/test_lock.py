"""One driver per study (study.tune.lock): a second holder is refused naming the first, a dead
holder's lock is taken over and says so, on local disk (flock; the S3 lease: test_lease.py);
`study compact` takes the lock too. The real races of two drivers are in test_lock_races.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from study.cli.main import main
from study.tune import lock, storage

HOLD = """
import sys, time
from study.tune import lock, storage
with lock.held(storage.open_location(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holding(where: str, seconds: float) -> subprocess.Popen:
    """Another process that holds the lock of `where` for `seconds` (once it printed 'held')."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, where, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def refused_while_held(where: str) -> None:
    """Another process holds `where`: taking it here is refused, naming that process."""
    other = holding(where, 60)
    try:
        with pytest.raises(lock.StudyLocked, match=f"driver PID {other.pid} on "):
            with lock.held(storage.open_location(where)):
                pass
    finally:
        other.kill()
        other.wait()


def test_a_held_local_study_is_refused_naming_the_holder(tmp_path):
    where = str(tmp_path / "studies" / "s")
    refused_while_held(where)


def test_a_killed_holders_lock_is_taken_over_and_said(tmp_path, capsys):
    where = str(tmp_path / "s")
    other = holding(where, 60)
    os.kill(other.pid, signal.SIGKILL)
    other.wait()
    with lock.held(storage.open_location(where)):
        err = capsys.readouterr().err
        assert f"took over the lock of driver PID {other.pid}" in err, err
        assert "no longer running" in err
    with lock.held(storage.open_location(where)):  # released cleanly: nothing to say
        assert capsys.readouterr().err == ""


def test_the_lock_is_the_study_directorys_whatever_the_path_says(tmp_path):
    """A symlink to the study (studies/demo/latest) names the same lock as the study."""
    real = tmp_path / "demo-1"
    real.mkdir()
    (tmp_path / "latest").symlink_to(real.name)
    with lock.held(storage.open_location(str(real))):
        with pytest.raises(lock.StudyLocked):
            with lock.held(storage.open_location(str(tmp_path / "latest"))):
                pass


def test_study_compact_takes_the_lock(tmp_path, capsys):
    study = tmp_path / "s"
    (study / "results").mkdir(parents=True)
    (study / "spec.yaml").write_text("name: s\n")
    other = holding(str(study), 60)
    try:
        for where in (study, study / "results"):
            assert main(["compact", str(where)]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"driver PID {other.pid}" in err, err
    finally:
        other.kill()
        other.wait()


def test_the_lock_file_is_beside_the_study_and_gone_after(tmp_path):
    """The lock exists before the study directory does; a clean release leaves no file."""
    with lock.held(storage.open_location(str(tmp_path / "new"))):
        assert (tmp_path / ".new.lock").exists() and not (tmp_path / "new").exists()
    assert not (tmp_path / ".new.lock").exists()


COUNT = """
import sys, time
from pathlib import Path
from study.tune import lock, storage
where, counter, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
done = 0
while done < n:
    try:
        with lock.held(storage.open_location(where)):
            value = int(counter.read_text())  # a read-modify-write only the lock protects
            time.sleep(0.002)
            counter.write_text(str(value + 1))
            done += 1
    except lock.StudyLocked:
        time.sleep(0.001)
"""


def test_many_processes_taking_and_releasing_never_hold_at_once(tmp_path):
    """Four processes take, hold and release one study's lock 25 times each, incrementing a
    counter under it: no increment is lost (without the flock, some are). The lock file is
    removed at every release, under the lock, so takers keep meeting fresh files."""
    counter = tmp_path / "counter"
    counter.write_text("0")
    where = str(tmp_path / "s")
    procs = [
        subprocess.Popen([sys.executable, "-c", COUNT, where, str(counter), "25"]) for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    assert counter.read_text() == "100"

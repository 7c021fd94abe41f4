"""Kill the `study run` driver (SIGKILL) at the moments that matter, and at random ones, then
`--resume`: every study ends with every planned trial, each with epochs 1..E exactly once
(0 rows lost, 0 duplicated), and `results/` reads as one table.

Moments with no outside sign use study.tune.start's crash points (`STUDY_CRASH_AT`: the driver
SIGKILLs itself there); the others are watched from outside, on the driver's progress lines.
Each driver starts its own local Ray in a private temp dir; what a killed driver leaves behind
is stopped by PID (processes whose environment names that dir)."""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from analysis import load_results
from study.results.files import ResultsError

pytestmark = pytest.mark.slow

TRIALS, EPOCHS = 4, 3
SPEC = {
    "name": "kills",
    "dataset": {"name": "digits", "val_size": 100, "test_size": 100},
    "model": {"name": "small_cnn", "width": 4},
    "train": {"epochs": EPOCHS, "batch_size": 64, "eval_batch_size": 500},
    "runtime": {"device": "cpu"},
    "resources": {"cpu": 1},
    "tune": {"max_concurrent_trials": 1},
    "search": {"sampler": "random", "trials": TRIALS, "seed": 3},
    "space": {"train.seed": {"int": [0, 1000]}},
}


class Driver:
    """A `study run` subprocess whose output lines are read as they come."""

    def __init__(self, spec: Path, storage: Path, ray_tmp: str, *extra: str, crash: str = ""):
        env = {**os.environ, "RAY_TMPDIR": ray_tmp, "STUDY_CRASH_AT": crash}
        cmd = [sys.executable, "-m", "study.cli", "run", str(spec), "--storage", str(storage), "-v"]
        self.proc = subprocess.Popen(
            [*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_line(self, pattern: str, timeout: float = 300) -> bool:
        """Wait for an output line containing `pattern`; False when the driver ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                return False
            self.seen.append(line)
            if pattern in line:
                return True
        raise AssertionError(f"no line with {pattern!r} in {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def finish(self, timeout: float = 400) -> int:
        """Wait for the exit, then take the lines already written (Ray's processes may hold
        the pipe open after the driver is gone, so no end of stream is awaited)."""
        code = self.proc.wait(timeout=timeout)
        while True:
            try:
                line = self.lines.get(timeout=2)
            except queue.Empty:
                return code
            if line is None:
                return code
            self.seen.append(line)

    def output(self) -> str:
        return "".join(self.seen)[-4000:]


def stop_leftovers(ray_tmp: str) -> int:
    """SIGKILL processes (by PID) whose environment has our RAY_TMPDIR: what Ray started for
    a killed driver. Returns how many."""
    mark = f"RAY_TMPDIR={ray_tmp}".encode()
    stopped = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                stopped += 1
        except (OSError, ProcessLookupError):
            continue
    return stopped


@pytest.fixture
def ray_tmp():
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    yield path
    stop_leftovers(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "kills.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path, tmp_path / "studies", tmp_path / "studies" / "kills"


def lost_and_duplicated(results: Path) -> tuple[int, int, pd.DataFrame]:
    """(rows lost, rows duplicated, the table): against TRIALS trials × epochs 1..EPOCHS."""
    df = pd.read_parquet(results)  # the whole folder must read as one table
    duplicated = int(df.duplicated(["trial_id", "epoch"]).sum())
    have = set(zip(df.trial_id, df.epoch, strict=True))
    trials = sorted(df.trial_id.unique())[:TRIALS]
    planned = {(t, e) for t in trials for e in range(1, EPOCHS + 1)}
    lost = len(planned - have) + EPOCHS * max(0, TRIALS - len(trials))
    return lost, duplicated, df


def killed(driver: Driver) -> None:
    code = driver.finish()
    assert code == -signal.SIGKILL, f"the driver was not killed (exit {code}):\n{driver.output()}"


def restored(driver: Driver) -> None:
    """A study past its first snapshot resumes, never restarts (unless Tune's newest snapshot
    was torn by the kill and no older one exists: then it says so)."""
    out = driver.output()
    assert "starting it again" not in out or "is incomplete" in out, out


def test_kills_at_the_moments_that_matter_resume_to_the_plan(study, ray_tmp, capsys):
    spec, storage, study_dir = study
    tune_dir = study_dir / "tune"
    # 1. Right after the study directory (with its spec.yaml) appears.
    killed(Driver(spec, storage, ray_tmp, crash="created"))
    assert (study_dir / "spec.yaml").is_file() and not tune_dir.exists()
    stop_leftovers(ray_tmp)
    # 2. Before Tune's first experiment snapshot: tune/ holds only tuner.pkl (the v0.1 bug).
    killed(Driver(spec, storage, ray_tmp, "--resume", crash="tuner"))
    assert (tune_dir / "tuner.pkl").is_file() and not list(tune_dir.glob("experiment_state-*"))
    stop_leftovers(ray_tmp)
    # 3. Between snapshots: while the second trial trains.
    d = Driver(spec, storage, ray_tmp, "--resume")
    assert d.wait_line(", 1 done, "), d.output()
    d.kill()
    killed(d)
    stop_leftovers(ray_tmp)
    # 4. During the last trial (its first epoch reported, the others not yet).
    d = Driver(spec, storage, ray_tmp, "--resume")
    assert d.wait_line(f", {TRIALS - 1} done, "), d.output()
    d.kill()
    killed(d)
    restored(d)
    stop_leftovers(ray_tmp)
    # 5. During the summary, after every trial finished (their rows are all there).
    d = Driver(spec, storage, ray_tmp, "--resume", crash="summary")
    killed(d)
    restored(d)
    assert lost_and_duplicated(study_dir / "results")[:2] == (0, 0)
    stop_leftovers(ray_tmp)
    # The last resume completes the plan.
    d = Driver(spec, storage, ray_tmp, "--resume")
    assert d.finish() == 0, d.output()
    restored(d)
    assert f"{TRIALS} trials: {TRIALS} ok" in d.output()
    lost, duplicated, df = lost_and_duplicated(study_dir / "results")
    assert (lost, duplicated) == (0, 0)
    assert df.trial_id.nunique() == TRIALS and (df.status == "ok").all()
    with capsys.disabled():
        print(f"\n[kills] 5 kills at named moments, 5 resumes: {lost} lost, {duplicated} dup")


def damage(results: Path) -> tuple[Path, pd.DataFrame]:
    """Truncate the results file (the study ended compacted: the one file of every trial) and
    add four bad ones; the damaged file and the rows it held."""
    victim = results / "compacted.parquet"
    before = pd.read_parquet(victim)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    (results / "empty.parquet").write_bytes(b"")
    pq.write_table(pa.table({"x": [1], "schema_version": [2]}), results / "f.parquet")
    (results / "notes.txt").write_text("not a table")
    (results / f".{victim.stem}.123.tmp").write_bytes(b"PAR1")
    return victim, before


def rows_done(study_dir: Path) -> int:
    """Distinct (trial_id, epoch) rows the study has so far (0 before its first)."""
    try:
        df = load_results(study_dir, "all", columns=["trial_id", "epoch"])
    except ResultsError:
        return 0
    return len(df.drop_duplicates(["trial_id", "epoch"]))


def moments(study_dir: Path) -> list[tuple[str, str | int]]:
    """The kill moments a run of the study is sure to reach, from what it still has ahead:
    ("crash", point) for study.tune.start's crash points (`row:N` for each of the rows still to
    write, `summary` which every run reaches, `created` for a study not yet begun), and
    ("lines", k) for an outside kill after k per-epoch lines while one more row is still to
    come (k below the rows ahead), so the driver is still training when the kill comes."""
    ahead = max(0, TRIALS * EPOCHS - rows_done(study_dir))
    found: list[tuple[str, str | int]] = [("crash", f"row:{n}") for n in range(1, ahead + 1)]
    found += [("crash", "summary")] + ([("crash", "created")] if not study_dir.exists() else [])
    return found + [("lines", k) for k in range(1, ahead)]


def test_five_random_kills_in_a_row_then_damaged_files(study, ray_tmp, capsys):
    """Five SIGKILLs at random moments (seeded: the seed is printed), each resumed; then a
    truncated trial file, a 0-byte, a foreign, a text and a temporary file in results/. Each
    moment is drawn among those the run is sure to reach (`moments`) and the kill waits for
    it, so every seed lands all five whatever the machine's speed."""
    spec, storage, study_dir = study
    seed = int(os.environ.get("KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    kills, drawn = 0, []
    for i in range(5):
        extra = ("--resume",) if study_dir.exists() else ()
        kind, at = rng.choice(moments(study_dir))
        drawn.append(f"{kind}={at}")
        d = Driver(spec, storage, ray_tmp, *extra, crash=at if kind == "crash" else "")
        if kind == "lines":
            reached = all(d.wait_line(" | epoch ") for _ in range(int(at)))
            assert reached and d.proc.poll() is None, f"seed {seed}: {drawn}\n{d.output()}"
            d.kill()
        code = d.finish()
        assert code == -signal.SIGKILL, (
            f"kill {i} (seed {seed}, {drawn}): exit {code}\n{d.output()}"
        )
        kills += 1
        stop_leftovers(ray_tmp)
    assert kills == 5, f"seed {seed}: only {kills} of 5 kills landed before the study ended"
    d = Driver(spec, storage, ray_tmp, "--resume")
    assert d.finish() == 0, f"seed {seed}\n{d.output()}"
    lost, duplicated, df = lost_and_duplicated(study_dir / "results")
    assert (lost, duplicated) == (0, 0), f"seed {seed}"
    assert df.trial_id.nunique() == TRIALS

    assert (study_dir / "results" / "compacted.parquet").exists()  # the study ended compacted
    victim, before = damage(study_dir / "results")
    d = Driver(spec, storage, ray_tmp, "--resume")
    assert d.finish() == 0, d.output()
    restored(d)
    out = "".join(d.seen)  # all of it: the quarantine lines come first
    for name in (victim.name, "empty.parquet", "f.parquet", "notes.txt", f".{victim.stem}.123"):
        assert f"{name}" in out and (study_dir / "quarantine").exists(), name
    for trial in before.trial_id.unique():  # every trial's rows rebuilt from its checkpoint
        assert f"rebuilt trial {trial}'s rows in {study_dir / 'results'} from its" in out
    lost, duplicated, df = lost_and_duplicated(study_dir / "results")
    assert (lost, duplicated) == (0, 0)
    cols = ["trial_id", "epoch", "val_acc", "test_cal_ece", "temperature", "config_json"]
    order = ["trial_id", "epoch"]
    pd.testing.assert_frame_equal(
        df.sort_values(order).reset_index(drop=True)[cols],
        before.sort_values(order).reset_index(drop=True)[cols],
        check_dtype=False,
        check_categorical=False,
    )
    names = sorted(p.name for p in (study_dir / "results").iterdir())
    assert names == ["_shortlist.parquet", "compacted.parquet"]
    with capsys.disabled():
        print(f"\n[kills] seed {seed}: {kills} kills at {drawn}: {lost} lost, {duplicated} dup")

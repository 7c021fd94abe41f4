"""Crash and resume: SIGKILL the `study run` driver mid-study, then `study run --resume`
finishes exactly the planned trials, each with every epoch once (no duplicate, no missing
(trial_id, epoch)), and an interrupted trial continues from its checkpoint instead of starting
over: its epochs from before the crash keep the rows the first driver's Ray node wrote (the
`node_id` column; each driver starts its own local Ray, in a private temp dir RAY_TMPDIR).
Tune snapshots its experiment every TUNE_GLOBAL_CHECKPOINT_S (1 s here, instead of ≥ 10 s),
and the driver is killed once a snapshot holds a checkpoint of an unfinished trial, as Tune's
own `ExperimentAnalysis` reads the snapshot (Tune copies a snapshot to the storage path in the
background, so a file's mtime says nothing of what it holds)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState
from ray.tune import ExperimentAnalysis
from test_tune import TINY

pytestmark = pytest.mark.slow

TRIALS, EPOCHS = 6, 3
COMPLETE = TrialState.COMPLETE


@pytest.fixture
def ray_tmp():
    """A private Ray temp dir for the drivers (short: Ray's socket paths have a length limit)."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def study(spec: Path, storage: Path, ray_tmp: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    cmd = [sys.executable, "-m", "study.cli", "run", str(spec), "--storage", str(storage)]
    return subprocess.Popen(
        [*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def rows(results: Path) -> pd.DataFrame:
    files = list(results.glob("*.parquet"))
    return pd.read_parquet(results) if files else pd.DataFrame(columns=["trial_id", "epoch"])


def checkpointed(tune_dir: Path) -> set[str]:
    """Trials whose checkpoint Tune's snapshot in `tune_dir` holds (none while it has no whole
    snapshot yet)."""
    try:
        analysis = ExperimentAnalysis(str(tune_dir))
    except Exception:  # no snapshot yet, or one being copied
        return set()
    return {t.trial_id for t in analysis.trials if t.checkpoint is not None}


def test_resume_after_driver_sigkill(tmp_path, ray_tmp):
    spec = {
        **TINY,
        "name": "crash",
        "dataset": {**TINY["dataset"], "train_size": 256},
        "train": {**TINY["train"], "epochs": EPOCHS},
        "tune": {"max_concurrent_trials": 2},
        "search": {"sampler": "tpe", "trials": TRIALS},
        "space": {"method.name": ["erm", "mixup"], "train.seed": {"int": [0, 100]}},
    }
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    results = tmp_path / "studies" / "crash" / "results"
    driver = study(path, tmp_path / "studies", ray_tmp)
    tune_dir = tmp_path / "studies" / "crash" / "tune"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.poll() is None, driver.stdout.read()[-2000:]
        df = rows(results)
        counts = df.groupby("trial_id").epoch.nunique() if len(df) else pd.Series(dtype=int)
        held = checkpointed(tune_dir)
        interrupted = [t for t, n in counts.items() if n < EPOCHS and t in held]
        if interrupted and counts.size >= 2:
            break
        time.sleep(0.3)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = rows(results)
    assert interrupted, "no trial was caught between epochs"
    unfinished = set(before.groupby("trial_id").filter(lambda g: len(g) < EPOCHS).trial_id)
    # what the resumed driver will restore: the last snapshot's checkpoints of unfinished trials
    must_continue = unfinished & checkpointed(tune_dir)
    assert must_continue, (interrupted, unfinished)
    assert before.node_id.nunique() == 1
    old_node = before.node_id.iloc[0]

    resumed = study(path, tmp_path / "studies", ray_tmp, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    after = rows(results)
    assert after.trial_id.nunique() == TRIALS
    assert not after.duplicated(["trial_id", "epoch"]).any()
    assert (after.groupby("trial_id").epoch.apply(sorted).map(tuple) == (1, 2, 3)).all()
    assert (after.status == "ok").all()
    assert set(after.node_id) - {old_node}  # the resumed driver's node ran epochs
    # the first driver's rows form a prefix of each trial: only later epochs were redone
    for _, g in after.sort_values("epoch").groupby("trial_id"):
        old = (g.node_id == old_node).tolist()
        assert old == sorted(old, reverse=True), g[["epoch", "node_id"]]
    # each interrupted trial the snapshot held continued from its checkpoint: its first epoch
    # was not run again, its later ones were
    for t in must_continue:
        g = after[after.trial_id == t].set_index("epoch")
        assert g.node_id[1] == old_node and (g.node_id != old_node).any(), (t, g.node_id)
    # every Optuna trial's intermediate values are its rows' objective, one per epoch at its
    # epoch, the interrupted trials' included (what optuna-dashboard plots)
    db = f"sqlite:///{results.parent / 'optuna.db'}"
    ended = optuna.load_study(study_name="crash", storage=db).get_trials(states=(COMPLETE,))
    ran = [t for t in ended if "duplicate_of" not in t.user_attrs]
    assert {t.user_attrs["tune_trial_id"] for t in ran} == set(after.trial_id)
    for t in ran:
        g = after[after.trial_id == t.user_attrs["tune_trial_id"]].sort_values("epoch")
        assert t.intermediate_values == pytest.approx(dict(zip(g.epoch, g.val_acc, strict=True)))


def test_ctrl_c_says_how_to_continue_and_the_resume_finishes(tmp_path, ray_tmp):
    """Ctrl-C (SIGINT) mid-study: Tune stops it cleanly, the driver exits 1 with one line that
    names the command continuing it, and that command finishes the plan."""
    spec = {
        **TINY,
        "name": "ctrlc",
        "dataset": {**TINY["dataset"], "train_size": 256},
        "train": {**TINY["train"], "epochs": 6},  # slack: Ctrl-C lands before all end
        "tune": {"max_concurrent_trials": 3},
        "search": {"sampler": "random", "trials": 3},
        "space": {"train.seed": {"int": [0, 100]}},
    }
    path = tmp_path / "ctrlc.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    results = tmp_path / "studies" / "ctrlc" / "results"
    driver = study(path, tmp_path / "studies", ray_tmp, "--set", "train.lr=0.05")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not len(rows(results)):
        assert driver.poll() is None, driver.stdout.read()[-2000:]
        time.sleep(0.3)
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=180)
    assert driver.returncode == 1, out[-3000:]
    assert "stopped before the end of 3" in out, out[-3000:]  # the live status, not "3 done"
    line = next(x for x in out.splitlines() if "continue it:" in x)
    assert "of 3 planned trials complete" in line and "without all their epochs" in line, line
    command = line.split("continue it: ", 1)[1]
    assert command == (
        f"study run {path} --storage {tmp_path / 'studies'} --set train.lr=0.05 --resume"
    )
    resumed = study(path, tmp_path / "studies", ray_tmp, "--set", "train.lr=0.05", "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    after = rows(results)
    assert after.trial_id.nunique() == 3
    assert (after.groupby("trial_id").epoch.apply(sorted).map(tuple) == tuple(range(1, 7))).all()

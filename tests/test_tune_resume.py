"""Crash and resume: SIGKILL the `study run` driver mid-study, then `study run --resume`
finishes exactly the planned trials, each with every epoch once (no duplicate, no missing
(trial_id, epoch)). Each driver starts its own local Ray in a private temp dir (RAY_TMPDIR)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_tune import TINY

pytestmark = pytest.mark.slow

TRIALS, EPOCHS = 6, 3


@pytest.fixture
def ray_tmp():
    """A private Ray temp dir for the drivers (short: Ray's socket paths have a length limit)."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def study(spec: Path, storage: Path, ray_tmp: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    cmd = [sys.executable, "-m", "study.cli", "run", str(spec), "--storage", str(storage)]
    return subprocess.Popen(
        [*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def rows(results: Path) -> pd.DataFrame:
    files = list(results.glob("*.parquet"))
    return pd.read_parquet(results) if files else pd.DataFrame(columns=["trial_id", "epoch"])


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
    deadline = time.monotonic() + 240
    while rows(results).trial_id.nunique() < 3 and time.monotonic() < deadline:
        assert driver.poll() is None, driver.stdout.read()[-2000:]
        time.sleep(0.5)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = rows(results)
    assert 3 <= before.trial_id.nunique() < TRIALS or len(before) < TRIALS * EPOCHS

    resumed = study(path, tmp_path / "studies", ray_tmp, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    after = rows(results)
    assert after.trial_id.nunique() == TRIALS
    assert not after.duplicated(["trial_id", "epoch"]).any()
    assert (after.groupby("trial_id").epoch.apply(sorted).map(tuple) == (1, 2, 3)).all()
    assert (after.status == "ok").all()

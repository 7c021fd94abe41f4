"""A study begun before issue 19's move still resumes (study.compat): its Tune snapshot pickled
v0.2's module paths (study.tune.StudySearch, study.progress.LiveStatus, study.loggers.StudyCSV,
study.spec_model.StudySpec, the trainable, the writer). The fixture is what a v0.2 driver
(e519a83) left when SIGKILLed after its 5th row (STUDY_CRASH_AT=row:5) of a 4-trial, 2-epoch
study (tests/fixtures/old_snapshot.yaml); `study resume` must finish it with every trial's
epochs exactly once.

The snapshot names the folder it ran in (the writer's results directory, the live status's log,
the Optuna SQLite URL are absolute paths in it), so the fixture is put back at that path."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from test_kill_resume import ray_tmp  # noqa: F401 (a fixture: a private RAY_TMPDIR, cleaned)

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures"
WHERE = Path("/tmp/mixup-calibration-old-snapshot")  # where the v0.2 driver ran it


@pytest.fixture
def old_study():
    with open(f"{WHERE}.lock", "w") as held:  # one test run at a time uses the path
        fcntl.flock(held, fcntl.LOCK_EX)
        shutil.rmtree(WHERE, ignore_errors=True)
        shutil.copytree(FIXTURES / "old_snapshot", WHERE)
        yield WHERE
        shutil.rmtree(WHERE, ignore_errors=True)


def test_a_study_begun_before_the_move_resumes(old_study, ray_tmp):  # noqa: F811
    before = pd.read_parquet(old_study / "old-snapshot" / "results")
    assert len(before) == 5  # what the killed driver had written
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    spec = FIXTURES / "old_snapshot.yaml"
    cmd = [sys.executable, "-m", "study.cli", "resume", str(spec), "--storage", str(old_study)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "resuming study old-snapshot" in out  # Tune's snapshot restored, not restarted
    rows = pd.read_parquet(old_study / "old-snapshot" / "results")
    assert rows.trial_id.nunique() == 4 and set(rows.status) == {"ok"}
    assert sorted(rows.groupby("trial_id").epoch.apply(sorted).map(tuple)) == [(1, 2)] * 4
    kept = before.merge(rows, on=["trial_id", "epoch"], suffixes=("", "_now"))
    assert (
        kept.val_acc == kept.val_acc_now
    ).all()  # rows written before the kill stay as they were
    # a trial begun after Tune's last snapshot is run again under a new id; its first rows are
    # kept aside, not lost (study.tune.writer: orphaned_results/)
    orphans = pd.read_parquet(old_study / "old-snapshot" / "orphaned_results")
    assert len(kept) + len(orphans) == len(before) and set(orphans.trial_id).isdisjoint(
        rows.trial_id
    )
    storage = f"sqlite:///{old_study}/old-snapshot/optuna.db"
    trials = optuna.load_study(study_name="old-snapshot", storage=storage).trials
    done_trials = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    tagged = {t.user_attrs.get("tune_trial_id") for t in done_trials}  # redraws carry none
    assert set(rows.trial_id) <= tagged

"""Storage anywhere (study.tune.storage): `--storage` refusals in one line before Ray starts, and a
study on a real S3-protocol server started on loopback (moto in server mode): driver SIGKILL,
`--resume` on that storage, every (trial, epoch) row there exactly once, checkpoints there,
and the analysis reading the URI."""

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
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
import ray
import yaml
from procs import free_port, kill_marked, server
from test_tune import TINY

from study.cli.main import main
from study.tune import storage

MOTO = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p"]
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TRIALS, EPOCHS = 4, 3


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free loopback port with bucket `bkt`; yields the environment
    that points S3 clients at it (credentials and endpoint, as a user would set them)."""
    port = free_port()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with server([*MOTO, str(port)], port, {**os.environ, **env}):
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            fs, _ = pafs.FileSystem.from_uri("s3://bkt?allow_bucket_creation=true")
            fs.create_dir("bkt")
            yield env
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def refused(tmp_path: Path, capsys, where: str) -> str:
    """`study run --storage where` of a tiny spec: exit 2, one stderr line, Ray not started."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "name": "s"}))
    assert main(["run", str(path), "--storage", where]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--storage {where}" in err, err
    assert not ray.is_initialized()
    return err


def test_storage_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused(tmp_path, capsys, str(tmp_path / "file"))
    assert "Not a directory" in refused(tmp_path, capsys, str(tmp_path / "file" / "sub"))


def test_a_specs_storage_is_used_and_checked_like_the_flag(tmp_path, capsys):
    """`storage:` in a spec is where its studies live unless `--storage` says otherwise: a bad
    one is refused in one line before Ray starts; `--storage` overrides it."""
    (tmp_path / "file").write_text("x")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "name": "s", "storage": str(tmp_path / "file")}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file" in err and str(tmp_path / "file") in err
    assert not ray.is_initialized()
    assert main(["run", str(path), "--storage", str(tmp_path / "file" / "sub")]) == 2
    assert "Not a directory" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/sys/fs").is_dir(), reason="no /sys/fs")
def test_storage_on_a_read_only_filesystem(tmp_path, capsys):
    assert "not writable" in refused(tmp_path, capsys, "/sys/fs/study-storage-check")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_storage_in_a_read_only_directory(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert "not writable" in refused(tmp_path, capsys, str(ro / "studies"))


def test_storage_uri_nobody_opens(tmp_path, capsys):
    assert "s3://" in refused(tmp_path, capsys, "nosuch://bucket/x")


def test_storage_unreachable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    assert "unreachable" in refused(tmp_path, capsys, "s3://bkt/studies")


def test_storage_missing_bucket(tmp_path, capsys, s3):
    assert "bucket does not exist" in refused(tmp_path, capsys, "s3://nobucket/studies")


def test_storage_unauthorised(tmp_path, capsys, monkeypatch):
    """moto with authentication on (INITIAL_NO_AUTH_ACTION_COUNT=0) refuses unknown keys."""
    port = free_port()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with server([*MOTO, str(port)], port, {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}):
        assert "unauthorised" in refused(tmp_path, capsys, "s3://bkt/studies")


def test_location_joins_and_shows_uris():
    loc = storage.open_location("s3://bkt/a/?region=us-east-1") / "b"
    assert (loc.path, loc.uri, loc.local) == ("bkt/a/b", "s3://bkt/a/b", False)
    assert str(loc / "c") == "s3://bkt/a/b/c?region=us-east-1"  # reopenable: options kept
    local = storage.open_location("file:///tmp/x") / "y"
    assert (local.path, local.local, local.filesystem) == ("/tmp/x/y", True, None)


def s3_rows(uri: str) -> pd.DataFrame:
    """Every row under `uri`. While the study runs, a trial's file can be rewritten between
    pyarrow's listing and its read (it reads the footer at the listed size): then read again."""
    fs, path = pafs.FileSystem.from_uri(uri)
    for attempt in range(20):
        files = [f for f in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))]
        if not any(f.path.endswith(".parquet") for f in files):
            return pd.DataFrame(columns=["trial_id", "epoch"])
        try:
            return pd.read_parquet(path, filesystem=fs)
        except pa.ArrowInvalid:
            if attempt == 19:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def s3_study(s3, tmp_path_factory):
    """A study on s3://bkt/studies: its driver SIGKILLed once 2 trials have rows there, then
    resumed with `--resume` on the same storage. Yields the results URI and the resume's output."""
    tmp = tmp_path_factory.mktemp("s3study")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    spec = {
        **TINY,
        "name": "ons3",
        "dataset": {**TINY["dataset"], "train_size": 256},
        "train": {**TINY["train"], "epochs": EPOCHS},
        "tune": {"max_concurrent_trials": 2},
        "search": {"sampler": "random", "trials": TRIALS},
        "space": {"method.name": ["erm", "mixup"], "train.seed": {"int": [0, 100]}},
    }
    path = tmp / "ons3.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    cmd = [sys.executable, "-m", "study.cli", "run", str(path), "--storage", "s3://bkt/studies"]
    results = "s3://bkt/studies/ons3/results"
    try:
        driver = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while s3_rows(results).trial_id.nunique() < 2 and time.monotonic() < deadline:
            assert driver.poll() is None, driver.stdout.read()[-2000:]
            time.sleep(0.5)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        before = s3_rows(results)
        kill_marked(ray_tmp)
        resumed = subprocess.run(
            [*cmd, "--resume"], env=env, cwd=tmp, capture_output=True, text=True, timeout=400
        )
        yield results, before, resumed, tmp
    finally:
        kill_marked(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_s3_study_survives_a_driver_kill(s3_study):
    results, before, resumed, cwd = s3_study
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(before) < TRIALS * EPOCHS  # the kill came before the end
    after = s3_rows(results)
    assert after.trial_id.nunique() == TRIALS and (after.status == "ok").all()
    assert not after.duplicated(["trial_id", "epoch"]).any()
    assert set(after.groupby("trial_id").epoch.apply(lambda e: tuple(sorted(e)))) == {
        tuple(range(1, EPOCHS + 1))
    }
    fs, tune_dir = pafs.FileSystem.from_uri("s3://bkt/studies/ons3/tune")
    found = fs.get_file_info(pafs.FileSelector(tune_dir, recursive=True))
    assert sum(f.path.endswith("state.pt") for f in found) >= TRIALS  # checkpoints on S3
    assert not (cwd / "s3:").exists()  # not a local folder named like the URI
    assert results in resumed.stdout


@pytest.mark.slow
def test_analysis_reads_the_s3_study(s3_study):
    """`analysis.load_results(URI)` and `analysis report URI` on the study's S3 results."""
    import analysis
    from analysis.cli import main as analysis_main

    results, _, resumed, cwd = s3_study
    assert resumed.returncode == 0
    df = analysis.load_results(results)
    assert len(df) == TRIALS and set(df.epoch) == {EPOCHS}
    assert analysis_main(["report", results, "--out", str(cwd / "report")]) == 0
    assert (cwd / "report" / "report.md").is_file()

"""A cluster started the way a user starts one: `ray start --head` and `ray start --address` as
separate process trees on loopback (1 CPU each, private temp dir, free ports), token
authentication on every process (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN). `study run --address`
spreads trials over both nodes; the worker node's raylet is SIGKILLed while a trial runs there
and that trial finishes from its last checkpoint on the head: every trial has epochs 1..E
exactly once, and the resumed trial's last epoch equals an uninterrupted run of its config.
A driver without the token is refused in one line that says so. Every Ray process started
here is stopped by PID (never `ray stop`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
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
from procs import free_port, kill_marked, pids_with

from study.cli.main import main
from study.train import resolve
from study.train.trial import run_trial

pytestmark = pytest.mark.slow

EPOCHS = 8  # slack: the kill must land while the chosen trial still has epochs to go
RAY = str(Path(sys.executable).with_name("ray"))
SPEC = {
    "name": "nodes",
    "dataset": {"name": "digits", "val_size": 100, "test_size": 100},
    "model": {"name": "small_cnn", "width": 16},
    "train": {"epochs": EPOCHS, "batch_size": 32, "milestones": [4]},
    "runtime": {"device": "cpu"},
    "resources": {"cpu": 1},
    "tune": {"max_failures": 2},
    "grid": {"method.name": ["erm", "mixup"]},
}


def _ports() -> list[str]:
    """Free ports for the per-node services that otherwise take fixed defaults."""
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port")
    return [f"--{n}={free_port()}" for n in names]


@pytest.fixture(scope="module")
def cluster():
    """Head + worker node; yields (address, env with the token, {"head"|"worker": raylet pid,
    node id}). Everything whose command line holds the private temp dir is killed after."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    common += [f"--temp-dir={temp}"]
    try:
        head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false"]
        head += [f"--ray-client-server-port={free_port()}", *common, *_ports()]
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=180)
        worker = [RAY, "start", f"--address=127.0.0.1:{port}", *common, *_ports()]
        subprocess.run(worker, env=env, check=True, capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}", env, _raylets(temp)
    finally:
        kill_marked(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _raylets(temp: str) -> dict[str, tuple[int, str]]:
    """The two raylets of the cluster: role → (pid, node id), read from their command lines."""
    out = {}
    for pid in pids_with(temp):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if not cmd[0].endswith(b"/raylet"):
            continue
        args = [a.decode() for a in cmd]
        node = next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
        out["head" if "--head" in args else "worker"] = (pid, node)
    assert set(out) == {"head", "worker"}, out
    return out


def rows(results: Path) -> pd.DataFrame:
    if not list(results.glob("*.parquet")):
        return pd.DataFrame(columns=["trial_id", "epoch", "node_id"])
    return pd.read_parquet(results)


def test_node_loss_mid_trial(tmp_path, cluster):
    address, env, raylets = cluster
    (worker_pid, worker_node), (_, head_node) = raylets["worker"], raylets["head"]
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    results = tmp_path / "studies" / "nodes" / "results"
    cmd = [sys.executable, "-m", "study.cli", "run", str(path), "--address", address]
    driver = subprocess.Popen(
        [*cmd, "--storage", str(tmp_path / "studies")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # a trial on the worker, past its first checkpoint
            df = rows(results)  # and at most half-way, so it cannot finish before the kill lands
            there = df[df.node_id == worker_node]
            if len(there) and there.epoch.max() <= EPOCHS // 2:
                break
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            time.sleep(0.2)
        killed = there.trial_id.iloc[0]
        # the node is lost: its raylet and the worker processes it started (a raylet killed alone
        # leaves its workers running for a while, and a fast trial can finish there)
        children = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True)
        for pid in [worker_pid, *map(int, children.stdout.split())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = driver.communicate(timeout=400)
    finally:
        driver.kill()
    assert driver.returncode == 0, out[-3000:]
    df = rows(results)
    assert set(df.node_id) == {head_node, worker_node}  # trials ran on both nodes
    assert not df.duplicated(["trial_id", "epoch"]).any() and (df.status == "ok").all()
    assert set(df.groupby("trial_id").epoch.apply(lambda e: tuple(sorted(e)))) == {
        tuple(range(1, EPOCHS + 1))
    }
    mine = df[df.trial_id == killed].sort_values("epoch")
    assert mine.node_id.iloc[-1] == head_node  # finished on the surviving node
    assert re.search(r"1 CPU per trial: 2 at once on the cluster \(2 CPU\)", out)

    cfg = resolve.trial_config(json.loads(mine.config_json.iloc[-1]))
    uninterrupted = run_trial(cfg).last_row
    last = mine.iloc[-1]
    for col in ("train_loss", "train_acc", "val_acc", "val_nll", "test_nll", "test_cal_ece"):
        assert last[col] == uninterrupted[col], col


def test_driver_without_the_token_is_told(tmp_path, capsys, monkeypatch, cluster):
    address, env, _ = cluster
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    argv = ["run", str(path), "--address", address, "--storage", str(tmp_path / "s")]
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "this cluster uses token authentication: set RAY_AUTH_MODE=token and" in err
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-cluster-token")
    assert main(argv) == 2
    assert f"the cluster at {address} refused this machine's token" in capsys.readouterr().err

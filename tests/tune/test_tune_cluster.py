"""`study run --address` on two Ray nodes (`ray.cluster_utils.Cluster`, head + worker, 1 CPU
each, private temp dir): trials run on both nodes, told apart by the `node_id` column."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest
import yaml
from ray.cluster_utils import Cluster
from test_tune import TINY

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes():
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "temp_dir": temp, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_trials_run_on_both_nodes(tmp_path, two_nodes):
    spec = {**TINY, "name": "two", "grid": {"method.name": ["erm", "mixup", "mit_l", "mit_a"]}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    storage = tmp_path / "studies"
    cmd = ["run", str(path), "--storage", str(storage), "--address", two_nodes.address]
    done = subprocess.run(
        [sys.executable, "-m", "study.cli", *cmd], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    df = pd.read_parquet(storage / "two" / "results")
    assert len(df) == 4 * 2 and not df.duplicated(["trial_id", "epoch"]).any()
    assert (df.status == "ok").all()
    nodes = {n.node_id for n in two_nodes.list_all_nodes()}
    assert set(df.node_id) == nodes and len(nodes) == 2

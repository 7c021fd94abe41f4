"""GPUs without a GPU: a Ray node that declares one GPU (`num_gpus=1`) runs `resources.gpu: 0.25`
trials four at once on it, and each trial records the GPU Ray assigned it (`gpu_ids`, the same as
its CUDA_VISIBLE_DEVICES). `runtime.device: cpu`, so it runs on a machine without CUDA.

Concurrency is proven, not timed: the trials use method "barrier" (ERM whose build waits until
four trials have started), so the study only succeeds if all four ran at once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml
from test_tune import TINY

from study.cli.main import main
from study.train import methods

pytestmark = pytest.mark.slow

TRIALS = 4


def barrier_hook(directory: str):
    """A function registering method "barrier" (nested, so Ray pickles it by value): its build
    writes `<pid>.txt` (Ray's GPU ids and CUDA_VISIBLE_DEVICES) in `directory`, waits (≤ 120 s)
    until TRIALS such files exist, then builds ERM."""

    def register_barrier() -> None:
        import os
        import time

        def build(cfg, ctx):
            seen = f"{ray.get_gpu_ids()}|{os.environ.get('CUDA_VISIBLE_DEVICES')}"
            Path(directory, f"{os.getpid()}.txt").write_text(seen)
            deadline = time.monotonic() + 120
            while len(list(Path(directory).glob("*.txt"))) < TRIALS:
                if time.monotonic() > deadline:
                    raise TimeoutError("the trials did not run at once")
                time.sleep(0.1)
            return methods.get("erm").build(cfg, ctx)

        methods.register("barrier", methods.MethodEntry(build, takes_alpha=False))

    return register_barrier


@pytest.fixture
def one_declared_gpu(tmp_path):
    marks = tmp_path / "started"
    marks.mkdir()
    hook = barrier_hook(str(marks))
    hook()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp,
        runtime_env={"worker_process_setup_hook": hook},
    )
    yield marks
    ray.shutdown()
    methods.METHODS.pop("barrier", None)
    shutil.rmtree(temp, ignore_errors=True)


def test_four_trials_share_one_declared_gpu(tmp_path, capsys, one_declared_gpu):
    spec = {
        **TINY,
        "name": "packed",
        "train": {**TINY["train"], "epochs": 1},
        "method": {"name": "barrier"},
        "resources": {"cpu": 0.5, "gpu": 0.25},
        "grid": {"train.seed": list(range(TRIALS))},
    }
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(path), "--storage", str(tmp_path / "studies")]) == 0
    out = capsys.readouterr().out
    assert "0.5 CPU + 0.25 GPU per trial: 4 trials at once per GPU; 4 at once" in out
    df = pd.read_parquet(tmp_path / "studies" / "packed" / "results")
    assert len(df) == TRIALS and (df.status == "ok").all(), df.message.tolist()
    assert set(df.gpu_ids) == {"0"} and set(df.device) == {"cpu"}
    seen = [p.read_text() for p in one_declared_gpu.glob("*.txt")]
    assert len(seen) == TRIALS and set(seen) == {"[0]|0"}  # 4 processes, each given GPU 0

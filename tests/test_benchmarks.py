"""Every benchmark runs, small: a benchmark nobody runs breaks silently (bench_scale once did;
bench_analysis, run small here for the first time, found `analysis report` crashing on a Table 1
cell one dataset lacks). Each is run as the docs show it, with arguments that make it take
seconds, and must exit 0 with its result line; the numbers themselves are not judged here
(timing belongs in benchmarks/, on a quiet machine, never in a test)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = {  # benchmark → (small arguments, a line its output must hold)
    "bench_scale": (
        "--trials 4 --epochs 2 --old-epochs 1 --epoch 0.2 --latency 0.01 "
        "--tune-trials 2 --tune-epochs 2 --epoch-tune 0.2",
        "tune delayed",
    ),
    "bench_scale_memory": ("2 3", "kB per row"),
    "bench_analysis": ("--trials 20 --epochs 3 --repeat 1", "analysis report wall time"),
    "bench_compile": ("--steps 1 --counts-only", "graphs over"),
    "bench_optuna_storage": ("--trials 4 --kills 1", "reopened"),
    "bench_trial_overhead": ("--repeats 1", "ratio trial/bare"),
    "bench_temperature": ("", "speed-up"),
    "bench_precision": (
        "--width 8 --trial-width 4 --train-size 200 --epochs 1 --methods erm",
        "| erm |",
    ),
}
NOT_HERE = {  # benchmark → why it is not run here
    "bench_gpu": "needs CUDA; tests/test_bench_gpu.py checks it exits cleanly without",
    "bench_loader": "no size arguments: 28 s at its one size",
    "bench_tune_overhead": "no size arguments: two studies of 24 trials, 122 s",
}


def test_every_benchmark_is_run_here_or_says_why_not():
    found = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert found == set(SMALL) | set(NOT_HERE), found ^ (set(SMALL) | set(NOT_HERE))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_benchmark_runs_small(name):
    args, expected = SMALL[name]
    script = ROOT / "benchmarks" / f"{name}.py"
    # as its docstring says to run it: a script beside benchmarks/common.py, or a module
    how = (
        [str(script)]
        if "from common import" in script.read_text()
        else ["-m", f"benchmarks.{name}"]
    )
    temp = tempfile.mkdtemp(prefix="bench", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": temp}
    try:
        done = subprocess.run(
            [sys.executable, *how, *args.split()],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert expected in out, out[-3000:]

"""Time `analysis report` on 10,000 synthetic trials × 200 epochs (2 million rows).

Target (issue 4): ≤ 15 s wall time and ≤ 2 GB peak memory on a 2-core machine. The results are
generated vectorised (analysis.synthetic) as a modest number of Parquet files of exactly
`study.results.SCHEMA`, 1% of trials diverged and 0.5% errored; then the report runs as a child
process so its peak RSS (getrusage of children) is its own.

    .venv/bin/python benchmarks/bench_analysis.py [--trials 10000] [--epochs 200] [--files 40]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import synthetic
from study.results import write_atomic

DATASETS = ["svhn", "cifar10", "cifar100", "tiny_imagenet"]
MODELS = [("resnet18", False), ("resnet50", False), ("resnet110", False), ("resnet152", False)]
MODELS.append(("tv_resnet18", True))
ABLATIONS = [(m, 1.0, None) for m in ("mixup_dt", "mixup_to", "mixup_sc", "mixup_io")]
VARIANTS = [("erm", None, None), *[("mixup", a, None) for a in (0.1, 0.5, 1.0)], *ABLATIONS]
VARIANTS += [("mit_l", 1.0, 0.5), ("mit_a", 1.0, 0.5)]
TARGET_SECONDS, TARGET_BYTES = 15.0, 2 * 1024**3


def cells(rng: np.random.Generator) -> pd.DataFrame:
    """Every dataset × model × variant, with plausible final accuracy and calibrated ECE."""
    keys = ["dataset", "model", "pretrained", "method", "alpha", "margin"]
    grid = [(d, *m, *v) for d in DATASETS for m in MODELS for v in VARIANTS]
    frame = pd.DataFrame(grid, columns=keys)
    frame["test_acc"] = rng.uniform(0.45, 0.96, len(frame))
    frame["test_cal_ece"] = rng.uniform(0.004, 0.03, len(frame))
    return frame


def generate(directory: Path, trials: int, epochs: int, files: int) -> int:
    """Write the synthetic results; returns the number of rows written."""
    rng = np.random.default_rng(0)
    grid = cells(rng)
    frame = synthetic.trials(grid, seeds=max(1, trials // len(grid)))
    ids = frame["trial_id"].to_numpy()
    diverged, errored = ids[::100], ids[50::200]
    written = 0
    for i, part in enumerate(synthetic.chunks(frame, files)):
        rows = synthetic.epoch_rows(part, epochs, noise=0.005, seed=i)
        rows = synthetic.fail_trials(rows, list(diverged), "diverged", "loss is nan", seed=i)
        rows = synthetic.fail_trials(rows, list(errored), "error", "CUDA out of memory", seed=i)
        write_atomic(synthetic.to_arrow(rows), directory / f"part-{i:04d}.parquet")
        written += len(rows)
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--files", type=int, default=40)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        start = time.perf_counter()
        rows = generate(results, args.trials, args.epochs, args.files)
        took = time.perf_counter() - start
        print(f"generated {rows:,} rows, {args.trials:,} trials, {args.files} files: {took:.1f} s")
        command = [sys.executable, "-m", "analysis", "report", str(results), "--out", tmp + "/out"]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    ok = seconds <= TARGET_SECONDS and peak <= TARGET_BYTES
    print(f"analysis report wall time: {seconds:.1f} s (target ≤ {TARGET_SECONDS:.0f} s)")
    print(f"analysis report CPU time: {usage.ru_utime + usage.ru_stime:.1f} s (user + system)")
    print(f"analysis report peak RSS: {peak / 1024**2:,.0f} MiB (target ≤ 2,048 MiB)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

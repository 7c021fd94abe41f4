"""Helpers shared by the benchmarks: CIFAR-shaped images (the shared copy when present) and
timing by best-of-k, reported as ratios measured in the same run (machines are noisy)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10"


def cifar_images(
    n: int = 10_000, dest: Path = Path("/tmp/bench-cifar10")
) -> tuple[np.ndarray, np.ndarray, str]:
    """n CIFAR-10 training images as uint8 NHWC + labels, and where they came from."""
    if (SHARED_CIFAR / "extract.sh").exists():
        from study.train import data as data_mod
        from study.train.config import DataConfig

        subprocess.run(["bash", str(SHARED_CIFAR / "extract.sh"), str(dest)], check=True)
        d = data_mod.load(DataConfig("imagefolder", root=str(dest), train_size=n))
        return (
            d.train_x.numpy().transpose(0, 2, 3, 1).copy(),
            d.train_y.numpy(),
            "CIFAR-10 JPEG copy",
        )
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), "random"


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of `repeats` wall-clock timings of fn() (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

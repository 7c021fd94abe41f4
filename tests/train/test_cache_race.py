"""Concurrent use is safe: several processes decoding one image folder at once (released
together by a barrier) all get the same arrays; one cache file is left, no temporary files;
a damaged cache is decoded again instead of failing."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
from PIL import Image

from study.train import readers

PROCESSES = 6


def _folder(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / label / f"{i}.png")
    return root


def _decode(root: str, barrier, out) -> None:
    """One process: decode the folder when all are ready; writing the cache is slowed to 0.5 s
    (a slow shared filesystem), so the writers overlap whatever the machine's load."""
    save = np.savez

    def slow_save(*args, **kwargs) -> None:
        save(*args, **kwargs)
        time.sleep(0.5)

    np.savez = slow_save  # this child process only
    try:
        files = readers._class_files(Path(root) / "train")
        barrier.wait()
        x, y = readers._decode(Path(root), "train", files)
        out.put((int(x.sum()), int(y.sum()), x.shape))
    except Exception as e:  # reported to the test, which fails on it
        out.put(repr(e))


def test_processes_decoding_together_share_one_cache(tmp_path):
    root = _folder(tmp_path / "images")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_decode, args=(str(root), barrier, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(r, tuple) for r in results), results
    assert len(set(results)) == 1 and results[0][2] == (80, 3, 16, 16)
    cache = list((root / ".study-cache").iterdir())
    assert len(cache) == 1 and cache[0].suffix == ".npz", cache


def test_a_damaged_cache_is_decoded_again(tmp_path):
    root = _folder(tmp_path / "images", n=3)
    files = readers._class_files(root / "train")
    x, _ = readers._decode(root, "train", files)
    (cache,) = (root / ".study-cache").iterdir()
    cache.write_bytes(cache.read_bytes()[:100])
    again, _ = readers._decode(root, "train", files)
    np.testing.assert_array_equal(again, x)

"""What the driver holds per trial at scale (issue 21; docs/study.md "Scale"): TRIALS trials
× EPOCHS rows of bench_scale's realistic rows, each set and written through a lazy TrialRows as
study.tune.writer does, then the Python heap still held (tracemalloc) and Arrow's allocations
(the converted table each TrialRows keeps), scaled to 1,000 trials.

`python -m benchmarks.bench_scale_memory [TRIALS] [EPOCHS]` (default 20 50)."""

from __future__ import annotations

import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.bench_scale import make_row
from study.results.trial_rows import TrialRows


def main(trials: int = 20, epochs: int = 50) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        tracemalloc.start()
        held = []
        for t in range(trials):  # rows as Ray hands them over: objects of their own
            rows = TrialRows(Path(d) / f"t{t}.parquet", lazy=True)
            for e in range(1, epochs + 1):
                rows.set({**make_row(t, e, epochs, rng), "study": "s", "trial_id": f"t{t}"})
                rows.write()
            held.append(rows)
        heap, arrow = tracemalloc.get_traced_memory()[0], pa.total_allocated_bytes()
    per_row = (heap + arrow) / (trials * epochs)
    print(
        f"{trials} trials × {epochs} epochs: Python {heap / 1e6:.1f} MB + Arrow {arrow / 1e6:.1f} "
        f"MB = {per_row / 1e3:.1f} kB per row; 1,000 trials: {per_row * 1000 * epochs / 1e9:.2f} GB"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

"""Ray Tune's overhead per trial (issue 3): `study run` of 8 one-epoch trials against the same 8
trials run one after another with `study trial`.

The 8 trials are the 8 methods on scikit-learn's digits with the small CNN, one epoch, one torch
thread each (offline). Both sides are timed as whole commands (process start to exit): the study
with one trial at a time and with two at once (what a 2-core machine gets), `study trial` as 8
processes in a row. A study's time splits into a fixed cost (Ray's start and stop, the first
worker) and a cost per trial: the marginal one is measured from a 24-trial study (the 8 methods
× 3 seeds), less the extra trials' own epoch seconds (from the Parquet rows).
Run: .venv/bin/python benchmarks/bench_tune_overhead.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

METHODS = ["erm", "mixup", "mixup_dt", "mixup_to", "mixup_sc", "mixup_io", "mit_l", "mit_a"]
SPEC = {
    "name": "overhead",
    "dataset": {"name": "digits"},
    "model": {"name": "small_cnn"},
    "train": {"epochs": 1, "batch_size": 64},
    "runtime": {"device": "cpu", "threads": 1},
    "resources": {"cpu": 1},
    "grid": {"method.name": METHODS},
}


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "study.cli", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def study(spec: Path, storage: Path, *sets: str) -> tuple[float, float, int]:
    """Wall seconds of `study run`, the trials' summed epoch seconds, and the trial count."""
    seconds = timed(
        "run", str(spec), "--storage", str(storage), *(a for s in sets for a in ("--set", s))
    )
    rows = pd.read_parquet(storage / "overhead" / "results")
    assert (rows.status == "ok").all() and len(rows) == rows.trial_id.nunique()
    return seconds, rows.epoch_seconds.sum(), len(rows)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_tune_"))
    spec = work / "overhead.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    n = len(METHODS)
    trials = sum(timed("trial", str(spec), "--set", f"method.name={m}", "--quiet") for m in METHODS)
    print(f"8 x `study trial`, one after another: {trials:6.1f} s ({trials / n:.2f} s per trial)")
    runs = {c: study(spec, work / f"c{c}", f"tune.max_concurrent_trials={c}") for c in (1, 2)}
    for c, (seconds, epochs, _) in runs.items():
        print(
            f"`study run`, {c} trial(s) at once:    {seconds:6.1f} s (epochs {epochs:.1f} s); "
            f"vs `study trial`: {(seconds - trials) / n:+.2f} s per trial"
        )
    grid = {**SPEC["grid"], "train.seed": [0, 1, 2]}
    spec.write_text(yaml.safe_dump({**SPEC, "grid": grid}, sort_keys=False))
    seconds_many, epochs_many, count = study(spec, work / "c1_many", "tune.max_concurrent_trials=1")
    seconds8, epochs8, _ = runs[1]
    marginal = (seconds_many - seconds8 - (epochs_many - epochs8)) / (count - n)
    fixed = seconds8 - epochs8 - n * marginal
    print(
        f"`study run` of {count} trials, 1 at once: {seconds_many:6.1f} s "
        f"(epochs {epochs_many:.1f} s)\n"
        f"Tune's cost: {fixed:.1f} s once per study + {marginal:.2f} s per trial "
        "(beyond the trial's epochs)"
    )


if __name__ == "__main__":
    main()

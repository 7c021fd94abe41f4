"""Time `analysis report` on 10,000 synthetic trials × 200 epochs (2 million rows).

Target (issue 4): ≤ 15 s wall time and ≤ 2 GB peak memory on a 2-core machine. By default the
results have a study's layout: one `<trial_id>.parquet` per trial (10,000 files of 200 rows,
each of exactly `study.results.SCHEMA`, written by `pyarrow.parquet.write_table` as
`study.results.write_atomic` does); `--files N` groups the trials into N files instead (the
old benchmark: 40). 1% of trials diverge and 0.5% error. Rows are generated vectorised
(analysis.synthetic) a batch of trials at a time, then each trial's rows are a zero-copy slice
of the batch's Arrow table. The report runs as a child process, `--repeat` times; each run's
wall time, CPU time (user + system) and peak RSS come from that child alone (os.wait4), and the
best run is what counts (the machine is shared: wall time depends on the other jobs).

    .venv/bin/python benchmarks/bench_analysis.py [--trials 10000] [--epochs 200]
        [--files N] [--results DIR] [--repeat 3]

`--results DIR` keeps the generated results in DIR (and reuses them when DIR already holds
results), so repeated benchmarks skip the generation.

`--compare REF` measures instead, once each and in the same run (ratios, not seconds, are what
carries over between machines): the report's scalar columns read by this loader, pyarrow.dataset,
polars and DuckDB (those installed: the `bench` extra); `analysis report` with the analysis
package of git revision REF (its loader: e.g. 65cd419, the hand-built reader on pyarrow's
private ParquetReader) and with this one; then the results compacted (study.results.compact, on hard
links of the files) and the load and the report on them.

    .venv/bin/python benchmarks/bench_analysis.py --results DIR --compare 65cd419
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from analysis import synthetic
from study.results.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[1]

DATASETS = ["svhn", "cifar10", "cifar100", "tiny_imagenet"]
MODELS = [("resnet18", False), ("resnet50", False), ("resnet110", False), ("resnet152", False)]
MODELS.append(("tv_resnet18", True))
ABLATIONS = [(m, 1.0, None) for m in ("mixup_dt", "mixup_to", "mixup_sc", "mixup_io")]
VARIANTS = [("erm", None, None), *[("mixup", a, None) for a in (0.1, 0.5, 1.0)], *ABLATIONS]
VARIANTS += [("mit_l", 1.0, 0.5), ("mit_a", 1.0, 0.5)]
TARGET_SECONDS, TARGET_BYTES = 15.0, 2 * 1024**3
BATCH_TRIALS = 250  # trials generated at once (50,000 rows of 200 epochs: ~100 MB)


def cells(rng: np.random.Generator) -> pd.DataFrame:
    """Every dataset × model × variant, with plausible final accuracy and calibrated ECE."""
    keys = ["dataset", "model", "pretrained", "method", "alpha", "margin"]
    grid = [(d, *m, *v) for d in DATASETS for m in MODELS for v in VARIANTS]
    frame = pd.DataFrame(grid, columns=keys)
    frame["test_acc"] = rng.uniform(0.45, 0.96, len(frame))
    frame["test_cal_ece"] = rng.uniform(0.004, 0.03, len(frame))
    return frame


def generate(directory: Path, trials: int, epochs: int, files: int = 0) -> tuple[int, int]:
    """Write the synthetic results: one file per trial (`files` 0), else `files` files; returns
    the numbers of rows and trials written (`trials` rounded down to whole seeds of the 200
    cells). Progress goes to stderr."""
    rng = np.random.default_rng(0)
    grid = cells(rng)
    frame = synthetic.trials(grid, seeds=max(1, trials // len(grid)))
    ids = frame["trial_id"].to_numpy()
    diverged, errored = list(ids[::100]), list(ids[50::200])
    per_trial = files <= 0
    parts = -(-len(frame) // BATCH_TRIALS) if per_trial else files
    directory.mkdir(parents=True, exist_ok=True)
    written, start = 0, time.perf_counter()
    for i, part in enumerate(synthetic.chunks(frame, parts)):
        rows = synthetic.epoch_rows(part, epochs, noise=0.005, seed=i)
        rows = synthetic.fail_trials(rows, diverged, "diverged", "loss is nan", seed=i)
        rows = synthetic.fail_trials(rows, errored, "error", "CUDA out of memory", seed=i)
        table = synthetic.to_arrow(rows)
        assert table.schema.equals(SCHEMA)
        if per_trial:  # rows are grouped by trial: each trial is one slice of the batch
            trial = rows["trial_id"].to_numpy()
            starts = np.flatnonzero(np.r_[True, trial[1:] != trial[:-1]])
            stops = np.r_[starts[1:], len(trial)]
            for lo, hi in zip(starts, stops, strict=True):
                pq.write_table(table.slice(lo, hi - lo), directory / f"{trial[lo]}.parquet")
        else:
            pq.write_table(table, directory / f"part-{i:04d}.parquet")
        written += len(rows)
        took = time.perf_counter() - start
        print(f"\rgenerating: {written:,} rows, {took:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return written, len(frame)


def run_child(
    command: list[str], env: dict | None = None, cwd: Path | None = None
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS bytes of one child process, from
    its own resource usage. `cwd` (default: the filesystem root) comes first in a `python -m`
    child's path: never the repository unless asked."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=cwd or "/"
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            log.seek(0)
            sys.stderr.write(log.read().decode()[-3000:])
            raise SystemExit(f"{' '.join(command[:4])} failed with status {status}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # Linux: KiB


def run_report(results: Path, out: Path, env: dict | None = None) -> tuple[float, float, int]:
    """One `analysis report` child process (see run_child), of the analysis package first on
    `env`'s PYTHONPATH (default: this one)."""
    env = env or {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "analysis", "report", str(results), "--out", str(out)]
    return run_child(command, env)


# The scalar columns the report reads at every row (analysis/report.py), read by each engine.
SCALARS = [
    *["study", "trial_id", "dataset", "model", "method", "pretrained", "alpha", "margin"],
    *["constraint", "seed", "epoch", "epochs", "status", "message", "test_acc", "test_nll"],
    *["test_ece", "test_cal_ece", "test_opt_ece", "test_conf", "test_brier", "schema_version"],
]
ENGINES = {
    "this loader (study.results.read.read)": "from study import results_read\n"
    "n = len(results_read.read(D, C, dictionary=True).table)",
    "pyarrow.dataset": "import pyarrow.dataset as ds\n"
    "n = ds.dataset(D, format='parquet').to_table(columns=C).num_rows",
    "polars scan_parquet": "import polars as pl\n"
    "n = pl.scan_parquet(D + '/*.parquet').select(C).collect().height",
    "DuckDB read_parquet": "import duckdb\n"
    "Q = ', '.join(chr(34) + c + chr(34) for c in C)\n"
    "n = len(duckdb.sql(f\"select {Q} from read_parquet('{D}/*.parquet')\").fetch_arrow_table())",
}


def compare(results: Path, tmp: Path, old_ref: str) -> list[str]:
    """In one run: the report's scalar columns by each engine; `analysis report` with the
    analysis package of `old_ref` (its loader) and with this one; and the same on a compacted
    copy of the results (hard links, so the originals stay). Returns the printed lines."""
    lines = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    for name, code in ENGINES.items():
        head = f"import sys\nD, C = sys.argv[1], {SCALARS!r}\n"
        try:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            wall, cpu, peak = run_child([sys.executable, "-c", head + code, str(results)], env)
        except SystemExit as err:
            say(f"engine {name}: not measured ({err})")
            continue
        say(f"engine {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, {peak / 2**20:,.0f} MiB")
    old = tmp / "old"
    old.mkdir()
    archive = subprocess.run(["git", "archive", old_ref, "analysis"], capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old), str(ROOT)])}
    runs = {"old": run_report(results, tmp / "out-old", env), "new": run_report(results, tmp / "o")}
    for code, (wall, cpu, peak) in runs.items():
        say(
            f"report, {code} loader, per-trial files: {wall:.1f} s wall, {cpu:.1f} s CPU, "
            f"{peak / 2**20:,.0f} MiB"
        )
    say(f"ratio new/old (wall): {runs['new'][0] / runs['old'][0]:.2f}")
    packed = tmp / "compacted" / "results"
    packed.mkdir(parents=True)
    for f in results.glob("*.parquet"):
        os.link(f, packed / f.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys\nfrom study.results.compact import compact\ncompact(sys.argv[1])"
    wall, cpu, peak = run_child([sys.executable, "-c", code, str(packed)], env)
    say(
        f"compaction of {len(list(results.glob('*.parquet'))):,} files (in a child): "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU, {peak / 2**20:,.0f} MiB"
    )
    load = (  # the report's read: its columns, the bins at the chosen rows, every epoch's curves
        "import sys\nfrom analysis import read_results\nfrom analysis.report import "
        "TABLE_COLUMNS, CURVE_COLUMNS, BIN_COLUMNS\nread_results(sys.argv[1], columns="
        "[*TABLE_COLUMNS, *BIN_COLUMNS], every=CURVE_COLUMNS)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    old_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(old), str(ROOT)])}
    timings = {
        "load, old loader, per-trial files": run_child(
            [sys.executable, "-c", load, str(results)], old_env
        ),
        "load, per-trial files": run_child([sys.executable, "-c", load, str(results)], env),
        "load, compacted": run_child([sys.executable, "-c", load, str(packed)], env),
        "report, compacted": run_report(packed, tmp / "out-packed"),
    }
    for what, (wall, cpu, peak) in timings.items():
        say(f"{what}: {wall:.1f} s wall, {cpu:.1f} s CPU, {peak / 2**20:,.0f} MiB")
    ratio = timings["load, compacted"][0] / timings["load, per-trial files"][0]
    loads = timings["load, per-trial files"][0] / timings["load, old loader, per-trial files"][0]
    say(f"ratio new/old load (wall), per-trial files: {loads:.2f}")
    say(
        f"ratio compacted/per-trial files: load {ratio:.2f}, report "
        f"{timings['report, compacted'][0] / runs['new'][0]:.2f}"
    )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument(
        "--files", type=int, default=0, help="group the trials into N files (default: one each)"
    )
    p.add_argument("--results", type=Path, default=None, help="keep/reuse the results here")
    p.add_argument("--repeat", type=int, default=3, help="report runs; the best one counts")
    p.add_argument(
        "--compare",
        metavar="REF",
        help="instead: engines, the report with REF's analysis package (its loader) and with "
        "this one, and compacted against not, in one run (e.g. --compare 65cd419)",
    )
    args = p.parse_args()
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            results = (args.results or Path(tmp) / "results").resolve()
            if not (results.is_dir() and any(results.glob("*.parquet"))):
                generate(results, args.trials, args.epochs, args.files)
            compare(results, Path(tmp), args.compare)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp) / "results"
        existing = list(results.glob("*.parquet")) if results.is_dir() else []
        if existing:
            rows = sum(pq.read_metadata(f).num_rows for f in existing)
            print(f"reusing {rows:,} rows in {len(existing):,} files under {results}")
        else:
            start = time.perf_counter()
            rows, trials = generate(results, args.trials, args.epochs, args.files)
            took = time.perf_counter() - start
            count = len(list(results.glob("*.parquet")))
            print(f"generated {rows:,} rows, {trials:,} trials, {count:,} files: {took:.0f} s")
        runs = []
        for i in range(args.repeat):
            seconds, cpu, peak = run_report(results, Path(tmp) / "out")
            runs.append((seconds, cpu, peak))
            load = os.getloadavg()[0]
            print(
                f"run {i + 1}: {seconds:.1f} s wall, {cpu:.1f} s CPU, "
                f"{peak / 1024**2:,.0f} MiB peak RSS (load average {load:.1f})"
            )
    if not runs:  # --repeat 0: generate only
        return 0
    seconds, cpu, worst = min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)
    ok = seconds <= TARGET_SECONDS and worst <= TARGET_BYTES
    print(f"analysis report wall time: {seconds:.1f} s, best of {len(runs)} (target ≤ 15 s)")
    print(f"analysis report CPU time: {cpu:.1f} s (user + system, best of {len(runs)})")
    print(f"analysis report peak RSS: {worst / 1024**2:,.0f} MiB, worst run (target ≤ 2,048 MiB)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Results writing at scale (issue 21): the serial writer (`workers=0`, every report rewrites its
trial's file inside Tune's loop) against the background writer (`workers=K` threads, coalesced),
each trial's rows in one file rewritten whole on every epoch ("whole", the layout before) or one
file per epoch, written once ("epochs", study.results.trial_rows), on local disk, on "delayed"
(local disk behind `--latency` s per request: an object store's latency with its parallelism)
and on S3 (moto on loopback, `s3-delayed`, also delayed; moto's own CPU cost on a small machine
caps it near 60 PUT/s: run it at small N).

SIMULATED (marked "sim" in the output): 1,000 Ray actors do not fit this machine, so a loop in
one thread plays Tune's driver: N trials, staggered, each reporting a realistic row (the schema
of study.results, bins and config JSON included) every `epoch` seconds after the loop took its
previous report (a function trainable waits for its report to be taken), calling the writer's
`on_trial_result`, its `get_state` every `--snapshot` s (Tune's experiment snapshot) and
`on_experiment_end`, exactly as Tune does. REAL ("tune"): a small study of sleeping trials
(fractional CPUs) through study.tune.writer on Ray Tune, to check the simulation at small N.

Per run: lag (report → its row on storage) p50/p99/max, the time the writer blocks the loop per
report (p99, max) and per snapshot (max), PUTs, bytes written per trial, bytes stored per trial
and files at the end, wall against the ideal E × epoch (every trial runs at once: N × E × epoch
/ N); for the simulated runs also the study-end compaction of those files into one
(study.results.compact, through the same storage: its seconds, and the compacted kB per trial).
    python -m benchmarks.bench_scale [--quick] [--trials N] [--epochs E] [--epoch S] ...
"""

from __future__ import annotations

import argparse
import heapq
import os
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from benchmarks.scale_storage import Stats, storage
from study.results import compact, schema
from study.results import files as results_files
from study.results import read as results_read
from study.results import trial_rows as results  # where TrialRows calls write_atomic
from study.train.identity import trial_columns
from study.tune.writer import ResultsWriter


class Measured:
    """Mixed before a ResultsWriter: when each report was taken, when its row was on storage."""

    def start_measuring(self) -> None:
        self.reported: dict[str, list[float]] = {}
        self.stored: dict[str, int] = {}
        self.lags: list[float] = []
        self.mlock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks
        drop = ("mlock", "on_trial_result", "get_state")
        return {k: v for k, v in super().__getstate__().items() if k not in drop}

    def put(self, trial_id: str, row: dict[str, Any]) -> None:
        with self.mlock:
            self.reported.setdefault(trial_id, []).append(time.perf_counter())
        super().put(trial_id, row)
        if not self.workers:
            self._stored(trial_id, len(self.reported[trial_id]))

    def _write(self, trial_id: str) -> None:
        with self.mlock:
            upto = len(self.reported[trial_id])  # these are in the write's snapshot
        super()._write(trial_id)
        self._stored(trial_id, upto)

    def _stored(self, trial_id: str, upto: int) -> None:
        now = time.perf_counter()
        with self.mlock:
            done = self.stored.get(trial_id, 0)
            self.lags += [now - t for t in self.reported[trial_id][done:upto]]
            self.stored[trial_id] = max(done, upto)


class SimWriter(Measured, ResultsWriter):
    pass


def make_row(trial: int, epoch: int, epochs: int, rng: np.random.Generator) -> dict[str, Any]:
    """A row as study.trial builds one (identity of a real TrialConfig, every metric, bins)."""
    from study.spec import parse_spec
    from study.train import resolve

    spec = parse_spec({"name": "scale", "dataset": {"name": "fake"}, "model": {"name": "resnet18"}})
    cfg = resolve.replace(spec.trial_config({}), **{"train.seed": trial, "train.epochs": epochs})
    row: dict[str, Any] = {**trial_columns(cfg), "epoch": epoch, "status": "ok"}
    for name, dtype, _ in schema.COLUMNS:
        if name in row or name in ("study", "trial_id", "schema_version"):
            continue
        if str(dtype) == "double":
            row[name] = float(rng.random())
        elif str(dtype).startswith("list<item: int64"):
            row[name] = rng.integers(0, 500, 15).tolist()
        elif str(dtype).startswith("list"):
            row[name] = rng.random(15).tolist()
    return {**row, "message": "", "device": "cuda", "hostname": "node-3", "node_id": "ab" * 28}


def simulate(writer: Any, n: int, epochs: int, epoch: float, snapshot: float) -> dict[str, Any]:
    """Play Tune's driver loop (see module doc); the measures of one run."""
    rng = np.random.default_rng(0)
    base = make_row(0, 1, epochs, rng)
    floats = [k for k, v in base.items() if isinstance(v, float)]
    bins = [k for k, v in base.items() if isinstance(v, list)]
    trials = [SimpleNamespace(trial_id=f"t{i:05d}", config={}) for i in range(n)]
    t0 = time.perf_counter()
    due = [(t0 + epoch * (1 + i / n), i, 1) for i in range(n)]
    heapq.heapify(due)
    blocks, flushes, next_snap = [], [], t0 + snapshot
    while due:
        at, i, e = heapq.heappop(due)
        now = time.perf_counter()
        if now >= next_snap:  # Tune's period: max(10 s, 19 × the last snapshot's time)
            writer.get_state()
            flushes.append(time.perf_counter() - now)
            next_snap = time.perf_counter() + max(snapshot, 19 * flushes[-1])
            now = time.perf_counter()
        if at > now:
            time.sleep(at - now)
        row = {**base, "epoch": e, "seed": i}  # every metric and bin new, as in training
        row.update(zip(floats, rng.random(len(floats)).tolist(), strict=True))
        row.update({k: rng.integers(0, 500, 15).tolist() for k in bins if "count" in k})
        row.update({k: rng.random(15).tolist() for k in bins if "count" not in k})
        start = time.perf_counter()
        writer.on_trial_result(0, trials, trials[i], {"row": row, "epoch": e})
        taken = time.perf_counter()
        blocks.append(taken - start)
        if e < epochs:
            heapq.heappush(due, (taken + epoch, i, e + 1))
    start = time.perf_counter()
    writer.on_experiment_end(trials)
    end = time.perf_counter()
    return {"blocks": blocks, "flushes": [*flushes, end - start], "wall": end - t0}


def tune_run(
    writer_args: tuple, workers: int, parts: bool, n: int, epochs: int, epoch: float
) -> dict:
    """A real Ray Tune study of `n` sleeping trials through study.tune.writer.ResultsWriter."""
    from ray import tune

    from study.tune.writer import ResultsWriter as Writer

    class TuneWriter(Measured, Writer):
        pass

    writer = TuneWriter(*writer_args, workers=workers, parts=parts)
    writer.start_measuring()
    row = make_row(0, 1, epochs, np.random.default_rng(0))

    def sleeper(config: dict) -> None:
        for e in range(1, epochs + 1):
            time.sleep(epoch)
            tune.report({"row": {**row, "epoch": e}, "epoch": e})

    blocks: list[float] = []
    flushes: list[float] = [0.0]

    def timed(real: Any, into: list[float]) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            out = real(*a, **k)
            into.append(time.perf_counter() - start)
            return out

        return call

    writer.on_trial_result = timed(writer.on_trial_result, blocks)
    writer.get_state = timed(writer.get_state, flushes)
    t0 = time.perf_counter()
    tune.Tuner(
        tune.with_resources(sleeper, {"cpu": 2 / n}),
        tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=n),
        run_config=tune.RunConfig(
            storage_path=tempfile.mkdtemp(prefix="bench-scale-tune-"), callbacks=[writer], verbose=0
        ),
    ).fit()
    return {"blocks": blocks, "flushes": flushes, "wall": time.perf_counter() - t0, "w": writer}


def compacted(directory: Any, fs: Any, base: Any) -> tuple[float, int]:
    """Seconds to compact the results files through `fs` (the delayed storage, standing in for
    the URI a real study compacts), and the compacted file's bytes."""
    where = str(directory)

    def locate(path: Any) -> tuple[Any, list[str]]:  # results_files.locate, through `fs`
        infos = (fs or pafs.LocalFileSystem()).get_file_info(pafs.FileSelector(where))
        names = sorted(
            i.base_name
            for i in infos
            if i.is_file and i.base_name.endswith(".parquet") and i.base_name[0] not in "._"
        )
        names.sort(key=lambda n: n != schema.COMPACTED)
        return fs or pafs.LocalFileSystem(), [f"{where}/{n}" for n in names]

    real = results_files.locate, results_read.locate
    if fs is not None:
        results_files.locate = results_read.locate = locate
    try:
        start = time.perf_counter()
        done = compact.compact(where)
        took = time.perf_counter() - start
    finally:
        results_files.locate, results_read.locate = real
    return took, (base or pafs.LocalFileSystem()).get_file_info(done.path).size


def one(
    kind: str, backend: str, workers: int, parts: bool, a: argparse.Namespace, epochs: int
) -> None:
    """One run (sim or tune) of one writer on one backend; prints its line."""
    with storage(backend, a.latency) as (directory, fs, base):
        stats = Stats(base)
        results.write_atomic = stats.write_atomic
        try:
            args = (directory, "scale", None, fs)
            if kind == "sim":
                w = SimWriter(*args, workers=workers, parts=parts)
                w.start_measuring()
                m = simulate(w, a.trials, epochs, a.epoch, a.snapshot)
                n = a.trials
            else:
                m = tune_run(args, workers, parts, a.tune_trials, a.tune_epochs, a.epoch_tune)
                w, n, epochs = m["w"], a.tune_trials, a.tune_epochs
        finally:
            results.write_atomic = stats.real
        found = (base or pafs.LocalFileSystem()).get_file_info(pafs.FileSelector(str(directory)))
        files = [f for f in found if f.is_file]
        stored = sum(f.size or 0 for f in files)
        took, size = compacted(directory, fs, base) if kind == "sim" else (float("nan"), 0)
        lag, blk = np.array(w.lags), np.array(m["blocks"]) * 1e3
        epoch = a.epoch if kind == "sim" else a.epoch_tune
        ideal = epochs * epoch
        print(
            f"{kind:4} {backend:11} {'epochs' if parts else 'whole':6} {workers:3} {n:5} "
            f"{epochs:3} {np.median(lag):6.2f} {np.percentile(lag, 99):6.2f} {lag.max():6.2f} "
            f"{np.percentile(blk, 99):7.1f} {blk.max():7.1f} {max(m['flushes']) * 1e3:7.0f} "
            f"{stats.puts:6} {stats.bytes / n / 1e3:8.0f} {stored / n / 1e3:7.0f} {len(files):6} "
            f"{m['wall']:7.1f} {ideal:6.1f} {m['wall'] / ideal:5.2f} {took:7.1f} "
            f"{size / n / 1e3:6.1f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run (~1 minute)")
    p.add_argument("--trials", type=int, default=1000, help="simulated concurrent trials")
    p.add_argument("--epochs", type=int, default=50, help="epochs, background writer")
    p.add_argument("--old-epochs", type=int, default=2, help="epochs, serial writer (slow)")
    p.add_argument("--epoch", type=float, default=5.0, help="seconds per simulated epoch")
    p.add_argument("--latency", type=float, default=0.05, help="seconds added per S3 request")
    p.add_argument("--snapshot", type=float, default=10.0, help="seconds between snapshots")
    p.add_argument("--workers", type=int, default=16, help="threads of the background writer")
    p.add_argument(
        "--backends", default="delayed", help="comma-separated: local, delayed, s3-delayed"
    )
    p.add_argument("--tune-trials", type=int, default=16, help="real Tune trials (0: none)")
    p.add_argument("--tune-epochs", type=int, default=5)
    p.add_argument("--epoch-tune", type=float, default=1.0, help="seconds per real epoch")
    a = p.parse_args(argv)
    if a.quick:
        a.trials, a.epochs, a.old_epochs, a.epoch, a.snapshot = 100, 5, 5, 1.0, 2.0
        a.tune_trials, a.tune_epochs = min(a.tune_trials, 8), 3
    print(f"{a}\nlag in s; blocks in ms; kB per trial; sim = simulated driver loop, tune = Ray")
    print(
        "kind backend     layout thr trials  E  lag50  lag99 lagmax blk99ms  blkmax snapmax "
        "  puts kBwrote kBkept  files  wall_s ideal ratio compact cmpKB  (per trial: kB)"
    )
    backends = a.backends.split(",")
    for backend in backends:
        one("sim", backend, 0, False, a, a.old_epochs)
        one("sim", backend, a.workers, False, a, a.epochs)
        one("sim", backend, a.workers, True, a, a.epochs)
    if a.tune_trials:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for backend in backends:
                for workers, parts in ((0, False), (a.workers, False), (a.workers, True)):
                    one("tune", backend, workers, parts, a, a.tune_epochs)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()

"""Which Optuna storage a study keeps in its directory: SQLite (RDBStorage) or a journal file
(JournalStorage + JournalFileBackend). Measured, not assumed (docs/study.md, "Optuna storage").

For each backend, in fresh processes (the way a study's driver uses it: one writer):
- cost: create the study, then N trials of ask → 3 user attrs → tell (what a Tune trial costs
  the driver), as seconds per trial;
- SIGKILL: a writer loops over ask/attrs/tell and is killed at a random moment (K times); a new
  process then opens the study (`optuna.load_study`), counts trials, and runs one more
  ask/tell — the time that takes shows a stale lock or a recovery, an exception a corruption.

    /work/main/.venv/bin/python benchmarks/bench_optuna_storage.py [--trials 100] [--kills 8]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = """
import sys, optuna
from study.tune.search import TAGS, open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
storage = open_storage(kind, path)
s = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"],
                        load_if_exists=True)
print("ready", flush=True)
i = 0
while n < 0 or i < n:
    t = s.ask()
    x = t.suggest_float("x", 0, 1)
    for k in TAGS:  # the tags a study's trials carry
        t.set_user_attr(k, f"{k}-{i}")
    s.tell(t, [x, 1 - x])
    i += 1
"""

CHECK = """
import sys, time, optuna
from study.tune.search import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
kind, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
s = optuna.load_study(study_name="s", storage=open_storage(kind, path))
n = len(s.trials)
t = s.ask(); s.tell(t, [0.5, 0.5])
print(n, round(time.perf_counter() - t0, 3))
"""


def python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, **kw
    )


def measure(kind: str, trials: int, kills: int, root: Path) -> dict[str, float]:
    path = str(root / f"cost.{kind}")
    t0 = time.perf_counter()
    p = python(WRITER, kind, path, str(trials))
    p.communicate(timeout=600)
    per_trial = (time.perf_counter() - t0) / trials
    opened, slowest, failures = 0, 0.0, 0
    for k in range(kills):
        path = str(root / f"kill{k}.{kind}")
        w = python(WRITER, kind, path, "-1")
        w.stdout.readline()  # ready
        time.sleep(random.uniform(0.2, 1.5))
        w.send_signal(signal.SIGKILL)
        w.wait()
        c = python(CHECK, kind, path, stderr=subprocess.PIPE)
        out, err = c.communicate(timeout=120)
        if c.returncode:
            failures += 1
            print(f"  {kind} kill {k}: load failed: {err.strip().splitlines()[-1]}")
            continue
        n, seconds = out.split()
        opened += 1
        slowest = max(slowest, float(seconds))
        print(f"  {kind} kill {k}: {n} trials, reopened + one trial in {seconds} s")
    return {"per_trial_s": per_trial, "opened": opened, "failed": failures, "slowest_s": slowest}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--kills", type=int, default=8)
    a = ap.parse_args()
    random.seed(0)
    with tempfile.TemporaryDirectory() as d:
        for kind in ("journal", "sqlite"):
            r = measure(kind, a.trials, a.kills, Path(d))
            print(
                f"{kind}: {r['per_trial_s'] * 1000:.1f} ms per trial (create + {a.trials} "
                f"trials, incl. process start); after SIGKILL: {r['opened']}/{a.kills} reopened, "
                f"{r['failed']} failed, slowest reopen + one trial {r['slowest_s']:.2f} s"
            )


if __name__ == "__main__":
    main()

"""Readers during compaction (issue 18): `analysis.load_results` and the README's plain
`pd.read_parquet(results)` see each (trial_id, epoch) exactly once after a kill at each step of
a compaction (study.results.compact_swap), and a reader polling while compactions run never fails
nor sees a row twice or lose one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from test_compact import COMPACTED, ROOT, _all_rows, _study

from analysis import load_results
from study.results import compact
from study.results.files import write_atomic
from study.results.schema import SCHEMA
from study.tune.checkpoint import checkpoint_rows

STEPS = ["compact-written", "compact-staged", "compact-swapped", "compact-removing"]


def _keys(df: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(zip(df["trial_id"].astype(str), df["epoch"].astype(int), strict=True))


def _both(path: Path) -> tuple[list, list]:
    """The (trial_id, epoch) of every row each reader gives, duplicates kept."""
    return _keys(load_results(path, "all")), _keys(pd.read_parquet(path / "results"))


def _half_compacted(directory: Path) -> list[tuple[str, int]]:
    """A study compacted once, then a trial resumed (epoch 5, a new per-trial file) and three
    more trials' files: each row in one file only (what the plain reader needs to start from)."""
    rows = _study(directory, trials=6).to_pandas()
    compact.compact(directory)
    later = rows[rows.trial_id == "t000000"].tail(1).assign(epoch=5, test_acc=0.5)
    write_atomic(
        pa.Table.from_pandas(later, schema=SCHEMA, preserve_index=False),
        directory / "results" / "t000000-5.parquet",
    )
    more = rows[rows.trial_id.isin(["t000001", "t000002", "t000003"])]
    for trial_id, part in more.assign(trial_id=lambda d: d.trial_id + "b").groupby("trial_id"):
        write_atomic(
            pa.Table.from_pandas(part, schema=SCHEMA, preserve_index=False),
            directory / "results" / f"{trial_id}.parquet",
        )
    (directory / "results" / ".t000009.123.tmp").write_bytes(b"PAR1")  # a writer's temp file
    want, plain = _both(directory)
    assert want == plain == sorted(set(want))
    return want


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_each_step_leaves_each_row_once_for_both_readers(tmp_path, step):
    want = _half_compacted(tmp_path)
    before = _all_rows(tmp_path)
    env = {**os.environ, "STUDY_CRASH_AT": step, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "study.cli", "compact", str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    staged = [p.name for p in tmp_path.iterdir() if p.name.startswith(".results.compacting-")]
    assert len(staged) == 1  # killed midway: the staged (or old) folder is still there
    loaded, plain = _both(tmp_path)
    assert loaded == want and plain == want  # each row once: none lost, none twice
    assert _all_rows(tmp_path).equals(before)
    assert (tmp_path / "results" / ".t000009.123.tmp").exists()
    again = compact.compact(tmp_path)  # finishes (or undoes) the killed one, then its own
    assert sorted(p.name for p in (tmp_path / "results").iterdir() if p.name[0] != ".") == (
        COMPACTED
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    assert _both(tmp_path) == (want, want) and _all_rows(tmp_path).equals(before)
    assert again.rows == len(want)


def test_resume_recovers_a_killed_compaction_before_quarantining(tmp_path):
    """A kill after the exchange leaves the manifest in results/ and the old folder beside it:
    `--resume`'s repair finishes the compaction instead of quarantining them."""
    from study.results import quarantine

    want = _half_compacted(tmp_path)
    env = {**os.environ, "STUDY_CRASH_AT": "compact-swapped", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "study.cli", "compact", str(tmp_path)]
    assert subprocess.run(cmd, env=env, timeout=120).returncode == -signal.SIGKILL
    quarantine.repair(tmp_path, checkpoint_rows)
    quarantined = [p.name for p in (tmp_path / "quarantine").iterdir()]
    assert quarantined == [".t000009.123.tmp"]  # the writer's temp file only, as ever
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quarantine", "results"]
    assert _both(tmp_path) == (want, want)


def test_a_reader_polling_while_compactions_run_sees_each_row_once(tmp_path, capsys):
    """Compactions of fresh studies (per-trial files only, the case that once raised 'not a
    results file') one after another, while one thread polls load_results and another the
    plain reader on the study being compacted."""
    rounds, studies = 6, []
    for i in range(rounds):
        _study(tmp_path / f"s{i}", trials=60)
        studies.append(tmp_path / f"s{i}")
    want = _keys(load_results(studies[0], "all", columns=["trial_id", "epoch"]))
    current, stop = [studies[0]], threading.Event()
    seen = {"load": [0, 0, []], "plain": [0, 0, []]}  # reads, errors, bad reads

    def poll(name: str) -> None:
        while not stop.is_set():
            try:
                if name == "load":
                    got = _keys(load_results(current[0], "all", columns=["trial_id", "epoch"]))
                else:
                    got = _keys(
                        pd.read_parquet(current[0] / "results", columns=["trial_id", "epoch"])
                    )
            except Exception as err:  # counted, asserted below
                seen[name][1] += 1
                seen[name][2].append(repr(err)[:200])
                continue
            seen[name][0] += 1
            if got != want:
                seen[name][2].append(f"{len(got)} rows, {len(set(got))} distinct")

    threads = [threading.Thread(target=poll, args=(n,)) for n in seen]
    for t in threads:
        t.start()
    start = time.monotonic()
    try:
        for study in studies:
            current[0] = study
            time.sleep(0.3)  # reads of the per-trial files, then the compaction
            compact.compact(study)
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    took = time.monotonic() - start
    with capsys.disabled():
        print(
            f"\n[polling] {rounds} compactions in {took:.1f} s; load_results: {seen['load'][:2]}"
            f" (reads, errors); pd.read_parquet: {seen['plain'][:2]}; bad: {seen['plain'][2][:3]}"
        )
    assert seen["load"][0] >= rounds and seen["load"][1] == 0 and not seen["load"][2]
    assert not [b for b in seen["plain"][2] if "rows" in b]  # never a row twice or missing

"""The background results writer (study.results.background, study.tune.writer; issue 21): rows
reach storage, pending epochs of a trial are coalesced into one rewrite, `get_state` (Tune's
experiment snapshot) and the experiment's end flush, a write's error surfaces on the next call,
the bounded queue blocks the caller. Writes are held on events, never timed."""

from __future__ import annotations

import errno
import pickle
import threading

import pandas as pd
import pytest
from test_results import row, trial

from study import diskfull
from study.results import trial_rows
from study.results.background import BackgroundWriter
from study.tune.writer import ResultsWriter

WAIT = 30  # seconds an event may take before the test fails (never reached when it works)


class Gate:
    """A write function for BackgroundWriter that records keys and holds them on an event."""

    def __init__(self) -> None:
        self.open, self.started, self.written = threading.Event(), threading.Event(), []
        self.active: set = set()
        self.overlap = False

    def __call__(self, key: object) -> None:
        self.overlap |= key in self.active
        self.active.add(key)
        self.started.set()
        assert self.open.wait(WAIT)
        self.active.discard(key)
        self.written.append(key)


def report(writer: ResultsWriter, trial_id: str, epoch: int) -> None:
    writer.on_trial_result(0, [], trial(trial_id), {"row": row(epoch), "epoch": epoch})


def epochs(writer: ResultsWriter) -> dict[str, list[int]]:
    df = pd.read_parquet(writer.directory)
    return {k: sorted(v) for k, v in df.groupby("trial_id").epoch}


@pytest.fixture
def writes(monkeypatch) -> list:
    """The tables TrialRows writes (each call of write_atomic), still written."""
    real, calls = trial_rows.write_atomic, []

    def counting(table, path, filesystem=None, options=None):
        calls.append((path.stem, table.num_rows))
        real(table, path, filesystem, options)

    monkeypatch.setattr(trial_rows, "write_atomic", counting)
    return calls


def test_rows_reach_storage_and_a_rereport_replaces_its_row(tmp_path):
    w = ResultsWriter(tmp_path / "results", "unit", None, workers=3)
    for e in (1, 2, 1, 2, 3):
        for t in ("a", "b", "c", "d"):
            report(w, t, e)
    w.flush()
    assert epochs(w) == {t: [1, 2, 3] for t in "abcd"}
    w.on_experiment_end([trial(t) for t in "abcd"])
    assert w._pool is None


def test_a_trials_pending_epochs_are_written_once(tmp_path, writes):
    """While the only thread is busy, epochs 1..3 of trial a wait: one write of trial a puts
    each on storage once, as its own epoch file (a re-reported epoch's file replaced)."""
    w = ResultsWriter(tmp_path / "results", "unit", None, workers=1)
    gate = threading.Event()
    real = w._write
    w._write = lambda key: (gate.wait(WAIT), real(key))
    report(w, "x", 1)  # taken by the thread, held
    for e in (1, 2, 3):
        report(w, "a", e)
    report(w, "a", 2)  # again, before it was written: written once
    gate.set()
    w.flush()
    assert writes == [("x.e0001", 1), ("a.e0001", 1), ("a.e0002", 1), ("a.e0003", 1)]
    assert w._pool.writes == 2  # trial x's write, then trial a's
    assert epochs(w) == {"x": [1], "a": [1, 2, 3]}
    report(w, "a", 2)  # reported again after it was written: its file replaced
    w.flush()
    assert writes[-1] == ("a.e0002", 1) and epochs(w) == {"x": [1], "a": [1, 2, 3]}


def test_one_key_is_never_written_by_two_threads_at_once():
    gate = Gate()
    pool = BackgroundWriter(gate, workers=4)
    pool.submit("a")
    assert gate.started.wait(WAIT)
    pool.submit("a")  # dirty again while written: waits for the first write
    pool.submit("b")
    gate.open.set()
    pool.close()
    assert not gate.overlap and sorted(gate.written) == ["a", "a", "b"]


def test_get_state_and_the_experiment_end_flush(tmp_path):
    """Tune calls get_state while it snapshots the experiment: every row is on storage when it
    returns (and it saves no state of its own)."""
    w = ResultsWriter(tmp_path / "results", "unit", None, workers=2)
    for e in (1, 2):
        report(w, "a", e)
    assert w.get_state() is None
    assert epochs(w) == {"a": [1, 2]}
    report(w, "a", 3)
    report(w, "b", 1)
    w.on_experiment_end([trial("a"), trial("b")])
    assert epochs(w) == {"a": [1, 2, 3], "b": [1]}


def test_an_error_in_the_thread_surfaces_on_the_next_call(tmp_path, monkeypatch):
    """A full disk in the thread: the next report raises that very error (so study.diskfull
    names it in one line), and so do flush, the snapshot and the end; not swallowed."""

    def full(table, path, filesystem=None, options=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trial_rows, "write_atomic", full)
    w = ResultsWriter(tmp_path / "results", "unit", None, workers=2)
    report(w, "a", 1)
    with pytest.raises(OSError) as caught:
        w.flush()
    assert diskfull.full_cause(caught.value) is caught.value
    for call in (lambda: report(w, "a", 2), w.get_state, lambda: w.on_experiment_end([])):
        with pytest.raises(OSError, match="No space left"):
            call()


def test_the_bounded_queue_blocks_the_caller_until_a_write_ends():
    gate = Gate()
    pool = BackgroundWriter(gate, workers=1, max_pending=2)
    pool.submit("busy")
    assert gate.started.wait(WAIT)
    pool.submit("a")
    pool.submit("b")
    pool.submit("a")  # already pending: coalesced, does not block
    returned = threading.Event()
    t = threading.Thread(target=lambda: (pool.submit("c"), returned.set()))
    t.start()
    assert not returned.wait(0.5)  # blocked: two keys wait already
    assert pool.pending == 3
    gate.open.set()
    assert returned.wait(WAIT)
    t.join()
    pool.close()
    assert gate.written == ["busy", "a", "b", "c"]


def test_rows_on_storage_are_counted_for_the_crash_point(tmp_path):
    """`wrote` (the crash point `row`) adds up to the rows reported."""
    counted: list[int] = []

    class Counting(ResultsWriter):
        def wrote(self, rows: int) -> None:
            counted.append(rows)

    w = Counting(tmp_path / "results", "unit", None, workers=2)
    for e in range(1, 6):
        report(w, "a", e)
        report(w, "b", e)
    w.flush()
    assert sum(counted) == 10


def test_a_pickled_writer_restarts_its_threads_and_reads_the_files(tmp_path):
    w = ResultsWriter(tmp_path / "results", "unit", None, workers=2)
    report(w, "a", 1)
    w.flush()
    restored = pickle.loads(pickle.dumps(w))
    report(restored, "a", 2)
    restored.flush()
    assert epochs(restored) == {"a": [1, 2]}


def test_a_v0_2_writer_unpickles_with_threads(tmp_path):
    """A writer pickled by v0.2 (serial: no `workers`, no pool) resumes threaded."""
    w = ResultsWriter(tmp_path / "results", "unit", None)
    state = {
        k: v for k, v in w.__getstate__().items() if k not in ("workers", "max_pending", "_pool")
    }
    old = ResultsWriter.__new__(ResultsWriter)
    old.__setstate__(state)
    assert old.workers > 0
    report(old, "a", 1)
    old.flush()
    assert epochs(old) == {"a": [1]}


def test_a_restored_trials_error_row_follows_the_files_rows_in_one_write(tmp_path, writes):
    """After a restore the writer holds no rows of a trial until it reads its files: the error
    row goes after the files' last epoch, and only that row's file is written (the others are
    read, not rewritten, to find it)."""
    from test_results import SPEC

    first = ResultsWriter(tmp_path / "results", "unit", SPEC, workers=2)
    for e in (1, 2):
        report(first, "a", e)
    first.flush()
    restored = pickle.loads(pickle.dumps(first))
    writes.clear()
    error = tmp_path / "error.txt"
    error.write_text("Traceback …\nValueError: boom\n")
    restored.on_trial_error(0, [], trial("a", error_file=str(error)))
    restored.flush()
    df = pd.read_parquet(restored.directory).sort_values("epoch")
    assert list(df.epoch) == [1, 2, 3] and df.status.iloc[-1] == "error"
    assert df.message.iloc[-1] == "ValueError: boom"
    assert writes == [("a.e0003", 1)]

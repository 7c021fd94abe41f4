"""study.results.compact: per-trial results merged into one file without ever losing a row; and the
study's end summary skipping bad files (study.results.summary)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_fixtures import grid

from analysis import load_results, synthetic
from analysis.load import DERIVED
from study.cli.main import main as study_main
from study.results import (
    compact,
)
from study.results import (
    files as results_files,
)
from study.results import (
    read as results_read,
)
from study.results import (
    rows as results_rows,
)
from study.results.files import write_atomic
from study.results.schema import SCHEMA
from study.results.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
COMPACTED = sorted([results_files.COMPACTED, results_files.SHORTLIST])


def _study(directory: Path, trials: int = 6, epochs: int = 4) -> pa.Table:
    """A study's results/ as a study leaves them: one file per trial; returns all rows."""
    frame = synthetic.trials(grid(["svhn"], ["resnet18"]), seeds=max(1, trials // 6))[:trials]
    rows = synthetic.epoch_rows(frame, epochs, noise=0.02, seed=1)
    rows = synthetic.fail_trials(rows, [frame["trial_id"].iloc[1]], "diverged", "nan", epoch=2)
    rows["test_nll"] = rows["test_nll"].where(rows["epoch"] != 1, np.nan)  # NaN == NaN here
    bins = list(rows["test_bin_acc"])
    rows["test_bin_acc"] = [np.r_[np.nan, b[1:]] if i == 0 else b for i, b in enumerate(bins)]
    results = directory / "results"
    results.mkdir(parents=True, exist_ok=True)
    for trial_id, part in rows.groupby("trial_id"):
        write_atomic(synthetic.to_arrow(part), results / f"{trial_id}.parquet")
    return synthetic.to_arrow(rows)


def _all_rows(path) -> pa.Table:
    """Every row and column the loader gives, in a canonical order."""
    df = load_results(path, "all").drop(columns=["variant", "backbone", *DERIVED])
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.cast(SCHEMA).sort_by([("trial_id", "ascending"), ("epoch", "ascending")])


def _canonical(table: pa.Table) -> pa.Table:
    return table.sort_by([("trial_id", "ascending"), ("epoch", "ascending")])


def test_round_trip_every_row_and_column(tmp_path):
    rows = _study(tmp_path)
    before = _all_rows(tmp_path)
    done = compact.compact(tmp_path)
    results = tmp_path / "results"
    assert sorted(p.name for p in results.iterdir()) == COMPACTED
    assert done.rows == len(rows) and done.removed == 6
    file = pq.ParquetFile(results / "compacted.parquet")
    same = compact.digest  # every row and column
    assert same(_canonical(file.read())) == same(_canonical(rows))
    assert same(file.read().slice(1)) != same(rows.slice(1, len(rows) - 2))
    assert _all_rows(tmp_path).equals(before)
    groups = {  # row groups hold whole trials
        tuple(file.read_row_group(g, columns=["trial_id"])["trial_id"].unique().to_pylist())
        for g in range(file.num_row_groups)
    }
    assert sum(len(g) for g in groups) == 6


def test_row_groups_never_split_a_trial(tmp_path, monkeypatch):
    _study(tmp_path)
    monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 1)  # one trial per group
    compact.compact(tmp_path)
    file = pq.ParquetFile(tmp_path / "results" / "compacted.parquet")
    per_group = [file.read_row_group(g)["trial_id"].unique() for g in range(file.num_row_groups)]
    assert [len(t) for t in per_group] == [1] * 6


@pytest.mark.parametrize("small", [False, True])
def test_idempotent_and_merges_later_files(tmp_path, monkeypatch, small):
    """`small`: the compacted file read by its row groups (as a large one is) and the per-trial
    files in scans of two files: the same rows."""
    if small:
        monkeypatch.setattr(results_rows, "LARGE_ROWS", 5)
        monkeypatch.setattr(results_read, "BATCH_FILES", 2)
        monkeypatch.setattr(compact, "ROW_GROUP_ROWS", 6)
    _study(tmp_path)
    compact.compact(tmp_path)
    target = tmp_path / "results" / "compacted.parquet"
    first = pq.read_table(target)
    again = compact.compact(tmp_path)
    assert again.removed == 0 and pq.read_table(target).equals(first)
    # a trial resumed after compaction reports epoch 4 again, changed, and an epoch 5
    trial = first.filter(pa.compute.equal(first["trial_id"], "t000000"))
    later = trial.slice(3, 1).to_pandas().assign(test_acc=0.123)
    later = pd.concat([later, later.assign(epoch=5)], ignore_index=True)
    write_atomic(pa.Table.from_pandas(later, schema=SCHEMA), tmp_path / "results" / "t.parquet")
    mixed = load_results(tmp_path, "all").set_index(["trial_id", "epoch"])
    assert mixed.loc[("t000000", 4), "test_acc"] == 0.123  # the live file wins
    assert len(mixed) == len(first) + 1
    compact.compact(tmp_path)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == COMPACTED
    after = load_results(tmp_path, "all").set_index(["trial_id", "epoch"])
    assert after.loc[("t000000", 4), "test_acc"] == 0.123 and len(after) == len(mixed)


def test_the_shortlist_holds_each_trials_last_and_best_rows_and_spares_the_row_groups(
    tmp_path, monkeypatch
):
    rows = _study(tmp_path, trials=6, epochs=6).to_pandas()
    rows.loc[rows.index[2], "val_acc"] = 2.0  # a best epoch that is not the last one
    rows.loc[rows.index[3], "val_acc"] = 2.0  # tied: the earlier counts
    for trial_id, part in rows.groupby("trial_id"):
        write_atomic(synthetic.to_arrow(part), tmp_path / "results" / f"{trial_id}.parquet")
    ways = [("last", "val_acc"), ("best", "val_acc"), ("best", "val_cal_ece")]
    truth = {way: _last_rows(tmp_path, *way) for way in ways}
    compact.compact(tmp_path)
    short = pq.read_table(tmp_path / "results" / results_files.SHORTLIST).to_pandas()
    ok = rows[(rows["status"] == "ok") & rows["val_acc"].notna()]
    best = ok.loc[ok.groupby("trial_id")["val_acc"].idxmax(), ["trial_id", "epoch"]]
    last = rows.groupby("trial_id").tail(1)[["trial_id", "epoch"]]
    want = pd.concat([best, last]).drop_duplicates().sort_values(["trial_id", "epoch"])
    assert short[["trial_id", "epoch"]].values.tolist() == want.values.tolist()
    assert best["epoch"].iloc[0] == rows["epoch"].iloc[2]  # the earliest of the tie
    row_groups = []
    real = results_rows._each
    monkeypatch.setattr(results_rows, "_each", lambda *a: row_groups.append(1) or real(*a))
    for way in ways:  # the same rows and bins as before compaction; only val_acc shortlisted
        row_groups.clear()
        pd.testing.assert_frame_equal(_last_rows(tmp_path, *way), truth[way])
        assert bool(row_groups) == (way[1] != "val_acc"), way


@pytest.mark.parametrize("token", ["same", "another", "none"])
def test_a_shortlist_is_used_only_with_its_compacted_file(tmp_path, token):
    """A shortlist is only a copy of some rows: one not written with this compacted file (a
    compaction killed between the two renames, a file copied in by hand) is never read."""
    _study(tmp_path)
    truth = _last_rows(tmp_path)
    compact.compact(tmp_path)
    path = tmp_path / "results" / results_files.SHORTLIST
    short = pq.read_table(path)
    mine = short.schema.metadata[results_files.TOKEN]
    at = short.schema.get_field_index("test_bin_acc")
    changed = pa.array([[0.5] * 15] * len(short), short.schema.field(at).type)
    short = short.set_column(at, short.schema.field(at), changed)
    meta = {results_files.TOKEN: mine if token == "same" else b"another"}
    short = short.replace_schema_metadata(meta if token != "none" else None)
    pq.write_table(short, path)
    got = _last_rows(tmp_path)
    if token == "same":  # its own compaction's shortlist is believed: the check can fail
        assert all(b == [0.5] * 15 for b in got["test_bin_acc"])
    else:
        pd.testing.assert_frame_equal(got, truth)
    path.unlink()  # none at all (a compaction of an older version): the row groups
    pd.testing.assert_frame_equal(_last_rows(tmp_path), truth)


def test_bad_files_stay_and_are_named(tmp_path, capsys):
    _study(tmp_path)
    (tmp_path / "results" / "zero.parquet").write_bytes(b"")
    assert study_main(["compact", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "left" in out and "zero.parquet" in out
    assert (tmp_path / "results" / "zero.parquet").exists()
    assert study_main(["compact", str(tmp_path / "nothing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_failed_check_removes_nothing(tmp_path, monkeypatch):
    _study(tmp_path)
    files = sorted((tmp_path / "results").iterdir())
    real = compact._merged
    monkeypatch.setattr(compact, "_merged", lambda t: real(t)[1:])  # one row lost
    with pytest.raises(RuntimeError, match="missing"):
        compact.compact(tmp_path)
    assert sorted((tmp_path / "results").iterdir()) == files  # no temporary file either


def test_a_file_that_reads_back_otherwise_removes_nothing(tmp_path, monkeypatch):
    """The written file is read back and compared with what was written: one value changed
    under the same keys (a bad disk, a faulty writer) stops the compaction."""
    _study(tmp_path)
    files = sorted((tmp_path / "results").iterdir())
    real = compact._write

    def write(fs, read, order, cuts, path, schema):
        digests = real(fs, read, order, cuts, path, schema)
        table = pq.read_table(path)
        acc = table["test_acc"].to_numpy().copy()
        acc[3] += 0.25
        pq.write_table(
            table.set_column(table.schema.get_field_index("test_acc"), "test_acc", pa.array(acc)),
            path,
        )
        return digests

    monkeypatch.setattr(compact, "_write", write)
    with pytest.raises(RuntimeError, match="does not read back as written"):
        compact.compact(tmp_path)
    assert sorted((tmp_path / "results").iterdir()) == files


def test_digest_sees_every_value_and_no_chunking():
    rows = _study_rows()
    whole = compact.digest(rows)
    assert compact.digest(pa.concat_tables([rows.slice(0, 5), rows.slice(5)])) == whole
    assert compact.digest(rows.slice(2).combine_chunks()) == compact.digest(rows.slice(2))
    bins = rows["test_bin_acc"].combine_chunks()
    changed = pa.array(
        [b if i != 7 else [*b[:-1], b[-1] + 1e-12] for i, b in enumerate(bins.to_pylist())],
        bins.type,
    )
    index = rows.schema.get_field_index("test_bin_acc")
    assert compact.digest(rows.set_column(index, "test_bin_acc", changed)) != whole
    at = rows.schema.get_field_index("test_nll")
    values = rows["test_nll"].combine_chunks().to_pylist()
    nan, null = pa.array([*values[:-1], float("nan")]), pa.array([*values[:-1], None])
    assert compact.digest(rows.set_column(at, "test_nll", nan)) != compact.digest(
        rows.set_column(at, "test_nll", null)
    )  # NaN is not null
    text = rows["message"].combine_chunks().to_pylist()
    other = pa.array([*text[:-1], (text[-1] or "") + "x"], pa.string())
    at = rows.schema.get_field_index("message")
    assert compact.digest(rows.set_column(at, "message", other)) != whole


def _study_rows() -> pa.Table:
    frame = synthetic.trials(grid(["svhn"], ["resnet18"]), seeds=1)[:3]
    rows = synthetic.epoch_rows(frame, 4, noise=0.02, seed=1)
    rows["test_nll"] = rows["test_nll"].where(rows["epoch"] != 1, np.nan)
    return synthetic.to_arrow(rows)


KILLER = """
import os, sys, time
from study.results import compact
stage = sys.argv[2]
real_remove, real_replace = compact._remove, compact._replace
def write(fs, read, order, cuts, path, schema):  # the temporary file half written
    with open(path, "wb") as f:
        f.write(b"PAR1" + os.urandom(1000))
    print("writing", flush=True); time.sleep(60)
def remove(fs, path):  # after the first removal
    real_remove(fs, path)
    print("removing", flush=True); time.sleep(60)
def replace(fs, tmp, path):  # after the shortlist replaced, before the compacted file
    real_replace(fs, tmp, path)
    if path.endswith("_shortlist.parquet"):
        print("replacing", flush=True); time.sleep(60)
if stage != "write":  # the renames of a filesystem that cannot exchange folders (S3)
    compact.compact_swap.stage = lambda directory, token: None
if stage == "write":
    compact._write = write
elif stage == "replace":
    compact._replace = replace
else:
    compact._remove = remove
compact.compact(sys.argv[1])
"""


def _last_rows(path, epochs: str = "last", best_by: str = "val_acc") -> pd.DataFrame:
    """Each trial's last (or best) row, the reliability bins with it (read at those rows)."""
    df = load_results(path, epochs, best_by=best_by).sort_values("trial_id", ignore_index=True)
    return df.assign(**{c: df[c].map(_plain) for c in df.columns if c.endswith(LISTS)})


LISTS = ("_bin_count", "_bin_acc", "_bin_conf")


def _plain(x):
    return None if x is None else [None if v != v else v for v in x.tolist()]  # NaN == NaN


@pytest.mark.parametrize("stage", ["write", "replace", "remove"])
def test_killed_midway_loses_nothing_and_a_rerun_finishes(tmp_path, stage):
    """Killed while writing (in the staged folder), and, where folders cannot be exchanged,
    between the renames and while removing: load_results sees each row once (the plain reader's
    view of each step of the exchange: tests/results/test_compact_readers.py)."""
    rows = _study(tmp_path)
    before, last = _all_rows(tmp_path), _last_rows(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(tmp_path), stage],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == f"{stage[:-1]}ing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    names = [p.name for p in (tmp_path / "results").iterdir()]
    assert ("compacted.parquet" in names) == (stage == "remove")
    assert ("_shortlist.parquet" in names) == (stage != "write")
    assert _all_rows(tmp_path).equals(before)  # nothing lost, nothing doubled
    pd.testing.assert_frame_equal(_last_rows(tmp_path), last)
    compact.compact(tmp_path)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == COMPACTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no staged folder left
    assert _all_rows(tmp_path).equals(before)
    pd.testing.assert_frame_equal(_last_rows(tmp_path), last)
    assert len(before) == len(rows)


def test_compaction_through_a_filesystem_uri(tmp_path):
    _study(tmp_path)
    before = _all_rows(tmp_path)
    compact.compact(f"file://{tmp_path}")
    assert _all_rows(f"file://{tmp_path}/results").equals(before)


def test_summary_skips_and_names_bad_files(tmp_path):
    _study(tmp_path)
    results = tmp_path / "results"
    pq.write_table(pa.table({"x": [1], "schema_version": [2]}), results / "foreign.parquet")
    (results / "zero.parquet").write_bytes(b"")
    text = summarize(results)
    head = text.split("\n\n")[0].splitlines()
    assert head[0] == "6 trials: 5 ok, 1 diverged"
    assert sorted(line.split(":")[0] for line in head[1:]) == [
        f"skipped {results / 'foreign.parquet'}",
        f"skipped {results / 'zero.parquet'}",
    ]
    assert "Pareto front" in text
    compact.compact(tmp_path)
    assert summarize(tmp_path).split("\n\n")[1:] == text.split("\n\n")[1:]


def test_reads_stay_in_the_results_directory(tmp_path):
    """Hidden files, a compaction's temporary file and subdirectories are never read."""
    _study(tmp_path)
    results = tmp_path / "results"
    (results / "sub").mkdir()
    write_atomic(pq.read_table(next(results.glob("t*.parquet"))), results / "sub" / "x.parquet")
    (results / f"{compact.TMP_PREFIX}dead.parquet").write_bytes(b"PAR1")
    fs, files = results_files.locate(tmp_path)
    assert len(files) == 6 and all("/sub/" not in f and "/." not in f for f in files)

"""A trial's rows as one file per epoch (study.results.trial_rows, issue 21): each epoch's file
written once and replaced when the epoch is reported again, so the bytes a trial writes grow
with its epochs (O(E)); a trial with a whole file (a study written before) keeps it whole."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_results import row

from study.results import trial_rows
from study.results.files import write_atomic
from study.results.names import listing_of, part_name, trial_of
from study.results.schema import to_table
from study.results.trial_rows import TrialRows


@pytest.mark.parametrize(
    "name, trial",
    [
        ("sleeper_1a2b3_00001.parquet", "sleeper_1a2b3_00001"),
        ("sleeper_1a2b3_00001.e0007.parquet", "sleeper_1a2b3_00001"),
        ("a.b.e0001.parquet", "a.b"),
        ("a.b.parquet", "a.b"),
        ("x.e12345.parquet", "x"),
        (".parquet", None),
        ("notes.txt", None),
    ],
)
def test_trial_of_a_file_name(name, trial):
    assert trial_of(name) == trial


def test_part_name_round_trips():
    assert part_name("t_1", 7) == "t_1.e0007.parquet" and trial_of(part_name("t_1", 7)) == "t_1"


def test_listing_groups_by_trial_and_leaves_out_the_rest(tmp_path):
    for name in ("a.e0001.parquet", "a.e0002.parquet", "b.parquet", "compacted.parquet"):
        to_table([row(1)]).to_pandas().to_parquet(tmp_path / name)
    (tmp_path / "_shortlist.parquet").write_bytes(b"")
    (tmp_path / ".a.e0003.123.tmp").write_bytes(b"")
    assert listing_of(tmp_path, None) == {
        "a": ["a.e0001.parquet", "a.e0002.parquet"],
        "b": ["b.parquet"],
    }


def written(monkeypatch, tmp_path, epochs: int, parts: bool) -> list[tuple[str, int, int]]:
    """(file, rows, bytes) of every write of a trial that reports `epochs` epochs."""
    calls = []

    def counting(table, path, filesystem=None, options=None):
        write_atomic(table, path, filesystem, options)
        calls.append((path.name, table.num_rows, path.stat().st_size))

    monkeypatch.setattr(trial_rows, "write_atomic", counting)
    rows = TrialRows(tmp_path / f"t{epochs}{parts}" / "t.parquet", parts=parts)
    for e in range(1, epochs + 1):
        rows.put({**row(e), "trial_id": "t"})
    return calls


def test_each_epoch_is_written_once_and_bytes_grow_linearly(monkeypatch, tmp_path):
    calls = {e: written(monkeypatch, tmp_path, e, parts=True) for e in (20, 40)}
    assert [(name, n) for name, n, _ in calls[20]] == [(part_name("t", e), 1) for e in range(1, 21)]
    assert sum(n for _, n, _ in calls[40]) == 40  # each row written once
    total = {e: sum(size for *_, size in c) for e, c in calls.items()}
    assert 1.9 < total[40] / total[20] < 2.1  # O(E): twice the epochs, twice the bytes


def test_the_whole_file_layout_writes_quadratically(monkeypatch, tmp_path):
    """The baseline (`parts=False`, the layout before): every epoch rewrites every row."""
    calls = {e: written(monkeypatch, tmp_path, e, parts=False) for e in (20, 40)}
    assert [n for _, n, _ in calls[20]] == list(range(1, 21))
    rows = {e: sum(n for _, n, _ in c) for e, c in calls.items()}
    assert rows == {20: 20 * 21 // 2, 40: 40 * 41 // 2}  # E(E+1)/2 rows written: O(E²)


def test_a_rereported_epoch_replaces_its_file(tmp_path):
    rows = TrialRows(tmp_path / "t.parquet", lazy=True)
    for e in (1, 2, 3, 2, 3):
        rows.set({**row(e), "trial_id": "t", "val_acc": 0.1 * e})
        rows.write()
    rows.put({**row(2), "trial_id": "t", "val_acc": 0.99})
    df = pd.read_parquet(tmp_path).sort_values("epoch")
    assert list(df.epoch) == [1, 2, 3] and list(df.val_acc.round(2)) == [0.1, 0.99, 0.3]
    again = TrialRows(tmp_path / "t.parquet")  # a restored writer reads the epoch files
    assert sorted(again.rows) == [1, 2, 3] and not again.whole


def test_a_trial_with_a_whole_file_keeps_it_whole(tmp_path):
    old = to_table([{**row(e), "trial_id": "t", "schema_version": 1} for e in (1, 2)])
    pq.write_table(old, tmp_path / "t.parquet")
    rows = TrialRows(tmp_path / "t.parquet", lazy=True)
    rows.put({**row(2), "trial_id": "t"})
    rows.put({**row(3), "trial_id": "t"})
    assert rows.whole and sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
    assert list(pd.read_parquet(tmp_path / "t.parquet").epoch) == [1, 2, 3]


def test_a_failed_write_keeps_its_epochs_to_write(monkeypatch, tmp_path):
    rows = TrialRows(tmp_path / "t.parquet")
    calls = []

    def second_fails(table, path, filesystem=None, options=None):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("refused")
        write_atomic(table, path, filesystem, options)

    monkeypatch.setattr(trial_rows, "write_atomic", second_fails)
    for e in (1, 2, 3):
        rows.set({**row(e), "trial_id": "t"})
    with pytest.raises(OSError):
        rows.write()
    assert rows.dirty == {2, 3}  # epoch 1's file is written; 2 failed, 3 not tried
    rows.write()
    assert list(pd.read_parquet(tmp_path).sort_values("epoch").epoch) == [1, 2, 3]

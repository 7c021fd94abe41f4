"""Bad files are never contagious (the study side), and the study's files are safe by default,
all without Ray: quarantine of what can't stay in results/, a damaged trial file rebuilt from
its checkpoint's rows, the writer surviving a damaged file, Tune snapshots judged whole or
torn, checkpoints that load with weights_only=True, `${VAR}` values kept out of spec.yaml,
file modes that follow the umask."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_config

from study.results import quarantine
from study.results.files import write_atomic
from study.results.schema import SCHEMA_VERSION, to_table
from study.results.trial_rows import TrialRows
from study.spec import load_spec
from study.train.identity import trial_columns
from study.train.trial import run_trial
from study.tune import start
from study.tune.checkpoint import ROWS, STATE_FILE, checkpoint_rows, rows_of

CFG = tiny_config(**{"train.epochs": 3})


def rows(trial_id: str, epochs: int = 3) -> list[dict]:
    base = {
        **trial_columns(CFG),
        "study": "s",
        "trial_id": trial_id,
        "status": "ok",
        "schema_version": SCHEMA_VERSION,
    }
    return [{**base, "epoch": e, "val_acc": 0.1 * e, "message": ""} for e in range(1, epochs + 1)]


def checkpoint(study, trial_id: str, n: int, trial_rows: list[dict]) -> None:
    folder = study / "tune" / trial_id / f"checkpoint_{n:06d}"
    folder.mkdir(parents=True)
    drop = ("study", "trial_id", "schema_version")  # the driver's writer adds them
    bare = [{k: v for k, v in r.items() if k not in drop} for r in trial_rows]
    torch.save({"epoch": n, ROWS: json.dumps(bare)}, folder / STATE_FILE)


@pytest.fixture
def study(tmp_path):
    """A study folder named "s": two good trial files, trial b with checkpoints."""
    s = tmp_path / "s"
    for t in ("a", "b"):
        write_atomic(to_table(rows(t)), s / "results" / f"{t}.parquet")
    checkpoint(s, "b", 1, rows("b", 1))
    checkpoint(s, "b", 2, rows("b", 3))  # the newest: every epoch
    return s


def test_bad_files_are_quarantined_and_a_damaged_trial_rebuilt(study, capsys):
    results = study / "results"
    before = pd.read_parquet(results / "b.parquet")
    data = (results / "b.parquet").read_bytes()
    (results / "b.parquet").write_bytes(data[: len(data) // 2])  # truncated
    (results / "empty.parquet").write_bytes(b"")
    pq.write_table(pa.table({"x": [1], "schema_version": [2]}), results / "foreign.parquet")
    pq.write_table(
        pa.table({"trial_id": ["z"], "epoch": ["1"], "schema_version": [2]}),
        results / "types.parquet",
    )
    pq.write_table(
        to_table([{**rows("n")[0], "schema_version": SCHEMA_VERSION + 1}]), results / "n.parquet"
    )
    (results / "notes.txt").write_text("hello")
    (results / ".a.123.tmp").write_bytes(b"PAR1")
    (results / "sub").mkdir()
    with pytest.raises(Exception):  # noqa: B017 - what one bad file does to the whole folder
        pd.read_parquet(results)
    quarantine.repair(study, checkpoint_rows)
    err = capsys.readouterr().err
    bad = ["b.parquet", "empty.parquet", "foreign.parquet", "types.parquet", "n.parquet"]
    bad += ["notes.txt", ".a.123.tmp", "sub"]
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(bad)
    for name in bad:
        assert any(f"/results/{name}: " in w for w in warnings), name
        assert (study / "quarantine" / name).exists(), name
    assert "rebuilt trial b's rows" in err and "3 rows" in err
    df = pd.read_parquet(results)  # the folder reads as one table again
    b = [f"b.e000{e}.parquet" for e in (1, 2, 3)]  # rebuilt as epoch files (trial_rows)
    assert sorted(p.name for p in results.iterdir()) == ["a.parquet", *b]
    assert len(df) == 6 and set(df.trial_id) == {"a", "b"}
    rebuilt = pd.concat([pd.read_parquet(results / n) for n in b], ignore_index=True)
    cols = ["study", "trial_id", "epoch", "val_acc", "config_json", "schema_version"]
    pd.testing.assert_frame_equal(rebuilt[cols], before[cols])


def test_a_damaged_epoch_file_is_rebuilt_alone(study, capsys):
    """Trial b as epoch files, one of them truncated: that epoch's row comes back from the
    checkpoint, the others are not rewritten."""
    results = study / "results"
    whole = pd.read_parquet(results / "b.parquet")
    (results / "b.parquet").unlink()
    for row in to_table(rows("b")).to_pylist():
        write_atomic(to_table([row]), results / f"b.e000{row['epoch']}.parquet")
    kept = {n: (results / n).read_bytes() for n in ("b.e0001.parquet", "b.e0003.parquet")}
    data = (results / "b.e0002.parquet").read_bytes()
    (results / "b.e0002.parquet").write_bytes(data[:-20])
    quarantine.repair(study, checkpoint_rows)
    err = capsys.readouterr().err
    assert "b.e0002.parquet: unreadable" in err and "rebuilt trial b's rows" in err
    assert "1 rows" in err
    assert {n: (results / n).read_bytes() for n in kept} == kept
    df = pd.read_parquet(results)
    b = df[df.trial_id == "b"].sort_values("epoch").reset_index(drop=True)
    cols = ["epoch", "val_acc", "config_json"]
    pd.testing.assert_frame_equal(b[cols], whole[cols])


def test_an_errored_trial_gets_its_error_row_back(study):
    (study / "tune" / "b" / "error.txt").write_text("Traceback…\nValueError: boom\n")
    (study / "results" / "b.parquet").write_bytes(b"PAR1 broken")
    quarantine.repair(study, checkpoint_rows)
    df = pd.read_parquet(study / "results")
    df = df[df.trial_id == "b"].sort_values("epoch")
    assert list(df.status) == ["ok", "ok", "ok", "error"] and df.message.iloc[-1].endswith("boom")


def test_a_good_folder_is_left_alone(study, capsys):
    quarantine.repair(study, checkpoint_rows)
    assert capsys.readouterr().err == "" and not (study / "quarantine").exists()


def test_a_compacted_folder_is_left_alone_and_its_rows_read_once(study, capsys):
    from study.results import compact

    compact.compact(study)  # compacted.parquet and its _shortlist.parquet
    quarantine.repair(study, checkpoint_rows)
    assert capsys.readouterr().err == "" and not (study / "quarantine").exists()
    assert len(pd.read_parquet(study / "results")) == 6  # the shortlist's copies not read


def test_the_writer_survives_a_damaged_file_and_recovers_its_rows(study, capsys):
    (study / "results" / "b.parquet").write_bytes(b"")
    trial = TrialRows(study / "results" / "b.parquet", recover=checkpoint_rows)
    assert sorted(trial.rows) == [1, 2, 3] and "moved to" in capsys.readouterr().err
    trial.put({**rows("b")[0], "epoch": 4})  # its whole file (written before epoch files)
    assert list(pd.read_parquet(trial.path).epoch) == [1, 2, 3, 4]


def test_the_writer_recovers_a_damaged_epoch_file(study, capsys):
    results = study / "results"
    (results / "b.parquet").unlink()
    for row in to_table(rows("b")).to_pylist()[:2]:
        write_atomic(to_table([row]), results / f"b.e000{row['epoch']}.parquet")
    (results / "b.e0001.parquet").write_bytes(b"")
    trial = TrialRows(results / "b.parquet", recover=checkpoint_rows)
    assert sorted(trial.rows) == [1, 2, 3] and "moved to" in capsys.readouterr().err
    assert trial.dirty == {1, 3}  # the checkpoint's rows no file holds: written next
    trial.put({**rows("b")[0], "epoch": 4})
    names = sorted(p.name for p in results.glob("b*"))
    assert names == [f"b.e000{e}.parquet" for e in (1, 2, 3, 4)] and trial.dirty == set()


def _snapshot(tune, session: str, torn: bool = False) -> None:
    tune.mkdir(parents=True, exist_ok=True)
    state = json.dumps({"trial_data": []})
    (tune / f"experiment_state-{session}.json").write_text(state[:-3] if torn else state)
    for name in ("search_gen_state-{}.json", "searcher-state-{}.pkl"):
        (tune / name.format(session)).write_bytes(b"\x80\x05}\x94.")


def test_only_a_whole_tune_snapshot_makes_a_study_restorable(tmp_path, capsys):
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(b"\x80\x05N.")
    assert not start.restorable(tmp_path)  # the v0.1 bug: only tuner.pkl
    _snapshot(tune, "2026-01-01_00-00-00")
    assert start.restorable(tmp_path)
    _snapshot(tune, "2026-01-02_00-00-00", torn=True)  # a kill while Tune wrote it
    assert start.restorable(tmp_path)  # the older whole one
    assert (tune / ".torn" / "experiment_state-2026-01-02_00-00-00.json").exists()
    assert "is incomplete" in capsys.readouterr().err
    (tune / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(b"\x80\x05}\x94")  # torn
    assert not start.restorable(tmp_path)


def test_restart_keeps_rows_aside_and_clears_tune(study):
    start.restart(study, "s")
    assert not (study / "tune").exists() and not list((study / "results").iterdir())
    assert sorted(p.name for p in (study / "orphaned_results").iterdir()) == [
        "a.parquet",
        "b.parquet",
    ]


@pytest.mark.parametrize("method", ["erm", "mixup", "mit_a"])
def test_checkpoints_load_with_weights_only(method, tmp_path, fake_data):
    states = []
    cfg = tiny_config(**{"method.name": method})
    run_trial(
        cfg,
        lambda row, state_fn: states.append({**state_fn(), ROWS: json.dumps([row])}),
        data=fake_data,
    )
    torch.save(states[-1], tmp_path / STATE_FILE)
    loaded = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert rows_of(loaded)[0]["epoch"] == 1 and set(loaded) >= {"model", "optimizer", "method"}


def test_environment_values_stay_out_of_the_saved_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("I9_SECRET_ROOT", "/secret/place")
    path = tmp_path / "s.yaml"
    path.write_text(
        "dataset: {name: fake, root: '${I9_SECRET_ROOT}', label: '${I9_UNSET:-fakes}'}\n"
    )
    spec = load_spec(path)
    assert spec.fixed["dataset"]["root"] == "/secret/place"  # the trials get the value
    assert spec.trial_config({}).dataset.label == "fakes"
    start.create(tmp_path / "studies" / "s", spec.raw)
    saved = (tmp_path / "studies" / "s" / "spec.yaml").read_text()
    assert "/secret/place" not in saved and "${I9_SECRET_ROOT}" in saved
    assert "${I9_UNSET:-fakes}" in saved
    assert start.saved_spec(tmp_path / "studies" / "s") == spec.raw  # what --resume compares


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_results_files_follow_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        write_atomic(to_table(rows("a")), tmp_path / "r" / "a.parquet")
        start.create(tmp_path / "study", {"name": "x"})
    finally:
        os.umask(old)
    for path in (tmp_path / "r" / "a.parquet", tmp_path / "study" / "spec.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE((tmp_path / "study").stat().st_mode) == 0o777 & ~umask
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["a.parquet"]  # no temporary left

"""The guards of `study run` that protect a user's work, before anything starts (no Ray, no
data): an existing study is never overwritten (by its spec's name or by `--name`), `--resume`
and `study resume` refuse when there is nothing to resume. Each refusal exits 2 with one line on
stderr and leaves the study directory byte for byte as it was. (Resuming with a changed spec and
`study resume` of a real study are in test_tune_wiring.py, which has a study to resume.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml

from study.cli.main import main

SPEC = {
    "dataset": {"name": "fake", "train_size": 64, "val_size": 32, "test_size": 32},
    "model": {"name": "resnet18", "width": 8},
    "train": {"epochs": 1, "batch_size": 32},  # at most the 64 training images
    "runtime": {"device": "cpu"},
    "grid": {"train.seed": [0]},
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    """A spec file `guard.yaml` and a storage holding a study `guard` with a spec and a result."""
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    storage = tmp_path / "studies"
    for name in ("guard", "other"):
        (storage / name / "results").mkdir(parents=True)
        (storage / name / "spec.yaml").write_text(yaml.safe_dump({"name": name, **SPEC}))
        (storage / name / "results" / "t1.parquet").write_bytes(b"rows of finished work")
    return path, storage


def refused(capsys, argv: list[str], storage: Path, command: str = "run") -> str:
    before = snapshot(storage)
    assert main([*argv, "--storage", str(storage)]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"study {command}: error: "), err
    assert "Traceback" not in err and not ray.is_initialized()
    assert snapshot(storage) == before  # nothing written, nothing lost
    return err


def test_an_existing_study_is_not_overwritten(capsys, setup):
    path, storage = setup
    err = refused(capsys, ["run", str(path)], storage)
    assert str(storage / "guard") in err and "--resume" in err


def test_name_chooses_the_study_directory(capsys, setup):
    path, storage = setup
    err = refused(capsys, ["run", str(path), "--name", "other"], storage)
    assert str(storage / "other") in err and str(storage / "guard") not in err


@pytest.mark.parametrize("command", ["run --resume", "resume"])
def test_resume_with_nothing_to_resume(capsys, setup, command):
    path, storage = setup
    argv = [*command.split(), str(path)]
    cmd = command.split()[0]
    # no study of that name at all
    assert str(storage / "new") in refused(capsys, [*argv, "--name", "new"], storage, cmd)
    assert not (storage / "new").exists()
    # (a study directory without Tune's state, killed before its first snapshot, is not refused:
    # --resume restarts it from its spec.yaml, tests/tune/test_kill_resume.py)


def test_resume_is_run_with_resume(capsys, setup):
    """`study resume` takes the options of `study run` (less --resume)."""
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in ("--storage", "--name", "--set", "--address"))
    assert "--resume" not in text

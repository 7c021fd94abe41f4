"""Study names and folders that never collide (study.tune.names, `study run --name auto`,
`--trials`): a folder of studies (what `make demo` makes) is never taken for a study: a new run
adds one to it and `--resume` continues its latest; a name that exists is refused with the three
ways on; `--trials N` makes a small study of a spec that queues more points. No Ray: these are
decided before any work."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from study.cli.main import main
from study.cli.run import study_spec
from study.errors import ConfigError
from study.spec import load_spec, with_trials
from study.tune import names, storage

DEMO = Path(__file__).resolve().parents[2] / "search_spaces" / "demo.yaml"
STAMP = r"demo-\d{8}-\d{6}"


def args(root: Path, name: str | None = None, resume: bool = False, trials: int | None = None):
    return argparse.Namespace(
        spec=DEMO,
        sets=[],
        name=name,
        resume=resume,
        storage=str(root),
        trials=trials,
        address=None,
    )


def make_study(where: Path, name: str) -> None:
    """A study directory as study.tune.start makes it: the spec as run (demo.yaml, named)."""
    where.mkdir(parents=True)
    (where / "spec.yaml").write_text(yaml.safe_dump({**load_spec(DEMO).raw, "name": name}))


def test_a_folder_of_studies_is_not_a_study(tmp_path, capsys):
    """After `make demo` (studies/demo/demo-<time>/ and latest), the README's `study run` starts
    a new study in the folder, and `--resume` continues the latest one."""
    folder = tmp_path / "demo"
    make_study(folder / "demo-20260101-120000", "demo-20260101-120000")
    (folder / "latest").symlink_to("demo-20260101-120000")
    spec, study_dir = study_spec(a := args(tmp_path))
    assert re.fullmatch(STAMP, spec.name) and Path(study_dir.path).parent == folder
    assert a.storage == str(folder) and a.name == spec.name  # what a resume line prints
    assert "is a folder of studies" in capsys.readouterr().out
    spec, study_dir = study_spec(args(tmp_path, resume=True))
    assert spec.name == "demo-20260101-120000"
    assert Path(study_dir.path) == folder / "demo-20260101-120000"


def test_auto_names_a_new_study_and_latest_points_at_it(tmp_path):
    spec, study_dir = study_spec(args(tmp_path, name="auto"))
    local = Path(study_dir.path)
    assert re.fullmatch(STAMP, spec.name) and local.parent == tmp_path / "demo"
    make_study(local, spec.name)
    names.point_latest(local)
    assert (tmp_path / "demo" / "latest").resolve() == local
    again, _ = study_spec(args(tmp_path, name="auto"))  # the same second: a suffix
    assert again.name != spec.name


def test_auto_beside_a_study_of_the_specs_name(tmp_path):
    """A study `studies/demo` can't hold others: auto-named ones go beside it."""
    make_study(tmp_path / "demo", "demo")
    spec, study_dir = study_spec(args(tmp_path, name="auto"))
    assert Path(study_dir.path).parent == tmp_path and re.fullmatch(STAMP, spec.name)


def test_an_existing_study_offers_the_three_ways_on(tmp_path, capsys):
    make_study(tmp_path / "demo", "demo")
    assert main(["run", str(DEMO), "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert all(way in err for way in ("--resume", "--name auto", "another --name"))


def test_resume_of_an_empty_folder_is_refused(tmp_path):
    root = storage.open_location(tmp_path)
    (tmp_path / "demo").mkdir()
    with pytest.raises(ConfigError, match="no study to resume"):
        names.latest(root / "demo")


def test_trials_cuts_the_points():
    spec = load_spec(DEMO)
    assert len(spec.search.points) == 8
    small = with_trials(spec, 4)
    assert small.num_trials == 4 and len(small.search.points) == 4
    assert small.search.points == spec.search.points[:4]
    with pytest.raises(ConfigError, match="at least 1"):
        with_trials(spec, 0)


def test_too_few_trials_for_the_points_names_the_fixes(tmp_path, capsys):
    assert main(["validate", str(DEMO)]) == 0
    capsys.readouterr()
    argv = ["run", str(DEMO), "--storage", str(tmp_path), "--set", "search.trials=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--trials 4" in err and "search.points=[]" in err

"""A crash-consistent study directory (docs/reliability.md): at every moment a driver can die,
`study run --resume` either restores Tune's experiment or restarts the study cleanly from its
saved spec, and ends with every planned trial.

- The directory appears whole: it is built as a hidden sibling holding `spec.yaml`, then renamed
  into place, so a study directory always has its spec.
- A study has *started* only once Tune has written a whole experiment snapshot (the newest
  `experiment_state-*.json` parses and its searcher files are beside it). Before that, `tune/`
  may hold only `tuner.pkl`, from which Tune's own restore would run a fraction of the plan and
  call it finished; so such a study is restarted from `spec.yaml` instead. A newer snapshot
  torn by a kill mid-write is set aside so Tune restores the last whole one.
- Rows of trials from an aborted start are moved to `orphaned_results/` (kept, not deleted).

The kill tests' moments are study.crashpoints.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from study.errors import ConfigError
from study.yamlio import dump_yaml, load_yaml

SPEC_FILE = "spec.yaml"
TUNE_DIR = "tune"
# Files of one Tune snapshot, by session: the experiment state (JSON) and the searcher's two
# files (pickles, whatever their names say).
_SNAPSHOT = ("experiment_state-{}.json", "search_gen_state-{}.json", "searcher-state-{}.pkl")


def create(study_dir: Path, raw: dict[str, Any]) -> None:
    """Make `study_dir` holding `spec.yaml` (the spec as written, `${VAR}` references kept),
    atomically: a hidden sibling is filled, then renamed into place."""
    study_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = study_dir.parent / f".{study_dir.name}.starting-{secrets.token_hex(4)}"
    staging.mkdir()
    (staging / SPEC_FILE).write_text(dump_yaml(raw))
    try:
        staging.rename(study_dir)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(
            f"study directory {study_dir} appeared meanwhile: choose another --name"
        ) from None


def saved_spec(study_dir: Path) -> Any:
    """The spec a study began with (as written); ConfigError when it is gone or unreadable."""
    path = study_dir / SPEC_FILE
    try:
        return load_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{study_dir} has no {SPEC_FILE} (deleted?), so it can't be resumed: move the "
            "directory away and start the study again"
        ) from None
    except (OSError, ValueError) as e:  # yaml.YAMLError is a ValueError's cousin: both here
        raise ConfigError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _whole(tune_dir: Path, session: str) -> bool:
    """Whether a session's snapshot files are all there and complete: the experiment state
    parses as JSON, the searcher's two pickles end with pickle's STOP opcode (not unpickled)."""
    state, *pickles = (tune_dir / name.format(session) for name in _SNAPSHOT)
    try:
        json.loads(state.read_text())
        return all(p.read_bytes().endswith(b".") for p in pickles)
    except (OSError, ValueError):
        return False


def restorable(study_dir: Path) -> bool:
    """Whether Tune can restore the study: it has a whole snapshot. Newer torn snapshots (a
    kill while Tune wrote them) are moved to `tune/.torn/` so Tune reads the whole one."""
    tune_dir = study_dir / TUNE_DIR
    prefix, suffix = _SNAPSHOT[0].split("{}")
    sessions = sorted(p.name[len(prefix) : -len(suffix)] for p in tune_dir.glob(prefix + "*"))
    while sessions and not _whole(tune_dir, sessions[-1]):
        torn = tune_dir / ".torn"
        torn.mkdir(exist_ok=True)
        print(
            f"{tune_dir}: Tune's snapshot {sessions[-1]} is incomplete (killed while written); "
            f"set aside in {torn}",
            file=sys.stderr,
        )
        for name in _SNAPSHOT:
            path = tune_dir / name.format(sessions[-1])
            if path.exists():
                os.replace(path, torn / path.name)
        sessions.pop()
    return bool(sessions)


def restart(study_dir: Path, study_name: str, storage: Any = None) -> None:
    """Start a study over whose first Tune snapshot never completed: Tune's partial state is
    removed, rows already written are moved to `orphaned_results/`, the Optuna study (when a
    storage is given) is deleted. Safe to interrupt and repeat."""
    print(
        f"{study_dir}: the study never completed its start (no Tune experiment snapshot); "
        "starting it again from its spec.yaml",
        file=sys.stderr,
        flush=True,
    )
    aside = study_dir / "orphaned_results"
    for path in sorted((study_dir / "results").glob("*.parquet")):
        aside.mkdir(exist_ok=True)
        os.replace(path, aside / path.name)
    shutil.rmtree(study_dir / TUNE_DIR, ignore_errors=True)
    if storage is not None:
        import optuna

        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:  # no such study yet
            pass

"""Keep a study's `results/` readable as one table (docs/reliability.md).

`pd.read_parquet(results)` reads every file in the folder, so one bad file hides every result.
`repair(study_dir, recover)` (on `--resume`, and before a study's summary) moves whatever is not a
whole results file of this schema — an unreadable or truncated Parquet file, another table, a
non-Parquet file, a temporary file of an interrupted write, a sub-folder — to `quarantine/`
beside `results/`, with one warning line on stderr naming each; and rebuilds a trial's damaged
file from the rows its newest checkpoint carries (study.tune.checkpoint keeps a trial's rows so
far in every checkpoint and hands them in as `recover`: this layer knows no checkpoint
layout), so the epochs it had are not lost. A running trial re-reports the epochs
after that checkpoint when it resumes.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from study.results import compact_swap
from study.results.files import LEAN, write_atomic
from study.results.names import listing_of, part_name, trial_of
from study.results.schema import (
    COLUMN_NAMES,
    COMPACTED,
    IDENTITY,
    SCHEMA,
    SCHEMA_VERSION,
    SHORTLIST,
    STATUS_ERROR,
    last_line,
    to_table,
)

QUARANTINE = "quarantine"
Recover = Callable[[Path, str], list[dict[str, Any]]]  # (study_dir, trial_id) -> its rows
_KEYS = ("trial_id", "epoch", "schema_version")


def problem(path: Path) -> str | None:
    """Why `path` can't stay in a results folder, or None for a whole results file."""
    if path.is_dir():
        return "a folder, not a results file"
    if path.name.startswith((".", "_")) and path.name != SHORTLIST:
        return "a temporary file of an interrupted write"
    if path.suffix != ".parquet":
        return "not a .parquet file"
    try:
        schema = pq.read_schema(path)
        names = set(schema.names)
        foreign = sorted(names - set(COLUMN_NAMES))
        if foreign or not set(_KEYS) <= names:
            what = f"columns {foreign[:3]}" if foreign else f"no {'/'.join(_KEYS)} columns"
            return f"not a results table of this study ({what})"
        for field in schema:
            want = SCHEMA.field(field.name).type
            if not field.type.equals(want):
                return f"column {field.name} is {field.type}, not {want}"
        keys = pq.read_table(path, columns=list(_KEYS))  # also reads past the footer
        versions = set(keys.column("schema_version").to_pylist())
    except (OSError, pa.ArrowException) as e:
        return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    newer = sorted(v for v in versions if v is None or v > SCHEMA_VERSION)
    return f"schema_version {newer[0]} is not one this code reads" if newer else None


def set_aside(path: Path, why: str) -> Path:
    """Move `path` to `<study>/quarantine/` (a unique name) with one warning line."""
    folder = path.parent.parent / QUARANTINE
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{secrets.token_hex(3)}{path.suffix}"
    os.replace(path, target)
    print(f"warning: {path}: {why}; moved to {target}", file=sys.stderr, flush=True)
    return target


def _error_row(study_dir: Path, trial_id: str, rows: list[dict[str, Any]]) -> list[dict]:
    """The error row of a trial that failed (Tune's error.txt), after its last checkpoint."""
    error = study_dir / "tune" / trial_id / "error.txt"
    if not error.is_file() or not rows or rows[-1]["status"] == STATUS_ERROR:
        return []
    last = rows[-1]
    identity = {k: last.get(k) for k in ("study", "trial_id", *IDENTITY)}
    message = last_line(error.read_text())
    error = {"epoch": last["epoch"] + 1, "status": STATUS_ERROR, "message": message}
    return [{**identity, **error, "schema_version": SCHEMA_VERSION}]


def rebuild(study_dir: Path, trial_id: str, recover: Recover) -> int:
    """Write the rows of the trial's checkpoint (`recover`, study.tune.checkpoint.
    checkpoint_rows) that no file of the trial left in `results/` holds: as epoch files, or
    into the trial's whole file where it has one (study.results.trial_rows); the rows written."""
    results = study_dir / "results"
    names = listing_of(results, None).get(trial_id, [])
    held = [pq.read_table(results / n).to_pylist() for n in names]
    have = {row["epoch"] for rows in held for row in rows}
    rows = recover(study_dir, trial_id)
    rows += _error_row(study_dir, trial_id, rows)
    rows = [row for row in rows if row["epoch"] not in have]
    whole = f"{trial_id}.parquet"
    if rows and whole in names:
        merged = {r["epoch"]: r for r in [*held[names.index(whole)], *rows]}
        write_atomic(to_table(merged[e] for e in sorted(merged)), results / whole)
    else:
        for row in rows:
            write_atomic(to_table([row]), results / part_name(trial_id, row["epoch"]), None, LEAN)
    return len(rows)


def repair(study_dir: Path, recover: Recover) -> None:
    """Finish or undo a compaction killed midway (study.results.compact_swap.recover: its hidden
    sibling of results/ and the manifest it left would otherwise be lost or quarantined), then
    quarantine every bad entry of `<study_dir>/results`; rebuild damaged trial files."""
    results = study_dir / "results"
    if not results.is_dir():
        return
    compact_swap.recover(str(results))
    tune_dir, damaged = study_dir / "tune", []
    for path in sorted(results.iterdir()):
        why = problem(path)
        if why is None:
            continue
        set_aside(path, why)
        if path.suffix != ".parquet":
            continue
        trials = [trial_of(path.name)]
        if path.name == COMPACTED and tune_dir.is_dir():  # every trial's rows were in it
            trials = sorted(p.name for p in tune_dir.iterdir() if any(p.glob("checkpoint_*")))
        damaged += [t for t in trials if t is not None and t not in damaged]
    for trial_id in damaged:  # once every bad file is aside: the trial's good files are read
        if (tune_dir / trial_id).is_dir():
            n = rebuild(study_dir, trial_id, recover)
            print(
                f"rebuilt trial {trial_id}'s rows in {results} from its checkpoint: {n} rows",
                file=sys.stderr,
            )

"""The names of a results directory's files (study.results.trial_rows writes them): a trial's
epoch files `<trial_id>.e<epoch>.parquet`, or its whole file `<trial_id>.parquet` (studies
written before issue 21), beside the compacted file and its shortlist (study.results.compact).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs

from study.results.schema import COMPACTED

_NAME = re.compile(r"^(?P<trial>.+?)(?:\.e(?P<epoch>\d+))?\.parquet$")
Listing = Callable[[str], list[str]]  # trial_id -> the names of its files in the directory


def part_name(trial_id: str, epoch: int) -> str:
    """The file of one epoch's row: `<trial_id>.e0007.parquet`."""
    return f"{trial_id}.e{int(epoch):04d}.parquet"


def trial_of(name: str) -> str | None:
    """The trial a results file's name belongs to (a whole file or an epoch's); None for a name
    that is neither."""
    found = _NAME.match(name)
    return found["trial"] if found else None


def listing_of(directory: Path, filesystem: pafs.FileSystem | None) -> dict[str, list[str]]:
    """The results files directly in `directory`, by trial (one listing of the directory)."""
    if filesystem is None:
        found = os.scandir(directory) if Path(directory).is_dir() else []
        names = [e.name for e in found if e.is_file()]
    else:
        selector = pafs.FileSelector(str(directory), allow_not_found=True)
        names = [i.base_name for i in filesystem.get_file_info(selector) if i.is_file]
    by_trial: dict[str, list[str]] = {}
    for name in sorted(names):
        trial = trial_of(name)
        if trial is not None and not name.startswith((".", "_")) and name != COMPACTED:
            by_trial.setdefault(trial, []).append(name)
    return by_trial

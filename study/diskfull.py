"""A full disk, named in one line: which path, how much is free there, and what to run once
space is freed (`study run … --resume`, `study compact DIR` again, the trial again).

A disk fills wherever the driver writes: the results writer's Parquet files, Optuna's SQLite
commit (SQLAlchemy's OperationalError around sqlite3's "database or disk is full"), Tune's
experiment snapshots, the study's spec.yaml, compaction's temporary file. Each surfaced as a
traceback of some hundred lines (302 for a study) ending in the last library's error, and never
said "no space left". `one_line` turns any of them, found anywhere in an exception's chain
(`__cause__`, `__context__`, SQLAlchemy's `orig`, Ray's `cause`), into `DiskFull`, which
study.cli prints as one line with exit status 1 (not 2: the input was fine). What was written
stays: a results file is written whole through a temporary file and a rename, and a study
resumes from its last snapshot once there is space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left; disk quota exceeded
FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class DiskFull(Exception):
    """A write failed for want of space; `str()` is the one line to print."""


def full_cause(err: BaseException) -> BaseException | None:
    """The exception in `err`'s chain that says the disk is full, or None: an OSError of
    errno ENOSPC/EDQUOT first, else the innermost whose text says so (Tune re-raises a
    callback's error as text, its traceback included)."""
    chain, seen = [], set()
    stack: list[BaseException | None] = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        stack += [e.__cause__, e.__context__, getattr(e, "orig", None), getattr(e, "cause", None)]
    for e in chain:
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return e
    return next((e for e in reversed(chain) if _said(e)), None)


def _said(e: BaseException) -> str:
    """The last line of `e`'s text that says the disk is full ('' if none)."""
    lines = [line.strip() for line in str(e).splitlines()]
    return next((x for x in reversed(lines) if any(t in x.lower() for t in FULL_TEXTS)), "")


def free_space(path: str | os.PathLike) -> str:
    """The free space of the filesystem holding `path` (its nearest existing folder), e.g.
    "12.3 MB free"; "free space unknown" for a remote URI or an unreadable path."""
    if "://" in str(path):
        return "free space unknown"
    here = Path(path).absolute()
    existing = next((p for p in (here, *here.parents) if p.exists()), None)
    try:
        free = float(shutil.disk_usage(existing or "/").free)
    except OSError:
        return "free space unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit} free" if unit == "B" else f"{free:.1f} {unit} free"
        free /= 1000
    raise AssertionError("unreachable")


def describe(cause: BaseException, where: str | os.PathLike) -> str:
    """'no space left on device writing PATH (N free there; the error's words)': the cause's
    own file when it names one, else `where` (the study directory, the results folder)."""
    said = str(cause) if isinstance(cause, OSError) and cause.errno else _said(cause)
    named = re.search(r"(?:device|full): '([^']+)'", said)  # "[Errno 28] …: '/path'"
    path = getattr(cause, "filename", None) or (named and named.group(1)) or where
    said = said if len(said) <= 160 else said[:157] + "..."  # the library's own words
    return f"no space left on device writing {path} ({free_space(path)} there; {said})"


@contextlib.contextmanager
def one_line(where: str | os.PathLike, then: str) -> Iterator[None]:
    """Re-raise a full disk met inside as DiskFull: where, the free space, and `then` (what to
    run once space is freed). Every other exception passes unchanged."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        cause = full_cause(err)
        if cause is None:
            raise
        raise DiskFull(f"{describe(cause, where)}; what was written is kept; {then}") from None

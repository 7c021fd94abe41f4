"""One driver per study: a lock on the study directory, taken before anything is written to it
(docs/reliability.md, "One driver per study").

Two drivers on one study destroyed it without a word: the second took the first's half-made
directory for a crashed start and restarted it, or two `--resume`s ran the same trials twice
over each other's files. Now `study run`, `study resume` and `study compact` hold the study's
lock for as long as they write, and a second one is refused in one line naming the holder.

The lock lives beside the study directory, so it exists before the directory does:
- **local disk** (and NFS): `<parent>/.<name>.lock`, held with `flock` while the process lives.
  The kernel releases it when the holder dies, however it dies (SIGKILL included); the file
  keeps the holder's host, PID and start time and is removed on a clean release, so a taker
  that finds a record in it knows the holder died and says so.
- **object storage** (S3 and the like, no file locks): claims beside the study directory,
  `<parent>/.<name>.lease-<token>`, kept alive by a heartbeat and ordered by the store's own
  clock; the first live claim holds the lock (study.tune.lease).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from study.tune.holder import StudyLocked, holder, parse, refusal, took_over
from study.tune.lease import Lease
from study.tune.storage import Location

__all__ = ["StudyLocked", "held", "held_if_study"]


@contextlib.contextmanager
def held(study_dir: Location) -> Iterator[None]:
    """Hold the lock of `study_dir` for the block; StudyLocked when another driver holds it."""
    lock = _LocalLock(study_dir) if study_dir.local else Lease(study_dir)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


class _LocalLock:
    """flock on `<parent>/.<name>.lock` (the study directory's real path when it exists)."""

    def __init__(self, study_dir: Location):
        self.study_dir = study_dir
        real = Path(study_dir.path).resolve()
        self.path = real.parent / f".{real.name}.lock"
        self.fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise refusal(self.study_dir, record) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # a releasing holder removed the file we opened: open the new one
        record = parse(os.pread(fd, 4096, 0))
        if record:  # a holder that did not release: it died (the kernel freed its flock)
            took_over(self.study_dir, record, "it is no longer running")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file while holding it, then let go: no file is left beside the
        study, and a driver that opened the removed file sees it is gone and opens anew."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def held_if_study(where: str) -> contextlib.AbstractContextManager[None]:
    """`held` for the study that `where` names (a study directory or its results/, local or a
    URI), as `study compact` takes it; no lock for a folder that is not a study's (the rows of
    `study trial --results DIR`, a copy of a results folder)."""
    from study.tune.storage import open_location

    place = open_location(where)
    candidates = [place]
    if place.path.rstrip("/").endswith("/results"):
        up = place.path.rstrip("/").rsplit("/", 1)[0]
        candidates.append(
            Location(place.fs, up, place.uri.rstrip("/").rsplit("/", 1)[0], place.query)
        )
    for candidate in candidates:
        if (candidate / "spec.yaml").exists() and (candidate / "results").exists():
            return held(candidate)
    return contextlib.nullcontext()

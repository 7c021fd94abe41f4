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
- **object storage** (S3 and the like, no file locks): a lease, `<parent>/.<name>.lease`, a JSON
  object with the holder's host, PID, a random token and the start time, rewritten every
  HEARTBEAT_SECONDS. A lease is free when absent, when its holder was on this host and its PID
  is gone, or when it is older than LEASE_SECONDS by the store's own clock (so clocks of
  different hosts need not agree). Taking it: read it once more (judging it took several
  requests: a driver slowed there must not overwrite a lease another took meanwhile), write our
  token, wait SETTLE_SECONDS, read it back; only the driver whose token is there holds it (the
  store's read-after-write consistency makes one of two writers win). A holder whose heartbeat
  finds another token says so on stderr and stops heartbeating: it was stalled past the lease,
  and another driver took over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from study.errors import ConfigError
from study.tune.storage import Location

LEASE_SECONDS = 90.0  # a lease not renewed for this long (store's clock) is a dead holder's
HEARTBEAT_SECONDS = 15.0  # how often a holder renews its lease
SETTLE_SECONDS = 2.0  # between writing a lease and reading it back


class StudyLocked(ConfigError):
    """The study is held by another driver (one line, exit 2)."""


def holder() -> dict[str, Any]:
    """Who we are, as the lock records it."""
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["study", *sys.argv[1:]])[:300],
        "token": secrets.token_hex(8),
    }


@contextlib.contextmanager
def held(study_dir: Location) -> Iterator[None]:
    """Hold the lock of `study_dir` for the block; StudyLocked when another driver holds it."""
    lock = _LocalLock(study_dir) if study_dir.local else _Lease(study_dir)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def describe(record: dict[str, Any]) -> str:
    """`driver PID 123 on host h since … (study run …)`."""
    return (
        f"driver PID {record.get('pid', '?')} on {record.get('host', '?')} since "
        f"{record.get('since', '?')} ({record.get('command', '?')})"
    )


def _refusal(study_dir: Location, record: dict[str, Any]) -> StudyLocked:
    return StudyLocked(
        f"study {study_dir} is in use by {describe(record)}: wait for it to end or stop it; "
        "one driver per study"
    )


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def _dead_here(record: dict[str, Any]) -> bool:
    """Whether the recorded holder ran on this machine (same host and boot) and is gone."""
    if record.get("host") != socket.gethostname() or record.get("boot") != _boot_id():
        return False
    try:
        os.kill(int(record.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def _took_over(study_dir: Location, record: dict[str, Any], why: str) -> None:
    print(f"{study_dir}: took over the lock of {describe(record)}: {why}", file=sys.stderr)


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
                record = _parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise _refusal(self.study_dir, record) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # a releasing holder removed the file we opened: open the new one
        record = _parse(os.pread(fd, 4096, 0))
        if record:  # a holder that did not release: it died (the kernel freed its flock)
            _took_over(self.study_dir, record, "it is no longer running")
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


def _parse(data: bytes) -> dict[str, Any]:
    try:
        record = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {"host": "?", "command": "unreadable lock record"}
    return record if isinstance(record, dict) else {}


class _Lease:
    """A heartbeat lease `<parent>/.<name>.lease` on an object store (module docstring)."""

    def __init__(self, study_dir: Location):
        parent, name = study_dir.path.rsplit("/", 1)
        self.study_dir, self.fs = study_dir, study_dir.fs
        self.path = f"{parent}/.{name}.lease"
        self.me = holder()
        self.probe = f"{parent}/.{name}.lease-clock-{self.me['token']}"
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _read(self) -> tuple[dict[str, Any], float] | None:
        """The lease's record and its age in seconds by the store's clock; None when absent."""
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(self.path) as f:
            record = _parse(f.read())
        written = info.mtime.timestamp() if info.mtime is not None else time.time()
        return record, self._now() - written

    def _now(self) -> float:
        """The store's current time: the modification time of an object written now."""
        with self.fs.open_output_stream(self.probe) as f:
            f.write(b"clock")
        mtime = self.fs.get_file_info(self.probe).mtime
        now = mtime.timestamp() if mtime is not None else time.time()
        with contextlib.suppress(OSError):
            self.fs.delete_file(self.probe)
        return now

    def _write(self) -> None:
        with self.fs.open_output_stream(self.path) as f:
            f.write(json.dumps(self.me).encode())

    def _token(self) -> str | None:
        """The token of the lease there now (None: no lease), in one read, no clock probe."""
        if self.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
            return None
        try:
            with self.fs.open_input_stream(self.path) as f:
                return _parse(f.read()).get("token") or ""
        except OSError:  # removed in between (its holder released it)
            return None

    def acquire(self) -> None:
        found = self._read()
        why = None
        if found is not None:
            record, age = found
            if _dead_here(record):
                why = "it is no longer running"
            elif age > LEASE_SECONDS:
                why = f"its lease was last renewed {age:.0f} s ago"
            else:
                raise _refusal(self.study_dir, record)
        # Another driver may have written its lease since our read (reading the store's clock
        # takes several requests): write only over what we judged, read again just before;
        # two writes close together are then settled by the read-back below.
        judged = None if found is None else (found[0].get("token") or "")
        if self._token() != judged:
            now = self._read()
            raise _refusal(self.study_dir, now[0] if now else {})
        if why is not None:
            _took_over(self.study_dir, found[0], why)
        self._write()
        time.sleep(SETTLE_SECONDS)
        found = self._read()
        if found is None or found[0].get("token") != self.me["token"]:
            raise _refusal(self.study_dir, found[0] if found else {})
        self.thread = threading.Thread(target=self._heartbeat, daemon=True, name="study-lease")
        self.thread.start()

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                found = self._read()
                if found is None or found[0].get("token") != self.me["token"]:
                    record = found[0] if found else {"command": "nobody (the lease is gone)"}
                    print(
                        f"{self.study_dir}: error: this driver lost the study's lease to "
                        f"{describe(record)} (stalled past {LEASE_SECONDS:.0f} s?)",
                        file=sys.stderr,
                    )
                    return
                self._write()
            except OSError as err:  # the store is briefly unreachable: try again next beat
                print(f"{self.study_dir}: lease not renewed: {err}", file=sys.stderr)

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        with contextlib.suppress(OSError):
            found = self._read()
            if found is not None and found[0].get("token") == self.me["token"]:
                self.fs.delete_file(self.path)


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

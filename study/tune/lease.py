"""The study's lock on object storage (S3 and the like, which have no file locks): claims
beside the study directory, ordered by the store's own clock (docs/reliability.md, "One driver
per study").

A driver claims the study by writing an object of its own, `<parent>/.<name>.lease-<token>`
(host, boot id, PID, start, command), written once and never again, and keeps it alive with a
heartbeat object `<token>.beat` beside it, rewritten every HEARTBEAT_SECONDS. A claim is dead
when its holder ran on this host and its PID is gone, or when neither object was written for
LEASE_SECONDS by the store's clock (the modification time of an object written now, so hosts'
clocks need not agree).

Taking the lock: list the claims; a live one of another driver refuses us. Otherwise write our
claim, wait SETTLE_SECONDS, list again: of the live claims, the one the store wrote first
(ties: the smaller token) holds the lock; every other driver removes its claim and is refused.
No driver ever overwrites another's object, so a driver stalled anywhere cannot undo a claim
taken meanwhile: a claim written after another driver's second listing is later than that
driver's claim by at least SETTLE_SECONDS (more than the store clock's one-second step), and
two claims both drivers see are ordered alike by both. (The single lease object it replaces was
overwritten by a taker stalled for more than the settle time between its last read and its
write: two `--resume`s both ran, seen in a loaded CI run.) The holder removes the dead claims
it took over; a holder whose heartbeat finds its own claim removed was stalled past the lease
and says so on stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from study.tune.holder import dead_here, describe, holder, parse, refusal, took_over
from study.tune.storage import Location

LEASE_SECONDS = 90.0  # a claim not renewed for this long (store's clock) is a dead holder's
HEARTBEAT_SECONDS = 15.0  # how often a holder renews its claim
SETTLE_SECONDS = 2.0  # between writing a claim and listing the claims again (> the clock's step)


@dataclass(frozen=True)
class Claim:
    """One driver's claim as listed: its token, record, and the store's times."""

    token: str  # the driver's random token (the object's name ends with it)
    record: dict[str, Any]  # the driver's host, boot id, PID, start and command
    written: float  # when the store wrote the claim object (seconds since the epoch)
    age: float  # seconds since the claim or its heartbeat was last written, store's clock
    path: str  # the claim object


class Lease:
    """This driver's claim on `study_dir` (module docstring): acquire, heartbeat, release."""

    def __init__(self, study_dir: Location):
        self.parent, name = study_dir.path.rsplit("/", 1)
        self.study_dir, self.fs = study_dir, study_dir.fs
        self.prefix = f".{name}.lease-"
        self.me = holder()
        self.claim = f"{self.parent}/{self.prefix}{self.me['token']}"
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _now(self) -> float:
        """The store's current time: the modification time of an object written now."""
        probe = f"{self.claim}.clock"
        self._put(probe, b"clock")
        mtime = self.fs.get_file_info(probe).mtime
        with contextlib.suppress(OSError):
            self.fs.delete_file(probe)
        return mtime.timestamp() if mtime is not None else time.time()

    def _put(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as f:
            f.write(data)

    def claims(self) -> list[Claim]:
        """Every claim on the study, first written first (ties: by token)."""
        now = self._now()
        listed = self.fs.get_file_info(pafs.FileSelector(self.parent, allow_not_found=True))
        parts: dict[str, dict[str, pafs.FileInfo]] = {}
        for info in listed:
            if info.type == pafs.FileType.File and info.base_name.startswith(self.prefix):
                token, _, kind = info.base_name[len(self.prefix) :].partition(".")
                parts.setdefault(token, {})[kind or "claim"] = info
        found = []
        for token, objects in parts.items():
            claim = objects.get("claim")
            if claim is None:  # a leftover heartbeat of a removed claim
                continue
            try:
                with self.fs.open_input_stream(claim.path) as f:
                    record = parse(f.read())
            except OSError:  # removed since the listing (released, or taken over)
                continue
            times = [o.mtime.timestamp() for o in objects.values() if o.mtime is not None]
            written = claim.mtime.timestamp() if claim.mtime is not None else now
            found.append(Claim(token, record, written, now - max(times, default=now), claim.path))
        return sorted(found, key=lambda c: (c.written, c.token))

    def _why_dead(self, claim: Claim) -> str | None:
        if claim.token == self.me["token"]:
            return None
        if dead_here(claim.record):
            return "it is no longer running"
        if claim.age > LEASE_SECONDS:
            return f"its lease was last renewed {claim.age:.0f} s ago"
        return None

    def acquire(self) -> None:
        live = [c for c in self.claims() if self._why_dead(c) is None]
        if live:
            raise refusal(self.study_dir, live[0].record)
        self._put(self.claim, json.dumps(self.me).encode())
        time.sleep(SETTLE_SECONDS)
        judged = [(c, self._why_dead(c)) for c in self.claims()]
        dead = [(c, why) for c, why in judged if why is not None]
        live = [c for c, why in judged if why is None]
        if not live or live[0].token != self.me["token"]:
            self._remove(self.claim)
            other = [c for c in live if c.token != self.me["token"]]
            raise refusal(self.study_dir, other[0].record if other else {})
        for claim, why in dead:
            took_over(self.study_dir, claim.record, why)
            self._remove(claim.path)
        self.thread = threading.Thread(target=self._heartbeat, daemon=True, name="study-lease")
        self.thread.start()

    def _remove(self, claim: str) -> None:
        for path in (f"{claim}.beat", claim):
            with contextlib.suppress(OSError):  # already removed (by its holder, or a taker)
                self.fs.delete_file(path)

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                if self.fs.get_file_info(self.claim).type == pafs.FileType.NotFound:
                    live = [c for c in self.claims() if self._why_dead(c) is None]
                    record = live[0].record if live else {"command": "nobody (the claim is gone)"}
                    print(
                        f"{self.study_dir}: error: this driver lost the study's lease to "
                        f"{describe(record)} (stalled past {LEASE_SECONDS:.0f} s?)",
                        file=sys.stderr,
                    )
                    return
                self._put(f"{self.claim}.beat", b"beat")
            except OSError as err:  # the store is briefly unreachable: try again next beat
                print(f"{self.study_dir}: lease not renewed: {err}", file=sys.stderr)

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self._remove(self.claim)

"""The study's lock on object storage (study.tune.lease), on a loopback S3 server: a live
claim refuses a second driver naming it, a dead or silent one is taken over and said, of
drivers taking it at once exactly one holds it, and a driver stalled between its listing and
its write (the race a loaded CI run showed: both `--resume`s ran) is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time

import pyarrow.fs as pafs
import pytest
from test_lock import holding, refused_while_held
from test_storage import s3  # noqa: F401 - the loopback S3 server fixture

from study.tune import holder, lease, lock, storage


@pytest.fixture
def quick_lease(monkeypatch):
    monkeypatch.setattr(lease, "SETTLE_SECONDS", 1.2)  # above the store clock's 1 s step
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.3)


def objects(parent: str, name: str) -> dict[str, pafs.FileInfo]:
    """The lease objects of study `name` under `parent` (bucket/path), by base name."""
    fs, _ = pafs.FileSystem.from_uri("s3://bkt")
    listed = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    return {i.base_name: i for i in listed if i.base_name.startswith(f".{name}.lease")}


def claims(parent: str, name: str) -> list[str]:
    """The claim objects alone (not a heartbeat, which may or may not be written yet)."""
    return [n for n in objects(parent, name) if "." not in n[len(f".{name}.lease-") :]]


def claim(parent: str, name: str, record: dict) -> None:
    """Another driver's claim, written here (as by another host)."""
    fs, _ = pafs.FileSystem.from_uri("s3://bkt")
    with fs.open_output_stream(f"{parent}/.{name}.lease-{record['token']}") as f:
        f.write(json.dumps(record).encode())


ELSEWHERE = {"host": "elsewhere", "pid": 1, "token": "0e15e", "command": "study run x"}


def test_a_claim_refuses_a_second_driver_is_renewed_and_removed(s3, quick_lease):  # noqa: F811
    refused_while_held("s3://bkt/leases/a")
    assert len(claims("bkt/leases", "a")) == 1  # the killed holder's; the refused left none
    with lock.held(storage.open_location("s3://bkt/leases/b")):
        (name,) = claims("bkt/leases", "b")
        time.sleep(1.5)
        beat = objects("bkt/leases", "b")[f"{name}.beat"].mtime
        time.sleep(2.2)  # the store's clock has one-second steps
        assert objects("bkt/leases", "b")[f"{name}.beat"].mtime > beat  # the heartbeat
    assert objects("bkt/leases", "b") == {}  # released: no object left


def test_a_dead_or_silent_claim_is_taken_over_said_and_removed(
    s3,  # noqa: F811
    quick_lease,
    capsys,
    monkeypatch,
):
    where = "s3://bkt/leases/c"
    other = holding(where, 60)
    os.kill(other.pid, signal.SIGKILL)  # on this host, its PID gone: dead at once
    other.wait()
    with lock.held(storage.open_location(where)):
        err = capsys.readouterr().err
        assert f"took over the lock of driver PID {other.pid}" in err and "no longer" in err
        assert len(claims("bkt/leases", "c")) == 1  # ours; the dead one's removed
    claim("bkt/leases", "d", ELSEWHERE)  # another host's, not renewed
    with pytest.raises(lock.StudyLocked, match="driver PID 1 on elsewhere"):
        with lock.held(storage.open_location("s3://bkt/leases/d")):
            pass
    monkeypatch.setattr(lease, "LEASE_SECONDS", 1.0)
    time.sleep(2.5)
    with lock.held(storage.open_location("s3://bkt/leases/d")):
        assert "last renewed" in capsys.readouterr().err
        assert f".d.lease-{ELSEWHERE['token']}" not in objects("bkt/leases", "d")


def test_of_drivers_taking_one_lock_at_once_exactly_one_holds(s3, quick_lease):  # noqa: F811
    for attempt in range(3):
        outcomes = take_at_once(f"s3://bkt/leases/race{attempt}", 3)
        assert sorted(outcomes) == ["held", "refused", "refused"], outcomes


def take_at_once(where: str, n: int) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(n)

    def take() -> None:
        barrier.wait()
        try:
            with lock.held(storage.open_location(where)):
                outcomes.append("held")
                time.sleep(2 * lease.SETTLE_SECONDS + 1)  # past the others' settle time
        except lock.StudyLocked:
            outcomes.append("refused")

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_a_taker_stalled_before_its_write_is_refused(s3, quick_lease, capsys):  # noqa: F811
    """Both resumes judge the killed driver's claim dead; one stalls between its listing and
    its write for longer than the settle time while the other takes the lock. The single lease
    object this replaced let the stalled one overwrite the other's and both ran (CI, stop 24)."""
    where = storage.open_location("s3://bkt/leases/stall")
    dead = {**ELSEWHERE, "host": socket.gethostname(), "boot": holder.boot_id(), "pid": 2**22 + 7}
    claim("bkt/leases", "stall", dead)
    stalled, other = lease.Lease(where), lease.Lease(where)
    real_put = stalled._put

    def put_after_the_other_took_it(path: str, data: bytes) -> None:
        if path == stalled.claim:
            other.acquire()  # the whole take of the other driver happens in the stall
        real_put(path, data)

    stalled._put = put_after_the_other_took_it
    try:
        with pytest.raises(lock.StudyLocked, match=f"driver PID {os.getpid()} on "):
            stalled.acquire()
        assert [c.token for c in other.claims()] == [other.me["token"]]  # it holds, alone
        assert capsys.readouterr().err.count("took over the lock of driver PID 4194311") == 1
    finally:
        other.release()


def test_stalling_takers_never_hold_at_once(s3, quick_lease, monkeypatch):  # noqa: F811
    """Three drivers take, hold and release one study 4 times each, every one stalling at
    random (0 to 2.5 settle times) before it writes its claim, incrementing a counter only the
    lock protects: no increment is lost and no two ever hold at once."""
    real_put = lease.Lease._put
    rng = random.Random(7)

    def stalling_put(self, path: str, data: bytes) -> None:
        if path == self.claim:
            time.sleep(rng.uniform(0, 2.5) * lease.SETTLE_SECONDS)
        real_put(self, path, data)

    monkeypatch.setattr(lease.Lease, "_put", stalling_put)
    where, state = "s3://bkt/leases/count", {"counter": 0, "holding": 0, "most": 0}

    def work() -> None:
        done = 0
        while done < 4:
            try:
                with lock.held(storage.open_location(where)):
                    state["holding"] += 1
                    state["most"] = max(state["most"], state["holding"])
                    value = state["counter"]
                    time.sleep(0.05)
                    state["counter"] = value + 1
                    state["holding"] -= 1
                    done += 1
            except lock.StudyLocked:
                time.sleep(rng.uniform(0, 0.5))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert (state["counter"], state["most"]) == (12, 1)
    assert objects("bkt/leases", "count") == {}

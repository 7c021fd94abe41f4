"""Process helpers for the multi-process tests: free loopback ports, servers started and stopped
by PID, and the Ray processes of a private temp dir found by that dir in their command line
(never `ray stop`, which would stop every Ray of the machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    """Wait until something listens on 127.0.0.1:`port`; fail if `proc` dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


@contextlib.contextmanager
def server(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run `cmd` (listening on `port`) for the duration of the block; killed by PID after."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)


def pids_with(marker: str) -> list[int]:
    """PIDs of this machine's processes whose command line contains `marker`, or that hold a
    file under it open (Ray's agents rename themselves, e.g. "ray::DashboardAgent", but keep
    their log files in the temp dir open)."""
    return [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and int(e) != os.getpid() and _marked(e, marker)
    ]


def _marked(pid: str, marker: str) -> bool:
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if marker.encode() in f.read():
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(marker.rstrip("/") + "/"):
                    return True
    return False


def kill_marked(marker: str, seconds: float = 30) -> None:
    """SIGKILL every process whose command line contains `marker` (a private Ray temp dir),
    until none is left (Ray starts agents late)."""
    deadline = time.monotonic() + seconds
    while (pids := pids_with(marker)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)

"""Who holds a study's lock, as the lock records it, and the lines a driver prints about it:
shared by the local lock (`study.tune.lock`) and the object-store lease (`study.tune.lease`)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

from study.errors import ConfigError


class StudyLocked(ConfigError):
    """The study is held by another driver (one line, exit 2)."""


def holder() -> dict[str, Any]:
    """Who we are, as the lock records it."""
    return {
        "host": socket.gethostname(),
        "boot": boot_id(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["study", *sys.argv[1:]])[:300],
        "token": secrets.token_hex(8),
    }


def describe(record: dict[str, Any]) -> str:
    """`driver PID 123 on host h since … (study run …)`."""
    return (
        f"driver PID {record.get('pid', '?')} on {record.get('host', '?')} since "
        f"{record.get('since', '?')} ({record.get('command', '?')})"
    )


def refusal(study_dir: object, record: dict[str, Any]) -> StudyLocked:
    return StudyLocked(
        f"study {study_dir} is in use by {describe(record)}: wait for it to end or stop it; "
        "one driver per study"
    )


def boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def dead_here(record: dict[str, Any]) -> bool:
    """Whether the recorded holder ran on this machine (same host and boot) and is gone."""
    if record.get("host") != socket.gethostname() or record.get("boot") != boot_id():
        return False
    try:
        os.kill(int(record.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def took_over(study_dir: object, record: dict[str, Any], why: str) -> None:
    print(f"{study_dir}: took over the lock of {describe(record)}: {why}", file=sys.stderr)


def parse(data: bytes) -> dict[str, Any]:
    try:
        record = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {"host": "?", "command": "unreadable lock record"}
    return record if isinstance(record, dict) else {}

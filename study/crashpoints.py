"""The kill tests' hook: with `STUDY_CRASH_AT=name` in the environment, `crash_point(name)`
SIGKILLs this process there (what `kill -9` at that moment does); `STUDY_CRASH_AT=name:N` on the
N-th time this process reaches it (`row:N`: right after the driver wrote its N-th row, a moment
every run with N rows still ahead reaches); unset, it does nothing. In core because both the
results layer (compaction's steps) and the Tune layer (a study's start, each row) have moments.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "STUDY_CRASH_AT"


def crash_point(name: str) -> None:
    """SIGKILL this process when `STUDY_CRASH_AT` names this point (`name`, or `name:N` for
    the N-th time it is reached here: the kill tests)."""
    point, _, count = os.environ.get(CRASH_ENV, "").partition(":")
    if point != name:
        return
    _REACHED[name] = _REACHED.get(name, 0) + 1
    if _REACHED[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_REACHED: dict[str, int] = {}  # times each crash point was reached in this process

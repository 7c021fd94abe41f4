"""Output folders checked before any work (one line, exit 2, instead of a traceback after an
epoch trained): `study trial --results DIR`, `analysis report --out DIR`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from study.errors import ConfigError


def writable_dir(path: Path, flag: str) -> Path:
    """Check that `path` is, or can be made as, a folder this process can write files in
    (nothing is made: a probe file is written in it or its nearest existing parent);
    ConfigError naming `flag` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file: give a folder (it is made if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path} can't be made: {existing} is a file")
    probe = existing / f".write-test-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{flag} {path} is not writable: {e.strerror or e}") from None
    return path

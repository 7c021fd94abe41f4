"""Compaction's last step on a local disk: the whole results directory swapped in one rename.

`pd.read_parquet(results)` (the README's recipe) reads every `*.parquet` file of the folder not
named `.…` or `_…`, and follows no manifest. Going from the per-trial files (and an older
compacted file) to one compacted file by renames or removals of single files cannot keep each
(trial_id, epoch) exactly once at every moment: each step that takes a file's name away either
hides its rows (a moment with rows missing) or comes after the same rows were put elsewhere (a
moment with them twice); a kill there leaves that state. So on a local Linux filesystem the new
folder is built beside the old one and the two are exchanged by one `renameat2(RENAME_EXCHANGE)`
(atomic: a reader resolving `results/` gets the old folder or the new one, never a mix):

1. `stage`: a hidden sibling `.<results>.compacting-<token>/` (invisible to readers of
   `results/`) gets the new `compacted.parquet` and `_shortlist.parquet` (study.results.compact
   writes and verifies them there), a hard link to every other file of `results/` that stays (bad
   files left in place, temporary files of a writer, a per-trial file changed since it was read),
   and a manifest of the files the new compacted file covers (name, size, mtime),
   `.compacting-<token>.json`;
2. `swap`: the exchange. The old folder is now the sibling, outside `results/`;
3. `clean`: in the old folder, each covered file unchanged since read, and each link of a file
   the new folder holds too, is removed; anything else (a file a writer created or changed
   meanwhile, a sub-folder) is moved back into `results/`; then the old folder and the manifest.

A kill before 2 leaves `results/` as it was and a sibling that `recover` deletes (only links and
new files in it); after 2, `results/` is already the compacted one and `recover` finishes 3 —
the sibling is post-swap when `results/compacted.parquet` carries its token. `recover` runs
before each compaction and on `--resume` (study.results.quarantine.repair); readers need none, since
neither reader ever sees the sibling. A reader that listed the old folder and opens a file after
the exchange finds it gone: `pd.read_parquet` raises FileNotFoundError (never a wrong table),
load_results reads again (study.results.read.settled). Elsewhere (S3 and other pyarrow
filesystems, a filesystem or OS without the exchange, a parent folder that cannot be written)
study.results.compact falls back to replacing the compacted file and then removing the per-trial
files (docs/study.md "Compaction").
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq

from study.results.schema import COMPACTED, SHORTLIST

PREFIX = ".compacting-"  # the manifest's name, and (after the results folder's) the sibling's
TOKEN = b"study.compaction"  # the compacted file's metadata key (study.results.files.TOKEN)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def stage(directory: str, token: str) -> Path | None:
    """The hidden sibling of `directory` to build the compacted folder in, made; None where the
    folder cannot be swapped (not Linux, the parent not writable): the caller falls back."""
    if not sys.platform.startswith("linux") or _renameat2() is None:
        return None
    results = Path(directory)
    where = results.parent / f".{results.name}{PREFIX}{token}"
    try:
        where.mkdir()
        os.chmod(where, results.stat().st_mode & 0o7777)
    except OSError:
        return None
    return where


def fill(where: Path, directory: str, covered: dict[str, tuple[int, int]], token: str) -> None:
    """Step 1's links and manifest: every file of `directory` the new compacted file does not
    replace (not in `covered` with the same size and mtime, nor the shortlist) linked into
    `where`, and the manifest of `covered` written there."""
    for entry in os.scandir(directory):
        if entry.name in (COMPACTED, SHORTLIST) or not entry.is_file(follow_symlinks=False):
            continue
        info = entry.stat(follow_symlinks=False)
        if covered.get(entry.name) != (info.st_size, info.st_mtime_ns):
            os.link(entry.path, where / entry.name, follow_symlinks=False)
    manifest = where / f"{PREFIX}{token}.json"
    manifest.write_text(json.dumps({n: list(s) for n, s in covered.items()}))


def swap(where: Path, directory: str) -> bool:
    """Step 2: exchange `directory` and `where`, atomically; False where this filesystem cannot
    (nothing changed then)."""
    call = _renameat2()
    assert call is not None
    done = call(_AT_FDCWD, os.fsencode(directory), _AT_FDCWD, os.fsencode(where), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), directory)


def clean(old: Path, directory: str, token: str, hook=None) -> int:
    """Step 3 (see the module docstring); the covered per-trial files removed. `hook()` after
    the first removal (the kill tests' crash point)."""
    manifest = Path(directory) / f"{PREFIX}{token}.json"
    covered = json.loads(manifest.read_text()) if manifest.is_file() else {}
    removed, first = 0, True
    for entry in sorted(os.scandir(old), key=lambda e: e.name):
        info = entry.stat(follow_symlinks=False)
        mine = Path(directory) / entry.name
        same = os.path.lexists(mine) and os.path.samestat(info, os.lstat(mine))
        unchanged = covered.get(entry.name) == [info.st_size, info.st_mtime_ns]
        if same or unchanged or (entry.name in (COMPACTED, SHORTLIST) and _covered(entry, covered)):
            os.unlink(entry.path)
            removed += unchanged and entry.name != COMPACTED
            if first and hook:
                hook()
            first = False
        elif not os.path.lexists(mine):
            os.replace(entry.path, mine)  # written or changed meanwhile: it stays a result
        else:
            _aside(Path(entry.path), Path(directory))
    old.rmdir()
    manifest.unlink(missing_ok=True)
    return removed


def _covered(entry: os.DirEntry, covered: dict) -> bool:
    """The old compacted file (covered when it was read as results) or its shortlist (a copy of
    some of its rows: never the only place of one)."""
    return entry.name == SHORTLIST or entry.name in covered


def _aside(path: Path, directory: Path) -> None:
    """A file of the old folder whose name the new one holds as another file: kept beside the
    results (never lost), in `<study>/quarantine/`."""
    folder = directory.parent / "quarantine"
    folder.mkdir(exist_ok=True)
    target = folder / f"{path.name}.{path.parent.name}"
    os.replace(path, target)
    print(f"warning: {path}: changed during compaction; moved to {target}", file=sys.stderr)


def recover(directory: str) -> None:
    """Finish or roll back a compaction of `directory` killed midway (module docstring): a
    sibling staged before the swap is deleted, one left after it is cleaned."""
    results = Path(directory)
    if not results.parent.is_dir():
        return
    mark = f".{results.name}{PREFIX}"
    for sibling in sorted(results.parent.glob(f"{mark}*")):
        token = sibling.name[len(mark) :]
        if sibling.is_dir() and _token(results / COMPACTED) == token.encode():
            clean(sibling, directory, token)  # swapped: results/ is the new folder
        elif sibling.is_dir():
            shutil.rmtree(sibling)  # staged only: links and the unused new files


def _token(path: Path) -> bytes | None:
    try:
        return (pq.read_metadata(path).metadata or {}).get(TOKEN)
    except (OSError, ValueError):
        return None


def _renameat2():
    """libc's renameat2, typed; None where libc has none."""
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call

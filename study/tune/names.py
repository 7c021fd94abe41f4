"""Which study a `study run` means: its name and the folder it lives in, so that study names and
folders never collide (issue 20: `make demo`, then the README's `study run`, twice, all work).

- `--name NAME`: the study `<storage>/NAME` (refused later when it exists, unless `--resume`).
- `--name auto`: a new study `<spec>-<date>-<time>` in the *folder of studies*
  `<storage>/<spec>/`, whose `latest` link (local storage) points at the newest; beside
  `<storage>/<spec>` instead when that is a study itself (it can't hold other studies).
- no `--name`: the study `<storage>/<spec>`; but when that is a folder of studies (what
  `make demo` and `--name auto` make), a new run adds an auto-named study to it and `--resume`
  continues its latest. A folder of studies is never taken for a study.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.fs as pafs

from study.errors import ConfigError
from study.tune.storage import Location

AUTO = "auto"  # `--name auto`
LATEST = "latest"  # the link in a folder of studies to its newest study
SPEC_FILE = "spec.yaml"  # what makes a directory a study (study.tune.start writes it first)


def is_study(where: Location) -> bool:
    """Whether `where` is a study directory (it has its spec.yaml)."""
    return (where / SPEC_FILE).exists()


def studies_in(folder: Location) -> list[str]:
    """The names of the studies directly inside `folder`, sorted (auto names sort by time)."""
    try:
        infos = folder.fs.get_file_info(pafs.FileSelector(folder.path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    dirs = [i.base_name for i in infos if i.type == pafs.FileType.Directory]
    return sorted(d for d in dirs if d != LATEST and is_study(folder / d))


def is_folder_of_studies(where: Location) -> bool:
    """Whether `where` holds studies without being one (e.g. `studies/demo` after `make demo`)."""
    return where.exists() and not is_study(where) and bool(studies_in(where))


def latest(folder: Location) -> str:
    """The newest study of a folder of studies: its `latest` link's target, else the last
    name in order; ConfigError when it holds none."""
    link = Path(folder.path) / LATEST
    if folder.local and link.is_symlink() and is_study(folder / os.readlink(link)):
        return Path(os.readlink(link)).name
    found = studies_in(folder)
    if not found:
        raise ConfigError(f"no study to resume in {folder}: run it without --resume")
    return found[-1]


def new_name(folder: Location, base: str) -> str:
    """`<base>-<date>-<time>`, with `-2`, `-3`, … when one of that second exists in `folder`."""
    name = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
    taken, k = name, 2
    while (folder / taken).exists():
        taken, k = f"{name}-{k}", k + 1
    return taken


def point_latest(study_dir: Path) -> None:
    """Point `latest` beside a new local study at it when it is an auto-named study in a
    folder of studies (`<spec>/<spec>-<date>-<time>`); replaced atomically."""
    folder, name = study_dir.parent, study_dir.name
    if not name.startswith(f"{folder.name}-"):
        return
    link = folder / LATEST
    tmp = link.with_name(f".{LATEST}-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name)
    os.replace(tmp, link)


def resolve(root: Location, spec_name: str, name: str | None, resume: bool) -> tuple[Location, str]:
    """(the folder the study lives in, its name) for `--name` (module docstring). A new
    auto-named study in a folder of studies is announced in one line."""
    here = root / spec_name
    if name not in (None, AUTO):
        return root, name
    if name is None and not is_folder_of_studies(here):
        return root, spec_name
    if name == AUTO and is_study(here):  # a study by the spec's name: auto ones go beside it
        return (
            (root, latest_beside(root, spec_name)) if resume else (root, new_name(root, spec_name))
        )
    if resume:
        return here, latest(here)
    made = new_name(here, spec_name)
    if name is None:
        print(f"{here} is a folder of studies: starting a new one in it, {made}")
    return here, made


def latest_beside(root: Location, spec_name: str) -> str:
    """The newest auto-named study `<spec>-<date>-<time>` directly in `root`."""
    found = [s for s in studies_in(root) if s.startswith(f"{spec_name}-")]
    if not found:
        raise ConfigError(f"no auto-named study of {spec_name} to resume in {root}")
    return found[-1]


def storage_arg(given: str | None, root: Location, folder: Location) -> str:
    """The `--storage` that names `folder` (a folder of studies inside `root`), keeping a
    URI's query (`?endpoint_override=…`) that the Location's URI leaves out."""
    if folder == root:
        return given or str(root)
    if given and "://" in given:
        base, sep, query = given.partition("?")
        return f"{base.rstrip('/')}/{Path(folder.path).name}{sep}{query}"
    return str(folder)

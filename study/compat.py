"""The module paths of v0.2 (one flat `study/`), kept for one release: a Tune snapshot pickles
the classes and functions of a study by module path (the trainable, the searcher and its spec,
the callbacks), so a study begun before issue 19's move still `--resume`s. An old path imports
as the module that replaced it, the same module object (`study.progress is study.tune.progress`).
Nothing is imported until an old path is asked for. tests/tune/test_old_snapshot.py resumes a
study a v0.2 driver left behind."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

MOVED = {  # old module (or package) -> new
    **{
        f"study.{m}": f"study.train.{m}"
        for m in (
            "calibration",
            "config",
            "data",
            "engine",
            "limits",
            "loader",
            "methods",
            "metrics",
            "models",
            "readers",
            "trial",
        )
    },
    **{
        f"study.{m}": f"study.results.{m}"
        for m in (
            "compact",
            "compact_swap",
            "completion",
            "quarantine",
            "summary",
        )
    },
    "study.results_files": "study.results.files",
    "study.results_read": "study.results.read",
    "study.results_rows": "study.results.rows",
    "study.spec_model": "study.spec.model",
    "study.spec_checks": "study.spec.checks",
    "study.optuna_store": "study.tune.search",
    **{
        f"study.{m}": f"study.tune.{m}"
        for m in (
            "cluster",
            "lock",
            "loggers",
            "names",
            "progress",
            "start",
            "storage",
        )
    },
    "study.debug": "study.cli.trial",
    "study.driver": "study.cli.run",
}


def new_name(old: str) -> str | None:
    """The module that replaced `old` (a submodule of a moved package follows it), or None."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix) :]
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object, target: object = None):
        if new_name(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(new_name(spec.name))  # its own name and spec are kept

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # the new module ran already


def install() -> None:
    """Make the old paths importable (idempotent)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())

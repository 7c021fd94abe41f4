"""Imports go downward only (issue 19; docs/architecture.md): every import statement of study/
and analysis/, in functions and under TYPE_CHECKING too, read from the source (static), obeys
the layers' rules, and the modules have no import circle. A deliberate back-arrow fails."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = {"errors", "registry", "yamlio", "grid", "pareto", "paths", "credentials", "diskfull"}
CORE |= {"digest", "crashpoints", "compat"}
# layer -> the layers its modules may import (itself included)
ALLOWED = {
    "core": {"core"},
    "schema": {"core"},
    "train": {"core", "schema", "train"},
    "results": {"core", "schema", "results"},
    "spec": {"core", "schema", "train", "spec"},
    "tune": {"core", "schema", "train", "results", "spec", "tune"},
    "cli": {"core", "schema", "train", "results", "spec", "tune", "cli"},
    "analysis": {"core", "schema", "results", "analysis"},
}
NO_HEAVY = {"results": {"torch", "ray", "optuna"}}  # third-party packages a layer never imports


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if module == "study.results.schema":
        return "schema"
    if len(parts) == 1 or parts[1] in CORE:
        return "core"
    return parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for pkg in ("study", "analysis"):
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module `module` imports: our own by their longest known name (`from pkg import
    sub` is an import of pkg.sub; of pkg itself when a name is not a submodule), others by
    their top-level package."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            names = [n for n in subs if n in known]  # submodules; else names of `base`
            names += [base] if len(names) < len(subs) else []
        else:
            continue
        for name in names:
            while name and name not in known and "." in name:
                name = name.rpartition(".")[0]
            if name in known or name.split(".")[0] not in ("study", "analysis"):
                out.add(name)
    out.discard(module)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(m, p, set(found)) for m, p in found.items()}


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Each import that breaks a rule, as `a -> b (why)`."""
    bad = []
    for source, targets in sorted(edges.items()):
        have = layer(source)
        for target in sorted(targets):
            top = target.split(".")[0]
            if top not in ("study", "analysis"):
                if top in NO_HEAVY.get(have, ()):
                    bad.append(f"{source} -> {target} ({have} never imports {top})")
                continue
            want = layer(target)
            if want not in ALLOWED[have]:
                bad.append(f"{source} -> {target} ({have} may not import {want})")
    return bad


def circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle among our modules, or None."""
    ours = {m: {t for t in ts if t in edges} for m, ts in edges.items()}
    try:
        tuple(graphlib.TopologicalSorter(ours).static_order())
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


def test_every_import_goes_down_a_layer():
    assert violations(graph()) == []


def test_no_import_circle():
    assert circle(graph()) is None


@pytest.mark.parametrize(
    "source, target",
    [
        ("study.train.trial", "study.tune.worker"),  # training reaching into Tune
        ("study.results.read", "study.train.config"),  # the store reaching into training
        ("study.results.files", "torch"),  # the store importing torch
        ("study.tune.tuner", "study.cli.main"),  # anything importing the CLI
        ("analysis.load", "study.spec.parse"),  # the analysis beyond results and core
        ("study.errors", "study.results.schema"),  # core importing up
    ],
)
def test_a_back_arrow_is_caught(source, target):
    edges = graph()
    edges[source] = edges[source] | {target}
    assert [v for v in violations(edges) if v.startswith(f"{source} -> {target} ")]


def test_a_circle_is_caught():
    edges = graph()
    edges["study.train.config"] = edges["study.train.config"] | {"study.train.resolve"}
    assert circle(edges) is not None


def loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports)
    code += "print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_results_and_analysis_load_without_torch_ray_or_optuna():
    ours = [m for m in modules() if layer(m) in ("results", "schema", "analysis")]
    ours = [m for m in ours if not m.endswith("__main__")]
    loaded = loaded_after(ours)
    assert not {m.split(".")[0] for m in loaded} & {"torch", "ray", "optuna"}


def test_study_never_loads_analysis():
    study = [m for m in modules() if m.startswith("study") and not m.endswith("__main__")]
    loaded = loaded_after(study)
    assert not {m for m in loaded if m == "analysis" or m.startswith("analysis.")}

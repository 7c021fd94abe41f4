"""Imports go downward only (issue 11): the registries (methods, models, data) never load
`study.config` (it validates through them), and nothing in `study/` loads `analysis/`."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import study
import study.methods
import study.models

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports)
    code += "print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_the_registries_never_load_the_config():
    methods = [f"study.methods.{m.name}" for m in pkgutil.iter_modules(study.methods.__path__)]
    models = [f"study.models.{m.name}" for m in pkgutil.iter_modules(study.models.__path__)]
    loaded = loaded_after(["study.methods", "study.models", "study.data", *methods, *models])
    assert "study.config" not in loaded


def test_study_never_loads_analysis():
    modules = [f"study.{m.name}" for m in pkgutil.iter_modules(study.__path__)]
    loaded = loaded_after(modules)
    assert not {m for m in loaded if m == "analysis" or m.startswith("analysis.")}

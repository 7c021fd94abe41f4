"""Imports go downward only (issue 11): the registries (methods, models, data) never load
`study.train.config` (it validates through them), and nothing in `study/` loads `analysis/`."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import study
import study.train.methods
import study.train.models

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports)
    code += "print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_the_registries_never_load_the_config():
    methods = [
        f"study.train.methods.{m.name}" for m in pkgutil.iter_modules(study.train.methods.__path__)
    ]
    models = [
        f"study.train.models.{m.name}" for m in pkgutil.iter_modules(study.train.models.__path__)
    ]
    loaded = loaded_after(
        ["study.train.methods", "study.train.models", "study.train.data", *methods, *models]
    )
    assert "study.train.config" not in loaded


def test_study_never_loads_analysis():
    modules = [f"study.{m.name}" for m in pkgutil.iter_modules(study.__path__)]
    loaded = loaded_after(modules)
    assert not {m for m in loaded if m == "analysis" or m.startswith("analysis.")}

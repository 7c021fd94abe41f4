"""Study specs: YAML → `StudySpec` → an Optuna define-by-run function or a grid (docs/study.md).

A spec holds the TrialConfig sections as fixed settings, then either `space:` (float/int
distributions, optionally log or stepped, and `choices`, each optionally `when` an earlier choice
has given values: MIT's margin only for mit_l and mit_a) or `grid:` (the cross product of axes,
e.g. the 11 method columns × 4 backbones of Tables 4/5 in Wang et al., CVPR 2023), plus
`search:` (sampler, trials, objectives, ASHA, Optuna storage), `resources:` per trial and
`tune:` (concurrency, retries, checkpoints). Loading refuses, with one line naming the valid
choices: unknown keys, wrong types, empty choices, impossible bounds, objectives no trial
reports, and any trial the space can produce (its corners) or the grid holds that does not
validate as a TrialConfig.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from study.errors import ConfigError
from study.spec.checks import check
from study.spec.model import (  # re-exported by study.spec
    DEFAULT_TRIALS,
    LOGGERS,
    MAX_CORNERS,
    OBJECTIVE_METRICS,
    SAMPLERS,
    SUGGEST,
    Asha,
    Axis,
    Objective,
    Param,
    Resources,
    Search,
    StudySpec,
    TuneSettings,
    value_label,
)
from study.train.config import SECTIONS, build_section
from study.yamlio import load_yaml, read_spec_text

__all__ = [
    "DEFAULT_TRIALS",
    "LOGGERS",
    "MAX_CORNERS",
    "OBJECTIVE_METRICS",
    "SAMPLERS",
    "Asha",
    "Axis",
    "Objective",
    "Param",
    "Resources",
    "Search",
    "StudySpec",
    "TuneSettings",
    "load_spec",
    "parse_spec",
    "value_label",
    "with_trials",
]
_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a directory name, ≤ 100 characters


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read (following `extends:`), expand `${ENV}` / `${ENV:-default}`, apply `--set`
    overrides, validate. The name defaults to the file's stem."""
    path = Path(path)
    return parse_spec({"name": path.stem, **_read(path, ())}, overrides)


def with_trials(spec: StudySpec, trials: int) -> StudySpec:
    """The spec with `search.trials = trials` and its `search.points` cut to the first
    `trials` (`study run --trials N`: a small study of a spec that queues more points)."""
    if spec.grid:
        raise ConfigError(
            f"--trials: a grid runs each of its {spec.num_trials} points once; drop --trials"
        )
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    search = dict(_mapping("search", spec.raw.get("search")))
    search["trials"] = trials
    if search.get("points"):
        search["points"] = list(search["points"])[:trials]
    return parse_spec({**spec.raw, "search": search})


def _read(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """A spec file's mapping; `extends: OTHER.yaml` (beside it) is read first and each of its
    top-level mappings updated key by key (a grid axis or a setting replaced as a whole; null
    drops a whole section, e.g. `grid: null`, or one grid axis, `grid: {train.seed: null}`)."""
    text = read_spec_text(path)  # a regular file of UTF-8 text (a symlink loop is refused)
    if path.resolve() in seen:
        raise ConfigError(f"{path}: `extends` loops back to itself")
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    raw = _mapping(str(path), raw)
    if "extends" not in raw:
        return raw
    base = _read(path.parent / str(raw.pop("extends")), (*seen, path.resolve()))
    both = [k for k, v in raw.items() if isinstance(v, dict) and isinstance(base.get(k), dict)]
    merged = {**base, **raw, **{k: {**base[k], **raw[k]} for k in both}}
    if isinstance(merged.get("grid"), dict):  # `grid: {train.seed: null}` drops that axis
        merged["grid"] = {k: v for k, v in merged["grid"].items() if v is not None}
    return merged


def parse_spec(raw: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Build and validate a StudySpec from plain data (a spec file's content). `raw` keeps
    `${VAR}` references as written (what a study saves), the settings get their values."""
    raw = _with_overrides(raw, overrides or {})
    given = raw
    raw = _expand_env(raw)
    parts = {"resources": Resources, "tune": TuneSettings}
    valid = ("name", "description", "storage", *SECTIONS, "search", *parts, "space", "grid")
    unknown = [k for k in raw if k not in valid]
    if unknown:
        raise ConfigError(f"unknown spec key {unknown[0]!r}; valid keys: {', '.join(valid)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"spec name must be letters, digits, '_', '.', '-' (at most 100); got {name!r}"
        )
    if not any(raw.get(k) for k in (*SECTIONS, "space", "grid")):
        raise ConfigError(
            "the spec names nothing to run: give at least one of "
            f"{', '.join((*SECTIONS, 'space', 'grid'))} (an empty one would train the defaults)"
        )
    fixed = {s: _mapping(s, raw.get(s)) for s in SECTIONS if raw.get(s) is not None}
    where = raw.get("storage")
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise ConfigError(f"spec storage must be a directory or a URI (s3://…), got {where!r}")
    spec = StudySpec(
        name=name,
        fixed=fixed,
        search=_search(_mapping("search", raw.get("search"))),
        space=_in_dependency_order(
            [_param(k, v) for k, v in _mapping("space", raw.get("space")).items()]
        ),
        grid=tuple(_axis(k, v) for k, v in _mapping("grid", raw.get("grid")).items()),
        description=str(raw.get("description") or ""),
        storage=where,
        raw=given,
        **{k: build_section(k, cls, _mapping(k, raw.get(k))) for k, cls in parts.items()},
    )
    check(spec)
    return spec


def _expand_env(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, str):
        return _ENV.sub(_env_value, value)
    return value


def _env_value(m: re.Match) -> str:
    name, default = m.group(1), m.group(2)
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")
    return default


def _with_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.epochs": 2, "search.trials": 4}` applied to a spec's SECTION.KEY settings."""
    out = dict(raw)
    sections = (*SECTIONS, "search", "resources", "tune")
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in sections or not key or "." in key:
            raise ConfigError(
                f"unknown setting {dotted!r}: use SECTION.KEY, SECTION one of {', '.join(sections)}"
            )
        out[section] = {**_mapping(section, out.get(section)), key: value}
    return out


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _search(raw: dict[str, Any]) -> Search:
    objectives = raw.pop("objectives", None) or [{}]
    asha = raw.pop("asha", None)
    points = raw.pop("points", None) or []
    if not isinstance(points, list):
        raise ConfigError("search.points must be a list of mappings of space parameters")
    return dataclasses.replace(
        build_section("search", Search, raw),
        objectives=tuple(
            build_section("search.objectives", Objective, _mapping("search.objectives", o))
            for o in (objectives if isinstance(objectives, list) else [objectives])
        ),
        asha=None if asha is None else build_section("search.asha", Asha, _mapping("asha", asha)),
        points=tuple(_mapping("search.points entry", p) for p in points),
    )


@dataclass(frozen=True)
class _RangeKeys:
    log: bool = False  # sample log-uniformly (low > 0)
    step: float | None = None  # a grid of low, low + step, …, high


def _param(name: str, raw: Any) -> Param:
    """`{float: [lo, hi], log: true, step: s, when: {param: [values]}}`, `{int: …}` or choices."""
    raw = _mapping(f"space {name}", {"choices": raw} if isinstance(raw, list) else raw)
    kinds = [k for k in SUGGEST if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"space {name} needs exactly one of: float, int, choices")
    kind, value = kinds[0], raw.pop(kinds[0])
    when = tuple(
        (k, tuple(v) if isinstance(v, list) else (v,))
        for k, v in _mapping(f"space {name}.when", raw.pop("when", None)).items()
    )
    if not isinstance(value, list) or (kind != "choices" and len(value) != 2):
        raise ConfigError(f"space {name}.{kind} must be a list ([low, high] for a range)")
    if kind == "choices" and raw:
        raise ConfigError(f"unknown key {next(iter(raw))!r} in space {name}: choices take `when`")
    if kind == "choices":
        return Param(name, kind, choices=tuple(value), when=when)
    keys = build_section(f"space {name}", _RangeKeys, raw)
    return Param(name, kind, value[0], value[1], keys.log, keys.step, when=when)


def _in_dependency_order(params: list[Param]) -> tuple[Param, ...]:
    """Parameters whose `when` names another come after it (stable otherwise); what can
    never be placed (unknown names, cycles) keeps its place and fails `_check_param`."""
    placed: list[Param] = []
    while params:
        names = {p.name for p in placed}
        ready = [p for p in params if all(n in names for n, _ in p.when)] or params
        placed.append(ready[0])
        params = [p for p in params if p is not ready[0]]
    return tuple(placed)


def _axis(name: str, values: Any) -> Axis:
    """`method: [{name: erm}, {name: mixup, alpha: 0.1}]`, `model.name: [resnet18, …]`, or
    an axis of any other name whose entries set dotted keys together (`replicate: [{train.seed:
    0, dataset.split_seed: 0}, …]`: seeds tied, not crossed)."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"grid {name} must be a non-empty list of values")
    if "." in name:
        settings = tuple({name: v} for v in values)
        labels = tuple(value_label(v) for v in values)
    elif name not in SECTIONS:  # `replicate: [{train.seed: 0, dataset.split_seed: 0}, …]`
        maps = [_mapping(f"grid {name} entry", v) for v in values]
        settings = tuple(dict(m) for m in maps)
        labels = tuple(",".join(f"{k}={value_label(v)}" for k, v in m.items()) for m in maps)
    else:
        maps = [_mapping(f"grid {name} entry", v) for v in values]
        settings = tuple({f"{name}.{k}": v for k, v in m.items()} for m in maps)
        labels = tuple(",".join(f"{k}={value_label(v)}" for k, v in m.items()) for m in maps)
    return Axis(name, labels, settings)

"""Spec validation on load (unknown names, wrong types, empty choices, impossible bounds,
objectives no trial reports): the checks `study.spec.parse_spec` runs on the StudySpec
(`study.spec.model`) it builds."""

from __future__ import annotations

import importlib.util
import math
import re
import typing
from typing import Any

from study import credentials
from study.errors import ConfigError
from study.spec.model import (
    LOGGERS,
    OBJECTIVE_METRICS,
    SAMPLERS,
    Axis,
    Param,
    StudySpec,
    value_label,
)
from study.train.config import SECTIONS, coerce
from study.train.limits import check_milestones, milestones_given


def field_hint(dotted: str) -> Any:
    """The type hint of a TrialConfig setting `SECTION.KEY`; ConfigError if there is none."""
    section, _, key = dotted.partition(".")
    if section not in SECTIONS:
        raise ConfigError(f"unknown section in {dotted!r}; valid: {', '.join(SECTIONS)}")
    hints = typing.get_type_hints(type(SECTIONS[section]()))
    if key not in hints:
        raise ConfigError(f"unknown setting {dotted!r}; valid keys: {', '.join(hints)}")
    return hints[key]


def check(spec: StudySpec) -> None:
    """Refuse what no run could honour; then validate every grid point or space corner."""
    s, r, t = spec.search, spec.resources, spec.tune
    _one_of("search.sampler", spec.sampler, SAMPLERS)
    metrics = [o.metric for o in s.objectives]
    for o in s.objectives:
        _one_of("search.objectives metric", o.metric, OBJECTIVE_METRICS)
        _one_of("search.objectives mode", o.mode, ("max", "min"))
    positive = {
        "search.trials": s.trials,
        "resources.cpu": r.cpu,
        "tune.checkpoint_every": t.checkpoint_every,
        "tune.keep_checkpoints": t.keep_checkpoints,
        "tune.max_concurrent_trials": t.max_concurrent_trials,
        "search.asha.grace_period": s.asha and s.asha.grace_period,
    }
    rules = [  # (holds, the one line that says why not)
        *((v is None or v > 0, f"{k} must be positive, got {v}") for k, v in positive.items()),
        (
            (spec.sampler == "grid") == bool(spec.grid) and not (spec.grid and spec.space),
            "a `grid:` goes with sampler grid and no `space:`; a `space:` with tpe, random, nsga2",
        ),
        (
            not (spec.grid and s.trials is not None),
            f"search.trials: a grid runs each of its {spec.num_trials} points once; drop "
            "trials (add a train.seed axis to repeat)",
        ),
        (len(set(metrics)) == len(metrics), f"search.objectives repeats a metric: {metrics}"),
        (
            not (s.asha and len(metrics) > 1),
            f"search.asha stops trials on one metric; with several objectives ({metrics}) it "
            "would cut the Pareto front: drop asha",
        ),
        (
            s.storage is None or re.match(r"^[a-z][a-z0-9+]*://", s.storage),
            f"search.storage must be a URL such as sqlite:///path.db; got {s.storage!r}",
        ),
        (
            credentials.spec_refusal(s.storage) is None,  # the loaded spec is pickled in tune/
            credentials.spec_refusal(s.storage) or "",
        ),
        (
            r.gpu >= 0 and (r.gpu <= 1 or r.gpu == int(r.gpu)),
            f"resources.gpu must be a fraction of one GPU or whole GPUs, got {r.gpu}",
        ),
        (t.max_failures >= 0, f"tune.max_failures must be ≥ 0, got {t.max_failures}"),
        (math.isfinite(r.cpu), f"resources.cpu must be finite, got {r.cpu}"),
        (s.seed >= 0, f"search.seed must be ≥ 0, got {s.seed}"),
        (
            not s.asha or s.asha.reduction_factor > 1,
            f"search.asha.reduction_factor must be > 1, got {s.asha and s.asha.reduction_factor}",
        ),
    ]
    for holds, why in rules:
        if not holds:
            raise ConfigError(why)
    _check_loggers(t.loggers)
    for i, p in enumerate(spec.space):
        _check_param(p, spec.space[:i])
    _check_points(spec)
    _check_axes(spec.grid)
    _check_trials(spec)


def _check_loggers(names: tuple[str, ...]) -> None:
    """Known logger names, each once, whose package is installed."""
    for name in names:
        _one_of("tune.loggers entry", name, LOGGERS)
        if importlib.util.find_spec(LOGGERS[name]) is None:
            raise ConfigError(
                f"tune.loggers {name} needs the package {LOGGERS[name]}: pip install "
                "'mixup-calibration-study[loggers]' (or drop it from tune.loggers)"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"tune.loggers repeats a name: {list(names)}")


def _one_of(where: str, value: Any, valid: Any) -> None:
    if value not in valid:
        raise ConfigError(f"{where} must be one of: {', '.join(valid)}; got {value!r}")


def _check_param(p: Param, earlier: tuple[Param, ...]) -> None:
    where, hint = f"space {p.name}", _settable(p.name)
    options = typing.get_args(hint) or (hint,)
    if p.kind == "choices":
        if not p.choices or len(set(map(value_label, p.choices))) != len(p.choices):
            raise ConfigError(f"{where}: choices must be a non-empty list without repeats")
        for c in p.choices:
            if not isinstance(c, str | int | float | bool):
                raise ConfigError(
                    f"{where}: choices must be scalars (lists go in a grid), got {c!r}"
                )
            coerce(where, hint, c)
    else:
        kind = {"int": int, "float": float}[p.kind]
        if kind not in options and float not in options:
            raise ConfigError(f"{where}: a {p.kind} range does not fit the setting's type {hint}")
        low, high = (coerce(f"{where} bound", kind, v) for v in (p.low, p.high))
        if not _bounds_ok(low, high, p.log, p.step):
            raise ConfigError(
                f"{where}: impossible bounds [{p.low}, {p.high}] (need low < high; log needs "
                "low > 0 and no step; high - low a multiple of a positive step)"
            )
    choices = {q.name: q.choices for q in earlier if q.kind == "choices"}
    for name, values in p.when:
        if name not in choices or not set(values) <= set(choices[name]):
            raise ConfigError(
                f"{where}: when {name} in {list(values)} can never hold; `when` names "
                f"another choices parameter ({', '.join(choices) or 'none'}) and some of its "
                "choices, without cycles"
            )


def _check_points(spec: StudySpec) -> None:
    """Each of `search.points` names space parameters with values the space can give."""
    params = {p.name: p for p in spec.space}
    if spec.grid and spec.search.points:
        raise ConfigError("search.points: none with a grid (it runs each of its points once)")
    if len(spec.search.points) > spec.num_trials:
        raise ConfigError(
            f"search.points: {len(spec.search.points)} points but search.trials is "
            f"{spec.num_trials}: give at least that many trials, or `study run --trials "
            f"{spec.num_trials}` (keeps the first {spec.num_trials} points), or --set "
            "'search.points=[]'"
        )
    for point in spec.search.points:
        for name, value in point.items():
            p = params.get(name)
            fits = p is not None and (
                value in p.choices
                if p.kind == "choices"
                else isinstance(value, int | float) and p.low <= value <= p.high
            )
            if not fits:
                raise ConfigError(f"search.points: {name}={value!r} is not in the space")


def _bounds_ok(low: float, high: float, log: bool, step: float | None) -> bool:
    if not low < high or (log and (low <= 0 or step is not None)):
        return False
    if step is None:
        return True
    n = (high - low) / step
    return step > 0 and abs(n - round(n)) < 1e-9


def _check_axes(grid: tuple[Axis, ...]) -> None:
    seen: dict[str, str] = {}
    for axis in grid:
        if len(set(axis.labels)) != len(axis.labels):
            raise ConfigError(f"grid {axis.name} repeats a value")
        for key in {k for s in axis.settings for k in s}:
            _settable(key)
            if key in seen:
                raise ConfigError(f"grid axes {seen[key]} and {axis.name} both set {key}")
            seen[key] = axis.name


VARYING_DATASET_KEYS = ("dataset.split_seed",)  # each trial splits the shared images itself


def _settable(dotted: str) -> Any:
    if dotted.startswith("dataset.") and dotted not in VARYING_DATASET_KEYS:
        raise ConfigError(
            f"{dotted} can't vary: the loaded data is shared by every trial (of dataset.*, "
            f"only {', '.join(VARYING_DATASET_KEYS)} can)"
        )
    if "." not in dotted:
        raise ConfigError(f"grid entry key {dotted!r} must be SECTION.KEY (e.g. train.seed)")
    return field_hint(dotted)


def _check_trials(spec: StudySpec) -> None:
    """Every grid point or space corner must be a valid TrialConfig that can run (with its
    milestones, where the spec gives them, before its last epoch: study.train.limits)."""
    given = milestones_given(spec.fixed, (s for a in spec.grid for s in a.settings))
    for params in spec.corner_params():
        try:
            cfg = spec.trial_config(params)
            if given:
                check_milestones(cfg)
            device = cfg.runtime.device
        except ConfigError as e:
            at = ", ".join(f"{k}={v}" for k, v in params.items()) or "the fixed settings"
            raise ConfigError(f"{e} (in the trial {at})") from None
        if device.startswith("cuda") and not spec.resources.gpu:
            raise ConfigError(
                f"runtime.device={device} needs resources.gpu > 0 (Ray hides GPUs from trials "
                "that ask for none)"
            )

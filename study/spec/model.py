"""The study spec's data model: `StudySpec` and its parts (search, resources, tune settings,
space parameters, grid axes), the samplers by name, the define-by-run `suggest`, and the
resolved study as `study validate` prints it. Built and validated by `study.spec.parse_spec`
(docs/study.md)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from study.train import resolve
from study.train.config import TrialConfig, merge_dotted

OBJECTIVE_METRICS = (  # numeric columns every trial reports; test metrics are never objectives
    *("val_acc", "val_cal_ece", "val_ece", "val_nll", "train_acc", "train_loss"),
    *("epoch_seconds", "samples_per_second"),
)
DEFAULT_TRIALS = 10
LOGGERS = {"csv": "ray", "tensorboard": "tensorboardX", "mlflow": "mlflow"}  # → its package
MAX_CORNERS = 4096  # at most this many corner trials of a space are validated on load


@dataclass(frozen=True)
class Objective:
    metric: str = "val_acc"  # a validation (or training, or cost) column; see OBJECTIVE_METRICS
    mode: str = "max"  # max | min


@dataclass(frozen=True)
class Asha:
    grace_period: int = 1  # epochs every trial runs before ASHA may stop it
    reduction_factor: float = 3.0  # ASHA keeps the best 1/reduction_factor at each rung


@dataclass(frozen=True)
class Search:
    sampler: str | None = None  # tpe | random | nsga2 | grid; None: grid with `grid:`, else tpe
    trials: int | None = None  # trials to run (a grid runs each of its points once); None: 10
    seed: int = 0  # sampler seed
    storage: str | None = None  # Optuna storage URL, e.g. sqlite:///{study_dir}/optuna.db
    objectives: tuple[Objective, ...] = (Objective(),)  # one, or several (a Pareto front)
    points: tuple[dict[str, Any], ...] = ()  # trials to run first (Optuna's enqueue_trial)
    asha: Asha | None = None  # optional ASHA early stopping (one objective only)


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0  # CPUs per trial (also the trial's torch threads)
    gpu: float = 0.0  # GPUs per trial; a fraction shares one GPU


@dataclass(frozen=True)
class TuneSettings:
    max_concurrent_trials: int | None = None  # None: as many as the resources allow
    max_failures: int = 1  # retries of a failed trial (from its last checkpoint)
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch always has one)
    keep_checkpoints: int = 2  # newest checkpoints kept per trial
    reuse_actors: bool = True  # reuse trial processes (saves ~1 s per trial)
    loggers: tuple[str, ...] = ()  # Tune's logger callbacks, of LOGGERS (study.tune.loggers)


@dataclass(frozen=True)
class Param:
    """One dimension of `space`: `float`/`int` in [low, high], or one of `choices`."""

    name: str  # SECTION.KEY of the TrialConfig
    kind: str  # float | int | choices
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (earlier choice param, allowed values)

    def corners(self) -> tuple[Any, ...]:
        return self.choices if self.kind == "choices" else (self.low, self.high)


class GridSampler(optuna.samplers.GridSampler):
    """GridSampler for ask-and-tell: its `after_trial` calls `study.stop()`, which raises
    outside `study.optimize`; Tune itself stops after the grid's size of trials."""

    def after_trial(self, *args: Any) -> None:
        pass


SAMPLERS: dict[str, Callable[[StudySpec], optuna.samplers.BaseSampler]] = {
    "tpe": lambda s: optuna.samplers.TPESampler(seed=s.search.seed),
    "random": lambda s: optuna.samplers.RandomSampler(seed=s.search.seed),
    "nsga2": lambda s: optuna.samplers.NSGAIISampler(seed=s.search.seed),
    "grid": lambda s: GridSampler({a.name: list(a.labels) for a in s.grid}, seed=s.search.seed),
}

SUGGEST: dict[str, Callable[[Any, Param], Any]] = {
    "float": lambda t, p: t.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step),
    "int": lambda t, p: t.suggest_int(p.name, p.low, p.high, log=p.log, step=int(p.step or 1)),
    "choices": lambda t, p: t.suggest_categorical(p.name, list(p.choices)),
}


@dataclass(frozen=True)
class Axis:
    """One axis of `grid`: labelled values, each a set of dotted settings."""

    name: str  # SECTION (values are mappings) or SECTION.KEY (values are settings)
    labels: tuple[str, ...]
    settings: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class StudySpec:
    name: str
    fixed: dict[str, dict[str, Any]]  # TrialConfig sections as given (nested plain data)
    search: Search
    resources: Resources
    tune: TuneSettings
    space: tuple[Param, ...] = ()
    grid: tuple[Axis, ...] = ()
    description: str = ""
    storage: str | None = None  # where studies live (a directory or URI); `--storage` overrides
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # as written: ${VAR} kept

    @property
    def sampler(self) -> str:
        return self.search.sampler or ("grid" if self.grid else "tpe")

    @property
    def num_trials(self) -> int:
        if self.grid:
            return math.prod(len(a.labels) for a in self.grid)
        return self.search.trials or DEFAULT_TRIALS

    def trial_dict(self) -> dict[str, dict[str, Any]]:
        """The fixed settings as nested TrialConfig sections (what `study trial SPEC` runs)."""
        return {k: dict(v) for k, v in self.fixed.items()}

    def suggest(self, trial: Any) -> None:
        """The define-by-run function: suggest each active parameter (or grid axis) in order."""
        for axis in self.grid:
            trial.suggest_categorical(axis.name, list(axis.labels))
        for p in self.space:
            if all(trial.params.get(name) in values for name, values in p.when):
                SUGGEST[p.kind](trial, p)

    def trial_config(self, params: Mapping[str, Any]) -> TrialConfig:
        """The TrialConfig of one trial from its Optuna parameters (grid labels decoded)."""
        axes = {a.name: a for a in self.grid}
        overrides: dict[str, Any] = {}
        for name, value in params.items():
            axis = axes.get(name)
            overrides.update(axis.settings[axis.labels.index(value)] if axis else {name: value})
        return resolve.trial_config(merge_dotted(self.trial_dict(), overrides))

    def corner_params(self) -> Iterator[dict[str, Any]]:
        """Every grid point, or the space's corners (each choice × each bound), as params."""
        dims = [(a.name, a.labels) for a in self.grid] + [(p.name, p.corners()) for p in self.space]
        for values in itertools.islice(itertools.product(*(v for _, v in dims)), MAX_CORNERS):
            trial = optuna.trial.FixedTrial(dict(zip((n for n, _ in dims), values, strict=True)))
            self.suggest(trial)
            yield trial.params

    def describe(self) -> str:
        """The resolved study, as `study validate` prints it."""
        return "\n".join(describe_lines(self))


def describe_lines(spec: StudySpec) -> Iterator[str]:
    s, r, t = spec.search, spec.resources, spec.tune
    goals = ", ".join(f"{o.metric} ({o.mode})" for o in s.objectives)
    asha = f", ASHA (grace {s.asha.grace_period})" if s.asha else ""
    yield f"study {spec.name}: Optuna {spec.sampler}, {spec.num_trials} trials{asha}; {goals}"
    yield from [f"  {spec.description.strip()}"] if spec.description else []
    yield "fixed settings:"
    for section, values in spec.fixed.items():
        yield f"  {section}: " + ", ".join(f"{k}={value_label(v)}" for k, v in values.items())
    yield from ["space:"] if spec.space else []
    for p in spec.space:
        dist = (
            {
                "choices": f"one of {', '.join(map(value_label, p.choices))}",
                "float": f"float in [{p.low}, {p.high}]",
                "int": f"int in [{p.low}, {p.high}]",
            }[p.kind]
            + (" log" if p.log else "")
            + (f" step {p.step}" if p.step else "")
        )
        cond = "".join(f"  when {n} in {', '.join(map(value_label, v))}" for n, v in p.when)
        yield f"  {p.name:<20} {dist}{cond}"
    for point in s.points:
        yield "  first: " + ", ".join(f"{k}={value_label(v)}" for k, v in point.items())
    yield from [f"grid ({spec.num_trials} points, the cross product of):"] if spec.grid else []
    for a in spec.grid:
        one_line = " | ".join(a.labels)
        many = "".join(f"\n    {label}" for label in a.labels)
        yield f"  {a.name:<20} " + (one_line if len(one_line) < 60 else f"{len(a.labels)}:{many}")
    at_once = t.max_concurrent_trials or "as many as fit"
    yield (
        f"per trial: {r.cpu:g} CPU, {r.gpu:g} GPU; at once: {at_once}; retries: "
        f"{t.max_failures}; checkpoint every {t.checkpoint_every} epochs, keep {t.keep_checkpoints}"
    )
    yield f"Optuna storage: {s.storage or 'sqlite:///{study_dir}/optuna.db (default)'}"
    yield from [f"loggers: {', '.join(t.loggers)}"] if t.loggers else []


def value_label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)

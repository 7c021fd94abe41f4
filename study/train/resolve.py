"""From plain data to a checked TrialConfig: sections built by study.train.config, names looked
up in the registries (datasets, models, methods), numbers checked against their ranges, the
method's settings normalised. Above both the dataclasses and the registries, so neither imports
the other (the registries type against study.train.config only)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from study.errors import ConfigError
from study.train import data, methods, models
from study.train.config import SECTIONS, TrialConfig, build_section, merge_dotted


def trial_config(d: dict[str, Any] | None) -> TrialConfig:
    """Build and validate a TrialConfig from nested plain data (None: every default)."""
    return from_dict(d or {})


def replace(cfg: TrialConfig, **overrides: Any) -> TrialConfig:
    """A copy with dotted overrides applied and checked, e.g.
    `replace(cfg, **{"method.alpha": 1.0})`."""
    return from_dict(merge_dotted(cfg.to_dict(), overrides))


def from_dict(d: dict[str, Any]) -> TrialConfig:
    """Build and validate a TrialConfig from nested plain data (YAML, JSON, Tune config)."""
    if not isinstance(d, dict):
        raise ConfigError(f"a trial config must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r}; valid: {', '.join(SECTIONS)}")
    parts = {name: build_section(name, SECTIONS[name], d.get(name) or {}) for name in SECTIONS}
    cfg = TrialConfig(**parts)
    validate(cfg)
    return dataclasses.replace(cfg, method=methods.get(cfg.method.name).normalise(cfg.method))


def validate(cfg: TrialConfig) -> None:
    """Names against the registries, ranges of numbers; raises ConfigError."""
    data.get(cfg.dataset.name)
    models.get(cfg.model.name)
    methods.get(cfg.method.name).check(cfg.method)
    models.check(cfg.model)
    t = cfg.train
    _positive("train.epochs", t.epochs)
    _positive("train.batch_size", t.batch_size)
    _positive("train.eval_batch_size", t.eval_batch_size)
    _positive("train.lr", t.lr)
    _positive("model.width", cfg.model.width)
    _positive("calibration.n_bins", cfg.calibration.n_bins)
    _check_numbers(cfg)
    for key in ("val_size", "train_size", "test_size"):
        value = getattr(cfg.dataset, key)
        if value is not None and value < 1:
            raise ConfigError(f"dataset.{key} must be a positive integer or null, got {value}")
    if cfg.calibration.objective not in ("ece", "nll"):
        raise ConfigError(
            f"calibration.objective must be one of: ece, nll; got {cfg.calibration.objective!r}"
        )
    if not re.fullmatch(r"auto|cpu|cuda|cuda:[0-9]+", cfg.runtime.device):
        raise ConfigError(
            f"runtime.device must be auto, cpu, cuda or cuda:N; got {cfg.runtime.device!r}"
        )


MAX_EPOCHS = 10_000  # the most epochs (and the latest milestone) a trial may ask for
MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds in [0, 2**32)
MAX_BINS = 1_000  # ECE bins (1e8 bins asked the temperature search for 199.6 GB)
MAX_BATCH = 2**20  # images in one batch (training or inference)
MAX_THREADS = 1_024  # torch threads of a trial here; the machine that runs it may allow fewer
# (`study trial` and a local `study run` cap them at its cores: study.train.limits)


def _check_numbers(cfg: TrialConfig) -> None:
    """Ranges that would otherwise run and fail late (or never end, or exhaust memory):
    non-finite or negative optimiser settings, runaway epochs, bins, batches and threads, seeds
    numpy refuses, a training subset too small to batch."""
    t, rt, train_size = cfg.train, cfg.runtime, cfg.dataset.train_size
    rules = [  # (holds, the one line that says why not)
        (
            cfg.calibration.n_bins <= MAX_BINS,
            f"calibration.n_bins must be at most {MAX_BINS:,}, got {cfg.calibration.n_bins:,}",
        ),
        *(
            (size <= MAX_BATCH, f"train.{key} must be at most {MAX_BATCH:,}, got {size:,}")
            for key, size in (("batch_size", t.batch_size), ("eval_batch_size", t.eval_batch_size))
        ),
        (
            train_size is None or train_size >= 2,
            f"dataset.train_size must be at least 2 (a batch of one image trains no batch norm "
            f"and mixes an image with itself), got {train_size}",
        ),
        (
            train_size is None or t.batch_size <= train_size,
            f"train.batch_size={t.batch_size:,} is larger than dataset.train_size={train_size}: "
            "give a batch_size of at most the training images",
        ),
        (t.epochs <= MAX_EPOCHS, f"train.epochs must be at most {MAX_EPOCHS:,}, got {t.epochs:,}"),
        (
            all(0 < m <= MAX_EPOCHS for m in t.milestones)
            and list(t.milestones) == sorted(set(t.milestones)),
            f"train.milestones must be increasing epochs in [1, {MAX_EPOCHS:,}], "
            f"got {list(t.milestones)}",
        ),
        (
            math.isfinite(t.momentum) and 0 <= t.momentum < 1,
            f"train.momentum must be in [0, 1), got {t.momentum}",
        ),
        (
            math.isfinite(t.weight_decay) and t.weight_decay >= 0,
            f"train.weight_decay must be finite and ≥ 0, got {t.weight_decay}",
        ),
        (
            math.isfinite(t.gamma) and 0 < t.gamma <= 1,
            f"train.gamma must be in (0, 1] (the lr's step factor), got {t.gamma}",
        ),
        (0 <= t.seed <= MAX_SEED, f"train.seed must be in [0, 2**32), got {t.seed}"),
        (
            0 <= cfg.dataset.split_seed <= MAX_SEED,
            f"dataset.split_seed must be in [0, 2**32), got {cfg.dataset.split_seed}",
        ),
        (
            rt.threads is None or 1 <= rt.threads <= MAX_THREADS,
            f"runtime.threads must be in [1, {MAX_THREADS:,}] or null (torch's default), "
            f"got {rt.threads}",
        ),
    ]
    for holds, why in rules:
        if not holds:
            raise ConfigError(why)


def _positive(where: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where} must be positive and finite, got {value}")

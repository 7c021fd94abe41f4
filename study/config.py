"""Trial configuration: frozen dataclasses with a comment per field (nanoGPT style).

Defaults are the paper's (PROTOCOL.md, "Training"): SGD 0.1 / momentum 0.9 / wd 1e-4, batch 128,
350 epochs with ×0.1 steps at 150 and 250, the CIFAR ResNet-18 on CIFAR-10. `from_dict` validates
names, types and ranges and raises `ConfigError` (one line, naming the valid choices).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from study.errors import ConfigError  # re-exported: `from study.config import ConfigError`


@dataclass(frozen=True)
class DataConfig:
    name: str = "cifar10"  # registered dataset (study.data.names())
    root: str | None = None  # data directory; None: ~/.cache/mixup-calibration-study/data/<name>
    download: bool = False  # let torchvision download the dataset when it is missing
    val_size: int | None = None  # held out of train (seeded); None: the dataset's default (5,000)
    train_size: int | None = None  # optional subset of the remaining train split (seeded)
    test_size: int | None = None  # optional subset of the test split (seeded); None: all of it
    split_seed: int = 0  # numpy RandomState seed of the train/val permutation (PROTOCOL.md)
    augment: bool = True  # the dataset's augmentation (crop+flip for CIFAR); SVHN has none anyway
    label: str | None = None  # what the data is, for results and reports (e.g. an imagefolder
    # copy of CIFAR-10 labelled "cifar10", so the paper's numbers sit beside it); None: `name`


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"  # registered model (study.models.names())
    width: int = 64  # base planes of the first stage (the paper's 64); smaller for CPU runs
    pretrained: bool = False  # torchvision ImageNet weights (tv_resnet* only)


@dataclass(frozen=True)
class MethodConfig:
    name: str = "erm"  # registered method (study.methods.names())
    alpha: float | None = None  # Beta(α, α) of the mixing coefficient; every method but erm
    margin: float | None = None  # MIT's Δλ margin, 0 ≤ margin < 1 (mit_l, mit_a); "Δλ > ½" is 0.5
    constraint: bool = True  # MIT's Algorithm line 6: False draws λ1, λ2 without the margin test
    eta: float | None = None  # RegMixup's weight η ≥ 0 of the mixup loss (regmixup); default 1
    epsilon: float | None = None  # label smoothing's ε, 0 ≤ ε < 1 (label_smoothing); default 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 350  # the reference code's default; at most MAX_EPOCHS (10,000)
    batch_size: int = 128  # training batch, reshuffled every epoch
    lr: float = 0.1  # SGD learning rate
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # SGD weight decay
    milestones: tuple[int, ...] = (150, 250)  # epochs after which lr is multiplied by gamma
    gamma: float = 0.1  # step decay factor
    seed: int = 0  # seed of init, batch order, augmentation and mixing
    eval_batch_size: int = 500  # inference batch (PROTOCOL.md)


@dataclass(frozen=True)
class CalibrationConfig:
    objective: str = "ece"  # temperature fit: "ece" (the paper's grid) or "nll" (LBFGS, Guo et al.)
    n_bins: int = 15  # equal-width ECE bins


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:N"
    bf16: bool = False  # bf16 autocast, CUDA or CPU, training and inference (opt-in: the
    # reference code runs fp32; under bf16 the logits are bf16-computed, then cast to fp32, and
    # MIT's decoupling amplifies the rounding by ~1/Δλ; docs/study.md "Precision")
    tf32: bool = False  # TF32 matmuls and cuDNN convolutions on CUDA (opt-in); no effect on CPU
    channels_last: bool = True  # channels_last memory format (faster on CUDA and on CPU)
    threads: int | None = None  # torch CPU threads; None: leave torch's default
    compile: bool = False  # torch.compile each model stage (study.models.compile_stages); the
    # mixing coefficients stay outside the compiled graphs, so a new λ never recompiles


@dataclass(frozen=True)
class TrialConfig:
    dataset: DataConfig = field(default_factory=DataConfig)  # what to train on
    model: ModelConfig = field(default_factory=ModelConfig)  # the backbone
    method: MethodConfig = field(default_factory=MethodConfig)  # the training method
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # metrics
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)  # where and how to run

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **overrides: Any) -> TrialConfig:
        """A copy with dotted overrides applied, e.g. `replace(**{"method.alpha": 1.0})`."""
        return from_dict(merge_dotted(self.to_dict(), overrides))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrialConfig:
        return from_dict(d or {})


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(TrialConfig)}


def merge_dotted(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested copy of `base` with `{"section.key": value}` overrides applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise ConfigError(
                f"unknown setting {dotted!r}: use SECTION.KEY with SECTION one of "
                f"{', '.join(SECTIONS)}"
            )
        out.setdefault(section, {})[key] = value
    return out


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
    from study import methods

    return dataclasses.replace(cfg, method=methods.get(cfg.method.name).normalise(cfg.method))


def build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    """Dataclass `cls` from a mapping, rejecting unknown keys and wrong types (also for specs)."""
    if not isinstance(values, dict):
        raise ConfigError(f"section {name!r} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in valid:
            raise ConfigError(f"unknown key {name}.{key}; valid keys: {', '.join(valid)}")
        kwargs[key] = coerce(f"{name}.{key}", hints[key], value)
    return cls(**kwargs)


def coerce(where: str, hint: Any, value: Any) -> Any:
    """Check `value` against a field's type hint; ints widen to floats, lists to tuples."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where} must not be null")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is tuple and isinstance(value, list | tuple):
            return tuple(coerce(where, typing.get_args(option)[0], v) for v in value)
    names = " or ".join(_type_name(o) for o in options)
    if bool in options and isinstance(value, str):  # YAML 1.1's yes/no/on/off are strings
        names = names.replace("bool", "true or false")
    raise ConfigError(f"{where} must be {names}, got {value!r}")


def _type_name(t: Any) -> str:
    return "null" if t is type(None) else getattr(t, "__name__", str(t))


def validate(cfg: TrialConfig) -> None:
    """Names against the registries, ranges of numbers; raises ConfigError."""
    from study import data, methods, models  # registries import torch: keep config light

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
# (`study trial` and a local `study run` cap them at its cores: study.limits)


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

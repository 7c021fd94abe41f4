"""Trial configuration: frozen dataclasses with a comment per field (nanoGPT style).

Defaults are the paper's (docs/protocol.md, "Training"): SGD 0.1 / momentum 0.9 / wd 1e-4,
batch 128, 350 epochs with ×0.1 steps at 150 and 250, the CIFAR ResNet-18 on CIFAR-10. Only the
dataclasses and their building from plain data (types checked); study.train.resolve checks names
against the registries and ranges, and raises `ConfigError` (one line, naming the valid choices).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from study.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    name: str = "cifar10"  # registered dataset (study.train.data.names())
    root: str | None = None  # data directory; None: ~/.cache/mixup-calibration-study/data/<name>
    download: bool = False  # let torchvision download the dataset when it is missing
    val_size: int | None = None  # held out of train (seeded); None: the dataset's default (5,000)
    train_size: int | None = None  # optional subset of the remaining train split (seeded)
    test_size: int | None = None  # optional subset of the test split (seeded); None: all of it
    split_seed: int = 0  # numpy RandomState seed of the train/val permutation (docs/protocol.md)
    augment: bool = True  # the dataset's augmentation (crop+flip for CIFAR); SVHN has none anyway
    label: str | None = None  # what the data is, for results and reports (e.g. an imagefolder
    # copy of CIFAR-10 labelled "cifar10", so the paper's numbers sit beside it); None: `name`


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"  # registered model (study.train.models.names())
    width: int = 64  # base planes of the first stage (the paper's 64); smaller for CPU runs
    pretrained: bool = False  # torchvision ImageNet weights (tv_resnet* only)


@dataclass(frozen=True)
class MethodConfig:
    name: str = "erm"  # registered method (study.train.methods.names())
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
    eval_batch_size: int = 500  # inference batch (docs/protocol.md)


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
    compile: bool = False  # torch.compile each model stage (study.train.models.compile_stages); the
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

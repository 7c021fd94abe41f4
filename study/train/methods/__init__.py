"""Method registry. A method is an object with one call, `step(model, x, y) -> (loss, logits)`
(timm's training tasks); the training loop never branches on a method's name.

Each entry says which parameters the method takes (docs/protocol.md, "The methods"): every
method but erm and label_smoothing takes `alpha`; mit_l and mit_a also take `margin` and
`constraint`; regmixup takes `eta`, label_smoothing `epsilon` (`EXTRA_PARAMS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from study.errors import ConfigError
from study.registry import Registry

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig
    from study.train.loader import TrainingImages

DEFAULT_ALPHA = 1.0  # mixup(1.0) of Tables 4/5 when a spec gives no α
DEFAULT_MARGIN = 0.5  # "Δλ > ½", MIT's setting in Tables 4/5
# Parameters beyond α and the margin: name -> (valid range as a test, the range in words).
EXTRA_PARAMS: dict[str, tuple[Callable[[float], bool], str]] = {
    "eta": (lambda v: v >= 0, ">= 0"),
    "epsilon": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


class Method(Protocol):
    def step(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step's loss and the logits whose argmax is scored against y."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Stateless:
    """For methods without randomness: nothing to checkpoint."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Seeded:
    """For methods whose randomness is one `self.rng` (a MixRNG): its state is the checkpoint."""

    def state_dict(self) -> dict:
        return self.rng.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state)


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond its parameters (Mixup-DT needs the training means, Mixup-SC
    the training images)."""

    num_classes: int
    seed: int
    mean_input: Callable[[], torch.Tensor]  # normalised mean training image (C, H, W), lazy
    mean_target: torch.Tensor  # mean one-hot training label (K,): the class frequencies
    train_images: TrainingImages | None = None  # the training split on the device, fetched by
    # index with the batches' augmentation (Mixup-SC's same-class partners); None: not given


@dataclass(frozen=True)
class MethodEntry:
    build: Callable[[MethodConfig, MethodContext], Method]
    takes_alpha: bool = True
    takes_margin: bool = False
    default_alpha: float = DEFAULT_ALPHA  # α when a config gives none (RegMixup's is 10)
    extra: Mapping[str, float] = field(default_factory=dict)  # EXTRA_PARAMS it takes: defaults

    def normalise(self, cfg: MethodConfig) -> MethodConfig:
        """Defaults filled in, parameters the method does not take set to None."""
        alpha = (
            (cfg.alpha if cfg.alpha is not None else self.default_alpha)
            if self.takes_alpha
            else None
        )
        extra = {
            name: (getattr(cfg, name) if getattr(cfg, name) is not None else self.extra[name])
            if name in self.extra
            else None
            for name in EXTRA_PARAMS
        }
        uses_margin = self.takes_margin and cfg.constraint
        margin = (cfg.margin if cfg.margin is not None else DEFAULT_MARGIN) if uses_margin else None
        return dataclasses.replace(
            cfg,
            alpha=alpha,
            margin=margin,
            constraint=cfg.constraint if self.takes_margin else False,
            **extra,
        )

    def check(self, cfg: MethodConfig) -> None:
        """Reject α ≤ 0, margins outside [0, 1), margins nearly impossible for this α, and
        extra parameters outside their ranges (EXTRA_PARAMS)."""
        cfg = self.normalise(cfg)
        if cfg.alpha is not None and not 0 < cfg.alpha < math.inf:
            raise ConfigError(f"method.alpha must be > 0 and finite, got {cfg.alpha}")
        for name, (valid, words) in EXTRA_PARAMS.items():
            value = getattr(cfg, name)
            if value is not None and not valid(value):
                raise ConfigError(f"method.{name} must be {words}, got {value}")
        if cfg.margin is None:
            return
        if not 0 <= cfg.margin < 1:
            raise ConfigError(f"method.margin must be in [0, 1), got {cfg.margin}")
        from study.train.methods.mixing import MIN_ACCEPTANCE, margin_acceptance

        p = margin_acceptance(cfg.alpha, cfg.margin)
        if p < MIN_ACCEPTANCE:
            raise ConfigError(
                f"method.margin={cfg.margin} is nearly impossible with alpha={cfg.alpha} "
                f"(P(λ1−λ2 ≥ margin) = {p:.1e} < {MIN_ACCEPTANCE}); lower the margin or alpha"
            )


REGISTRY: Registry[MethodEntry] = Registry(
    "method",
    [
        "study.train.methods.erm",
        "study.train.methods.mixup",
        "study.train.methods.mit",
        "study.train.methods.cutmix",
        "study.train.methods.manifold_mixup",
        "study.train.methods.regmixup",
        "study.train.methods.label_smoothing",
    ],
)
METHODS, register, names, get = REGISTRY.entries, REGISTRY.register, REGISTRY.names, REGISTRY.get


def build(cfg: MethodConfig, ctx: MethodContext) -> Method:
    entry = get(cfg.name)
    return entry.build(entry.normalise(cfg), ctx)

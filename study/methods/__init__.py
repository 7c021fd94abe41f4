"""Method registry. A method is an object with one call, `step(model, x, y) -> (loss, logits)`
(timm's training tasks); the training loop never branches on a method's name.

Each entry says which parameters the method takes (PROTOCOL.md; DESIGN.md "Methods"): every
method but erm takes `alpha`; mit_l and mit_a also take `margin` and `constraint`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from study.config import ConfigError, MethodConfig
from study.registry import Registry

DEFAULT_ALPHA = 1.0  # mixup(1.0) of Tables 4/5 when a spec gives no α
DEFAULT_MARGIN = 0.5  # "Δλ > ½", MIT's setting in Tables 4/5


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


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond its parameters (Mixup-DT needs the training means)."""

    num_classes: int
    seed: int
    mean_input: Callable[[], torch.Tensor]  # normalised mean training image (C, H, W), lazy
    mean_target: torch.Tensor  # mean one-hot training label (K,): the class frequencies


@dataclass(frozen=True)
class MethodEntry:
    build: Callable[[MethodConfig, MethodContext], Method]
    takes_alpha: bool = True
    takes_margin: bool = False

    def normalise(self, cfg: MethodConfig) -> MethodConfig:
        """Defaults filled in, parameters the method does not take set to None."""
        alpha = (
            (cfg.alpha if cfg.alpha is not None else DEFAULT_ALPHA) if self.takes_alpha else None
        )
        uses_margin = self.takes_margin and cfg.constraint
        margin = (cfg.margin if cfg.margin is not None else DEFAULT_MARGIN) if uses_margin else None
        return dataclasses.replace(
            cfg,
            alpha=alpha,
            margin=margin,
            constraint=cfg.constraint if self.takes_margin else False,
        )

    def check(self, cfg: MethodConfig) -> None:
        """Reject α ≤ 0, margins outside [0, 1), and margins nearly impossible for this α."""
        cfg = self.normalise(cfg)
        if cfg.alpha is not None and not 0 < cfg.alpha < math.inf:
            raise ConfigError(f"method.alpha must be > 0 and finite, got {cfg.alpha}")
        if cfg.margin is None:
            return
        if not 0 <= cfg.margin < 1:
            raise ConfigError(f"method.margin must be in [0, 1), got {cfg.margin}")
        from study.methods.mixing import MIN_ACCEPTANCE, margin_acceptance

        p = margin_acceptance(cfg.alpha, cfg.margin)
        if p < MIN_ACCEPTANCE:
            raise ConfigError(
                f"method.margin={cfg.margin} is nearly impossible with alpha={cfg.alpha} "
                f"(P(λ1−λ2 ≥ margin) = {p:.1e} < {MIN_ACCEPTANCE}); lower the margin or alpha"
            )


REGISTRY: Registry[MethodEntry] = Registry(
    "method", ["study.methods.erm", "study.methods.mixup", "study.methods.mit"]
)
METHODS, register, names, get = REGISTRY.entries, REGISTRY.register, REGISTRY.names, REGISTRY.get


def build(cfg: MethodConfig, ctx: MethodContext) -> Method:
    entry = get(cfg.name)
    return entry.build(entry.normalise(cfg), ctx)

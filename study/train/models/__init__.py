"""Model registry. Every model is a `Staged` network: `stages` (stem … head) compose to forward.

MIT-A (docs/protocol.md, "The methods") mixes and decouples around each stage, so any registered
model works with every method, torchvision's pretrained ResNets included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from study.errors import ConfigError
from study.registry import Registry

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import ModelConfig


class Staged(nn.Module):
    """A network given as a sequence of stages; forward is their composition."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[[ModelConfig, int, int], Staged]  # (cfg, num_classes, in_channels)
    pretrained: bool  # whether ImageNet weights exist for it


REGISTRY: Registry[ModelEntry] = Registry(
    "model",
    [
        "study.train.models.cifar_resnet",
        "study.train.models.small_cnn",
        "study.train.models.torchvision_resnet",
    ],
)
MODELS, names, get = REGISTRY.entries, REGISTRY.names, REGISTRY.get


def register(name: str, pretrained: bool = False):
    """Decorator: register a builder (cfg, num_classes, in_channels) -> Staged."""

    def wrap(fn: Callable[[ModelConfig, int, int], Staged]):
        REGISTRY.register(name, ModelEntry(fn, pretrained))
        return fn

    return wrap


def check(cfg: ModelConfig) -> None:
    if cfg.pretrained and not get(cfg.name).pretrained:
        with_weights = sorted(n for n, e in MODELS.items() if e.pretrained)
        raise ConfigError(
            f"model.pretrained=true: {cfg.name} has no pretrained weights; "
            f"valid: {', '.join(with_weights)}"
        )


def build(cfg: ModelConfig, num_classes: int, in_channels: int) -> Staged:
    check(cfg)
    return get(cfg.name).build(cfg, num_classes, in_channels)


def compile_stages(model: Staged, **options: Any) -> None:
    """`torch.compile` every stage in place (`nn.Module.compile`: same module, same state_dict
    keys, so checkpoints are unchanged). Per stage, not the whole model, because MIT-A calls the
    stages one by one (mixing between them) and ERM/mixup call the model: both run compiled code.
    λ is applied by the methods outside the stages, so a new λ never triggers a recompile
    (benchmarks/bench_compile.py counts them). `options` go to torch.compile.
    The stages share their call's code object, whose compiled graphs Dynamo caps (8 by default:
    past it, it silently runs eager): caches are reset for the new model (a reused trial process
    compiles again) and the cap raised to room for each stage in train and eval, fp32 and bf16."""
    torch.compiler.reset()
    limits = torch._dynamo.config
    name = "recompile_limit" if hasattr(limits, "recompile_limit") else "cache_size_limit"
    setattr(limits, name, max(getattr(limits, name), 4 * len(model.stages) + 8))
    for stage in model.stages:
        stage.compile(**options)

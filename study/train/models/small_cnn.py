"""A small CNN for the offline 8×8 digits (the demo): three conv stages and a linear head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from study.train.models import Staged, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import ModelConfig


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


@register("small_cnn")
def small_cnn(cfg: ModelConfig, classes: int, in_ch: int) -> Staged:
    w = cfg.width
    return Staged(
        [
            _conv(in_ch, w),
            nn.Sequential(_conv(w, 2 * w), nn.MaxPool2d(2)),
            nn.Sequential(_conv(2 * w, 4 * w), nn.MaxPool2d(2)),
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, classes)),
        ]
    )

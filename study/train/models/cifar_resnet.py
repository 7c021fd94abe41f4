"""The reference code's CIFAR ResNets (docs/protocol.md, "Training"), not He et al.'s 3-stage nets.

A 3×3 stride-1 stem of `width` channels (conv, BN, ReLU, no max-pool), four stages of
width·(1, 2, 4, 8) planes with strides 1, 2, 2, 2, adaptive average pooling (so 64×64 inputs
work) and a linear head. ResNet-18 with 10 classes and width 64 has 11,173,962 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.models import Staged, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import ModelConfig


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def cifar_resnet(block: type, layers: list[int], cfg: ModelConfig, classes: int, in_ch: int):
    w = cfg.width
    stem = nn.Sequential(
        nn.Conv2d(in_ch, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()
    )
    stages: list[nn.Module] = [stem]
    in_planes = w
    for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
        planes = w * 2**i
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(in_planes, planes, s))
            in_planes = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_planes, classes))
    return Staged([*stages, head])


ARCHITECTURES = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet110": (Bottleneck, [3, 4, 26, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}

for _name, (_block, _layers) in ARCHITECTURES.items():
    register(_name)(
        lambda cfg, classes, in_ch, b=_block, n=_layers: cifar_resnet(b, n, cfg, classes, in_ch)
    )

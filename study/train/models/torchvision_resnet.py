"""torchvision's ResNets as staged models, optionally ImageNet-pretrained (the † rows of Tables
4 and 5: ResNet-18/152 fine-tuned on Tiny-ImageNet). Stages: stem (conv, BN, ReLU, max-pool),
layer1 … layer4, head (pool, flatten, a new linear layer for the dataset's classes).

Weights come through torchvision's cache (`torch.hub.get_dir()/checkpoints`); offline without
them is a clear user error naming the file to place there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from study.errors import ConfigError
from study.train.models import Staged, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import ModelConfig

WEIGHTS = {
    "tv_resnet18": "ResNet18_Weights",
    "tv_resnet50": "ResNet50_Weights",
    "tv_resnet152": "ResNet152_Weights",
}


def _weights(name: str):
    import torchvision.models as tvm

    weights = getattr(tvm, WEIGHTS[name]).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False)
    except Exception as e:  # URLError, OSError: offline and not cached
        raise ConfigError(
            f"pretrained weights for {name} are not cached at {cached} and could not be "
            f"downloaded ({type(e).__name__}); place {Path(weights.url).name} there"
        ) from None


def tv_resnet(name: str, cfg: ModelConfig, classes: int, in_ch: int) -> Staged:
    import torchvision.models as tvm

    net = getattr(tvm, name.removeprefix("tv_"))()
    if cfg.pretrained:
        net.load_state_dict(_weights(name))
    if in_ch != 3:
        net.conv1 = nn.Conv2d(in_ch, 64, 7, stride=2, padding=3, bias=False)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(net.fc.in_features, classes)
    )
    return Staged([stem, net.layer1, net.layer2, net.layer3, net.layer4, head])


for _name in WEIGHTS:
    register(_name, pretrained=True)(
        lambda cfg, classes, in_ch, n=_name: tv_resnet(n, cfg, classes, in_ch)
    )

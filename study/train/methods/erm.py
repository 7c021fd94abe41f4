"""ERM: cross-entropy on one-hot labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Stateless, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig


class ERM(Stateless):
    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return F.cross_entropy(logits, y), logits


def _build(cfg: MethodConfig, ctx: MethodContext) -> ERM:
    return ERM()


register("erm", MethodEntry(_build, takes_alpha=False))

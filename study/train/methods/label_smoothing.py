"""Label smoothing (Szegedy et al., CVPR 2016, "Rethinking the Inception Architecture", Sec. 7;
its calibration effect: Müller et al., NeurIPS 2019, "When Does Label Smoothing Help?"):

    q = (1 − ε)·onehot(y) + ε/K,    L = −Σ_k q_k log softmax(f(x))_k,

cross-entropy against a target that moves ε of the mass uniformly over the K classes. The
non-mixing calibration baseline: soft targets without mixing inputs. No randomness (ε = 0.1 by
default, Müller et al.'s and the common CIFAR setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Stateless, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig

DEFAULT_EPSILON = 0.1


@dataclass
class LabelSmoothing(Stateless):
    epsilon: float

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=self.epsilon), logits


def _build(cfg: MethodConfig, ctx: MethodContext) -> LabelSmoothing:
    return LabelSmoothing(cfg.epsilon)


register(
    "label_smoothing",
    MethodEntry(_build, takes_alpha=False, extra={"epsilon": DEFAULT_EPSILON}),
)

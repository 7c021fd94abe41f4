"""RegMixup (Pinto et al., NeurIPS 2022, "Using Mixup as a Regularizer Can Surprisingly Improve
Accuracy and Out Distribution Robustness"), their Eq. 3:

    L = CE(f(x_i), y_i) + η · [ λ·CE(f(x̃), y_i) + (1 − λ)·CE(f(x̃), y_j) ],
    x̃ = λ x_i + (1 − λ) x_j,  λ ~ Beta(α, α),

mixup used as a regulariser of the clean cross-entropy rather than in its place. Its α is large
(α = 10 by default, the paper's choice on CIFAR among {10, 20}: λ near ½, strongly mixed
samples) and η = 1. As in the reference code, the clean and the mixed batch run as one batch of
2n (BatchNorm sees both), λ is drawn once per batch (folded up like mixup's, so the mixup term is
exactly `mixup`'s loss) and the clean logits are what the training accuracy scores. The loss is
Eq. 3 as written; the reference code averages its criterion over the 2n rows, which is ½ of
Eq. 3 at η = 1 (the same training at half the learning rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Seeded, register
from study.train.methods.mixing import MixRNG, fold_up, mix

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig

DEFAULT_ALPHA = 10.0  # Pinto et al.'s α for CIFAR (cross-validated in {10, 20})
DEFAULT_ETA = 1.0  # Pinto et al.'s η


@dataclass
class RegMixup(Seeded):
    alpha: float
    eta: float
    rng: MixRNG

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        lam = fold_up(float(self.rng.beta(self.alpha)))
        j = self.rng.permutation(len(y), y.device)
        clean, mixed = model(torch.cat([x, mix(x, x[j], lam)])).split(len(y))
        mixup = lam * F.cross_entropy(mixed, y) + (1 - lam) * F.cross_entropy(mixed, y[j])
        return F.cross_entropy(clean, y) + self.eta * mixup, clean


def _build(cfg: MethodConfig, ctx: MethodContext) -> RegMixup:
    return RegMixup(cfg.alpha, cfg.eta, MixRNG(ctx.seed))


register(
    "regmixup",
    MethodEntry(_build, default_alpha=DEFAULT_ALPHA, extra={"eta": DEFAULT_ETA}),
)

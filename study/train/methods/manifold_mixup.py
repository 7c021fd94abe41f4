"""Manifold Mixup (Verma et al., ICML 2019, "Manifold Mixup: Better Representations by
Interpolating Hidden States"), their Eq. 1:

    L = E_{k ~ S} E_λ ℓ( f_k( Mix_λ(g_k(x_i), g_k(x_j)) ), Mix_λ(y_i, y_j) ),

where g_k maps the input to the hidden representation at layer k (g_0 is the identity: the
input counts as layer 0, so k = 0 is input mixup) and f_k the rest of the network. Here the
layers are the inputs of the model's stages (`model.stages`, every registered model has them):
k is drawn uniformly from {0, …, S − 2} for S stages, never the head's input (the head is
pooling and one linear layer, so mixing there mixes the logits, not a hidden representation);
a one-stage model has k = 0. The clean batch runs up to stage k in one pass, is mixed with its
permutation, and the mixed batch runs on. λ ~ Beta(α, α) is drawn once per batch and folded up
like mixup's (a random partner makes (λ, i, j) and (1 − λ, j, i) the same mixed pair), and λ,
the partners and then k are drawn in that order, so k = 0 gives exactly `mixup`'s step. Verma
et al. use α = 2.0 on CIFAR, the default here.
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

DEFAULT_ALPHA = 2.0  # Verma et al.'s CIFAR setting


@dataclass
class ManifoldMixup(Seeded):
    alpha: float
    rng: MixRNG

    def layer(self, n_stages: int) -> int:
        """The stage k whose input is mixed, uniform over all stages but the head."""
        return int(self.rng.np.integers(max(1, n_stages - 1)))

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        lam = fold_up(float(self.rng.beta(self.alpha)))
        j = self.rng.permutation(len(y), y.device)
        stages = list(model.stages)
        k = self.layer(len(stages))
        h = x
        for i, stage in enumerate(stages):
            if i == k:
                h = mix(h, h[j], lam)
            h = stage(h)
        loss = lam * F.cross_entropy(h, y) + (1 - lam) * F.cross_entropy(h, y[j])
        return loss, h


def _build(cfg: MethodConfig, ctx: MethodContext) -> ManifoldMixup:
    return ManifoldMixup(cfg.alpha, MixRNG(ctx.seed))


register("manifold_mixup", MethodEntry(_build, default_alpha=DEFAULT_ALPHA))

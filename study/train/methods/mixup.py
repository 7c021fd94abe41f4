"""Mixup and the ablations of the paper's Table 2 (docs/protocol.md, "The methods").

One λ ~ Beta(α, α) per batch, folded up (λ ≥ ½); the partner of sample i is perm[i], the batch
permuted (Mixup-SC's partners: below).
- mixup: mixed inputs, mixed targets λ·y_i + (1−λ)·y_j.
- mixup_to (targets only): clean inputs, mixed targets.
- mixup_io (inputs only): mixed inputs, one-hot y_i (the dominant sample's label).
- mixup_sc (same class): inputs {λx_i + (1−λ)x_j | y_i = y_j}, one-hot y_i (the paper's Table 2).
  The partner x_j is drawn from the whole training set of y_i's class, not from the batch:
  a permutation within the classes of a batch of 128 pairs a sample with itself for 1/(its
  class's count in the batch) of the time — 8% of samples at 10 classes, 57% at 100, 74% at
  200 (mostly ERM). Drawn from the training set, a partner is the sample itself with probability
  1/(its class's training count), e.g. 0.22% on CIFAR-100. Partners get the batches' crop+flip.
- mixup_dt (data transformation): x̄ + λ̄(x_i − x̄) and ȳ + λ̄(y_i − ȳ), no randomness.
A mixed target's soft-label cross-entropy equals λ·CE(·, y_i) + (1−λ)·CE(·, y_j) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Seeded, Stateless, register
from study.train.methods.mixing import MixRNG, fold_up, mean_folded, mix

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig
    from study.train.loader import TrainingImages


@dataclass
class Mixup(Seeded):
    """Mixup with switches for which side is mixed; partners from the batch or, given `pool`,
    of the same class from the whole training set (Mixup-SC)."""

    alpha: float
    rng: MixRNG
    mix_inputs: bool = True
    mix_targets: bool = True
    pool: TrainingImages | None = None  # Mixup-SC: same-class partners from the training set

    def partners(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_j, y_j) for every sample i: the batch permuted, or same-class training images."""
        if self.pool is None:
            j = self.rng.permutation(len(y), y.device)
            return x[j], y[j]
        j = self.pool.same_class(y, self.rng.torch)
        return self.pool.fetch(j, self.rng.torch), self.pool.y[j]

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        lam = fold_up(float(self.rng.beta(self.alpha)))
        x_j, y_j = self.partners(x, y)
        logits = model(mix(x, x_j, lam) if self.mix_inputs else x)
        loss = F.cross_entropy(logits, y)
        if self.mix_targets:
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y_j)
        return loss, logits


class MixupDT(Stateless):
    """Mixup-DT: the deterministic transformation with λ̄ = E[max(λ, 1−λ)]."""

    def __init__(self, alpha: float, ctx: MethodContext):
        self.lam = mean_folded(alpha)
        self.ctx = ctx
        self.x_mean: torch.Tensor | None = None
        self.y_mean: torch.Tensor | None = None

    def transform(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.x_mean is None:  # once per trial, not per batch
            self.x_mean = self.ctx.mean_input().to(x.device)
            self.y_mean = self.ctx.mean_target.to(y.device)
        onehot = F.one_hot(y, self.ctx.num_classes).to(torch.float32)
        targets = torch.lerp(self.y_mean, onehot, self.lam)
        return torch.lerp(self.x_mean.to(x.dtype), x, self.lam), targets

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        inputs, targets = self.transform(x, y)
        logits = model(inputs)
        return F.cross_entropy(logits, targets), logits


def _family(**switches: bool):
    def build(cfg: MethodConfig, ctx: MethodContext) -> Mixup:
        return Mixup(cfg.alpha, MixRNG(ctx.seed), **switches)

    return build


def _same_class(cfg: MethodConfig, ctx: MethodContext) -> Mixup:
    if ctx.train_images is None:
        raise ValueError("mixup_sc draws its partners from MethodContext.train_images: pass it")
    return Mixup(cfg.alpha, MixRNG(ctx.seed), mix_targets=False, pool=ctx.train_images)


register("mixup", MethodEntry(_family()))
register("mixup_dt", MethodEntry(lambda cfg, ctx: MixupDT(cfg.alpha, ctx)))
register("mixup_to", MethodEntry(_family(mix_inputs=False)))
register("mixup_sc", MethodEntry(_same_class))
register("mixup_io", MethodEntry(_family(mix_targets=False)))

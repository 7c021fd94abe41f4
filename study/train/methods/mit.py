"""MIT, mixup inference in training (the paper's Remark 2, Eq. 3–4 and its Algorithm).

Mix the batch with its permutation twice (λ1 ≥ ½ ≥ λ2, |λ1 − λ2| ≥ margin when the constraint
is on), run each mix as its own forward pass (BatchNorm sees each as a batch), decouple the two
outputs into the pair's own outputs, and train them on one-hot labels:
loss = ½·CE(out_a, y_a) + ½·CE(out_b, y_b).
MIT-L and MIT-A are one loop over a list of stages: MIT-L's list is `[model]` (decouple at the
logits), MIT-A's is `model.stages` (mix, run and decouple around every stage, a fresh (λ1, λ2)
per stage; the decoupled pair of one stage is the pair mixed for the next).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Seeded, register
from study.train.methods.mixing import MixRNG, decouple, mix, sample_mit_pair

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig


@dataclass
class MIT(Seeded):
    alpha: float
    margin: float
    constraint: bool
    rng: MixRNG
    stages_of: Callable[[nn.Module], Sequence[nn.Module]]

    def lambdas(self) -> tuple[float, float]:
        return sample_mit_pair(self.rng, self.alpha, self.margin, self.constraint)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        j = self.rng.permutation(len(y), y.device)
        a, b = x, x[j]
        for stage in self.stages_of(model):
            lam1, lam2 = self.lambdas()
            a, b = decouple(stage(mix(a, b, lam1)), stage(mix(a, b, lam2)), lam1, lam2)
        loss = 0.5 * F.cross_entropy(a, y) + 0.5 * F.cross_entropy(b, y[j])
        return loss, a


def _build(stages_of: Callable[[nn.Module], Sequence[nn.Module]]):
    def build(cfg: MethodConfig, ctx: MethodContext) -> MIT:
        margin = cfg.margin if cfg.margin is not None else 0.0
        return MIT(cfg.alpha, margin, cfg.constraint, MixRNG(ctx.seed), stages_of)

    return build


register("mit_l", MethodEntry(_build(lambda model: [model]), takes_margin=True))
register("mit_a", MethodEntry(_build(lambda model: model.stages), takes_margin=True))

"""CutMix (Yun et al., ICCV 2019, "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features"), as its Eq. 1–2 and reference code:

    x̃ = M ⊙ x_i + (1 − M) ⊙ x_j,    ỹ = λ' y_i + (1 − λ') y_j,

λ ~ Beta(α, α) once per batch; M is 0 inside a box B = (r_x, r_y, r_w, r_h) with r_w = W√(1−λ),
r_h = H√(1−λ) (truncated to whole pixels) centred at a uniform pixel (r_x, r_y), clipped to the
image, 1 elsewhere. The box is the same for the whole batch, the partner of i is perm[i]. The
target weight is the box's true area after clipping, λ' = 1 − |B| / (W·H), not the drawn λ
(the reference code's "adjust lambda to exactly match pixel ratio"). λ is not folded: CutMix
pastes a box of area 1 − λ whatever λ is. The soft-label cross-entropy equals
λ'·CE(·, y_i) + (1 − λ')·CE(·, y_j) exactly. Every batch is cut and mixed, as every batch is
mixed by `mixup` here (the reference code's CIFAR runs pass --cutmix_prob 0.5: half the batches
clean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from study.train.methods import MethodContext, MethodEntry, Seeded, register
from study.train.methods.mixing import MixRNG

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import MethodConfig


@dataclass
class CutMix(Seeded):
    alpha: float
    rng: MixRNG

    def box(self, lam: float, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the pasted box, clipped to the image."""
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(self.rng.np.integers(height)), int(self.rng.np.integers(width))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        return top, bottom, left, right

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        lam = float(self.rng.beta(self.alpha))
        j = self.rng.permutation(len(y), y.device)
        height, width = x.shape[-2:]
        top, bottom, left, right = self.box(lam, height, width)
        mixed = x.clone()
        mixed[..., top:bottom, left:right] = x[j][..., top:bottom, left:right]
        kept = 1.0 - (bottom - top) * (right - left) / (height * width)  # λ'
        logits = model(mixed)
        loss = kept * F.cross_entropy(logits, y) + (1 - kept) * F.cross_entropy(logits, y[j])
        return loss, logits


def _build(cfg: MethodConfig, ctx: MethodContext) -> CutMix:
    return CutMix(cfg.alpha, MixRNG(ctx.seed))


register("cutmix", MethodEntry(_build))  # α = 1 in Yun et al.'s CIFAR experiments

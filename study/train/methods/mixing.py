"""Mixing primitives shared by every method (docs/protocol.md, "The methods"; the paper's Eq. 3–4).

λ is drawn once per batch from Beta(α, α) and folded: up (max(λ, 1−λ) ≥ ½) for mixup and λ1 of
MIT, down (min(λ, 1−λ) ≤ ½) for λ2 of MIT. All randomness comes from a `MixRNG` (a numpy
generator for λ, a CPU torch generator for partners) whose state is checkpointed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import integrate, special

MIN_GAP = 1e-3  # λ1 − λ2 below this makes Eq. 4 ill-conditioned: such pairs are always redrawn
MIN_ACCEPTANCE = 1e-3  # refuse margins whose rejection sampler would need > 1,000 draws a batch
_CANDIDATES = 64  # (λ1, λ2) pairs drawn at once by the rejection sampler
_MAX_ROUNDS = 10_000  # 640,000 draws: at acceptance ≥ 1e-3 failing is ~e^-640, never in practice


class MixRNG:
    """Seeded randomness of a method: λ draws and batch partners."""

    def __init__(self, seed: int):
        self.np = np.random.Generator(np.random.PCG64(seed))
        self.torch = torch.Generator().manual_seed(seed)

    def beta(self, alpha: float, size: int | None = None):
        return self.np.beta(alpha, alpha, size)

    def permutation(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, generator=self.torch).to(device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"np": self.np.bit_generator.state, "torch": self.torch.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.np.bit_generator.state = state["np"]
        self.torch.set_state(state["torch"])


def fold_up(lam: float) -> float:
    return max(lam, 1.0 - lam)


def mix(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """λ·a + (1 − λ)·b (Eq. 3)."""
    return torch.lerp(b, a, lam)


def decouple(
    out1: torch.Tensor, out2: torch.Tensor, lam1: float, lam2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Recover (f(a), f(b)) from f(λ1 a + (1−λ1) b) and f(λ2 a + (1−λ2) b) (the paper's Eq. 4).

    Both lines equal the inverse of [[λ1, 1−λ1], [λ2, 1−λ2]] applied to (out1, out2), so they
    are exact for affine f. Computed in fp32 at least (bf16 would amplify rounding by 1/|λ1−λ2|).
    """
    if lam1 == lam2:
        raise ValueError("decouple needs λ1 ≠ λ2")
    dtype = torch.promote_types(out1.dtype, torch.float32)
    o1, o2 = out1.to(dtype), out2.to(dtype)
    r = (1 - lam1) / (1 - lam2)
    q = lam2 / lam1
    out_a = (o1 - o2 * r) / (lam1 - lam2 * r)
    out_b = (o2 - o1 * q) / (1 - lam2 - (1 - lam1) * q)
    return out_a, out_b


def mean_folded(alpha: float) -> float:
    """λ̄ = E[max(λ, 1−λ)] for λ ~ Beta(α, α), which equals 1 − I_½(α+1, α) (Mixup-DT)."""
    return float(1.0 - special.betainc(alpha + 1.0, alpha, 0.5))


def margin_acceptance(alpha: float, margin: float) -> float:
    """P(λ1 − λ2 ≥ margin) for λ1 folded up and λ2 folded down, independent Beta(α, α) draws.

    λ1 has density 2·Beta(u; α, α) on [½, 1] and λ2 the CDF G(v) = 2·I_v(α, α) on [0, ½], so
    the probability is E[G(λ1 − m)]; the (1 − u)^(α−1) factor is quad's algebraic weight.
    """
    m = max(margin, MIN_GAP)

    def integrand(u: float) -> float:
        g = 2.0 * special.betainc(alpha, alpha, min(max(u - m, 0.0), 0.5))
        return 2.0 * g * float(np.exp((alpha - 1) * np.log(u) - special.betaln(alpha, alpha)))

    value, _ = integrate.quad(integrand, 0.5, 1.0, weight="alg", wvar=(0.0, alpha - 1.0))
    return float(np.clip(value, 0.0, 1.0))


def sample_mit_pair(
    rng: MixRNG, alpha: float, margin: float, constraint: bool
) -> tuple[float, float]:
    """(λ1 ≥ ½ ≥ λ2) as the paper's Algorithm lines 2–10, vectorised rejection.

    With `constraint` the pair is redrawn while λ1 − λ2 < margin (line 6); either way a pair
    closer than MIN_GAP is redrawn so Eq. 4 never divides by (nearly) zero.
    """
    need = max(margin if constraint else 0.0, MIN_GAP)
    for _ in range(_MAX_ROUNDS):
        draws = rng.beta(alpha, size=(_CANDIDATES, 2))
        lam1 = np.maximum(draws[:, 0], 1 - draws[:, 0])
        lam2 = np.minimum(draws[:, 1], 1 - draws[:, 1])
        ok = np.flatnonzero(lam1 - lam2 >= need)
        if ok.size:
            return float(lam1[ok[0]]), float(lam2[ok[0]])
    raise RuntimeError(f"no (λ1, λ2) with λ1 − λ2 ≥ {need} in {_MAX_ROUNDS * _CANDIDATES} draws")

"""Calibration metrics: ECE, temperature scaling, NLL, Brier, mean confidence; and beyond the
paper the adaptive (equal-mass), classwise and smooth ECE (`adaptive_ece`, `classwise_ece`,
`smooth_ece`), each one vectorised pass without a Python loop over bins or samples.

ECE follows docs/protocol.md ("Metrics"): confidence = max softmax probability, 15 equal-width bins,
a sample with confidence c is in bin m when lo_m < c ≤ hi_m, ECE = Σ_m |B_m|/n·|acc(B_m) −
conf(B_m)|, which equals Σ_m |Σ_{i∈B_m} (correct_i − c_i)| / n: one weighted bincount.

`fit_temperature(objective="ece")` is the paper's search (grid T = 0.01 … 4.99, first minimum
of ECE). Scaling by T never changes the argmax, so only the confidences move with T: they are
computed for a chunk of temperatures at once and binned with one bincount, instead of a Python
loop over temperatures and bins. `objective="nll"` is Guo et al.'s LBFGS on the NLL.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from study.grid import GRID_FIRST, GRID_LAST, GRID_SCALE

PAPER_GRID = torch.arange(GRID_FIRST, GRID_LAST + 1, dtype=torch.float64) / GRID_SCALE  # 0.01…4.99
_CHUNK_ELEMENTS = 1 << 22  # temperatures × samples × classes per chunk (bounds memory)


def _bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin m such that lo_m < c ≤ hi_m (confidence 0 goes to the first bin)."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype, device=conf.device)[1:-1]
    return torch.bucketize(conf, edges, right=False)


def _ece_rows(conf: torch.Tensor, correct: torch.Tensor, n_bins: int) -> torch.Tensor:
    """ECE of each row of `conf` (rows × n) against the same `correct` (n)."""
    rows, n = conf.shape
    idx = _bin_index(conf, n_bins) + n_bins * torch.arange(rows, device=conf.device)[:, None]
    gap = (correct.to(conf.dtype) - conf).reshape(-1)
    sums = torch.bincount(idx.reshape(-1), weights=gap, minlength=rows * n_bins)
    return sums.reshape(rows, n_bins).abs().sum(1) / n


def ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error of `logits` (n × K) against integer `labels` (n)."""
    probs = logits.float().softmax(1)
    conf, pred = probs.max(1)
    return float(_ece_rows(conf[None], pred.eq(labels), n_bins)[0])


def adaptive_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Equal-mass ECE (AdaECE of Mukhoti et al., NeurIPS 2020; the top-label form of Nixon et
    al.'s adaptive calibration error, 2019): samples sorted by confidence and cut into `n_bins`
    bins of ⌊n/B⌋ or ⌈n/B⌉ consecutive samples (the r-th smallest is in bin ⌊r·B/n⌋, ties in
    sample order), then Σ_b |Σ_{i∈b} (correct_i − c_i)| / n as `ece`."""
    conf, pred = logits.float().softmax(1).max(1)
    order = torch.argsort(conf, stable=True)
    n = len(conf)
    idx = torch.arange(n, device=conf.device) * n_bins // n
    gap = (pred.eq(labels).to(conf.dtype) - conf)[order]
    return float(torch.bincount(idx, weights=gap, minlength=n_bins).abs().sum() / n)


def classwise_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al., NeurIPS 2019): for every class k, the probabilities p_k of
    all samples binned as `ece` bins confidences (lo < p ≤ hi), then the mean over classes of
    Σ_b |Σ_{i∈b} (1[y_i = k] − p_ik)| / n. One bincount over (class, bin)."""
    probs = logits.float().softmax(1)
    n, k = probs.shape
    idx = _bin_index(probs, n_bins) + n_bins * torch.arange(k, device=probs.device)
    gap = F.one_hot(labels, k).to(probs.dtype) - probs
    sums = torch.bincount(idx.reshape(-1), weights=gap.reshape(-1), minlength=k * n_bins)
    return float(sums.abs().sum() / (n * k))


SMECE_MIN_SIGMA = 1e-3  # smallest bandwidth searched (relplot's eps): below, smECE is ~0 anyway
SMECE_GRID = 10 * round(1 / SMECE_MIN_SIGMA) + 1  # grid points on [0, 1]: 10 per σ at the least


class _Smoother:
    """Kernel smoothing of (residual, 1) over the confidences for any bandwidth σ.

    Discretised like the relplot package: the samples are spread onto a grid of G points of
    [0, 1] by linear interpolation. Reflecting at 0 and 1 (all images of the kernel) makes the
    grid one period of a 2-periodic sequence, so the reflected-Gaussian smoothing is a circular
    convolution: one FFT of the data, then per σ a multiplication by the Gaussian's transform
    exp(−2π²σ²f²) and one inverse FFT.
    """

    def __init__(self, conf: torch.Tensor, correct: torch.Tensor, g: int = SMECE_GRID):
        conf = conf.double().clamp(0, 1)
        gap = correct.double() - conf
        pos = conf * (g - 1)
        left = pos.floor().long().clamp(max=g - 2)
        frac = pos - left
        idx = torch.cat([left, left + 1])
        grid = torch.stack(
            [
                torch.bincount(idx, weights=torch.cat([(1 - frac) * w, frac * w]), minlength=g)
                for w in (gap, torch.ones_like(gap))
            ]
        )  # (2, G): residual mass and sample mass at each grid point
        grid[:, [0, -1]] *= 2  # a mass on 0 or 1 is its own mirror image: it counts twice
        period = torch.cat([grid, grid.flip(-1)[:, 1:-1]], dim=1)  # (2, 2(G − 1))
        self.n, self.g = period.shape[1], g
        self.spectrum = torch.fft.rfft(period)
        self.freq = torch.fft.rfftfreq(self.n, d=1 / (g - 1), dtype=torch.float64)  # per unit t
        self.freq = self.freq.to(conf.device)
        self.weights = torch.ones(g, dtype=torch.float64, device=conf.device)
        self.weights[[0, -1]] = 0.5  # the trapezoid rule on [0, 1]

    def smece(self, sigma: float) -> float:
        """smECE_σ = ∫ |Σ_i K_σ(t, c_i) r_i| dt / ∫ Σ_i K_σ(t, c_i) dt."""
        gauss = torch.exp(-2 * math.pi**2 * sigma**2 * self.freq**2)
        smooth = torch.fft.irfft(self.spectrum * gauss, n=self.n)[:, : self.g]
        return float((smooth[0].abs() * self.weights).sum() / (smooth[1] * self.weights).sum())


def smooth_ece_sigma(conf: torch.Tensor, correct: torch.Tensor, sigma: float) -> float:
    """smECE_σ of Błasiok & Nakkiran (2023, "Smooth ECE: Principled reliability diagrams via
    kernel smoothing") at a fixed bandwidth σ: ∫₀¹ |r̂_σ(t)| δ̂_σ(t) dt / ∫₀¹ δ̂_σ(t) dt, where
    r̂_σ·δ̂_σ = Σ_i K_σ(t, c_i)(correct_i − c_i), δ̂_σ = Σ_i K_σ(t, c_i) and K_σ is the Gaussian
    of standard deviation σ reflected at 0 and 1. Valid for σ ≥ SMECE_MIN_SIGMA."""
    return _Smoother(conf, correct).smece(sigma)


def smooth_ece(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 24) -> float:
    """Smooth ECE (Błasiok & Nakkiran, 2023) of the top-label confidences: smECE_σ* at the fixed
    point σ* = smECE_σ* (smECE_σ falls as σ grows, so σ* is found by bisection on
    [SMECE_MIN_SIGMA, 1]; 24 halvings fix it to 1e-7). No bins: a consistent calibration
    measure, the paper's reason to prefer it to binned ECE."""
    conf, pred = logits.float().softmax(1).max(1)
    smoother = _Smoother(conf, pred.eq(labels))
    lo, hi = SMECE_MIN_SIGMA, 1.0
    if smoother.smece(lo) <= lo:
        return smoother.smece(lo)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if smoother.smece(mid) > mid else (lo, mid)
    return smoother.smece(hi)


def bin_stats(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, list]:
    """Per-bin sample count, accuracy and mean confidence (NaN for empty bins): the data of a
    reliability diagram, binned exactly as `ece`."""
    conf, pred = logits.float().softmax(1).max(1)
    idx = _bin_index(conf, n_bins)
    count = torch.bincount(idx, minlength=n_bins)
    correct = torch.bincount(idx, weights=pred.eq(labels).float(), minlength=n_bins)
    total_conf = torch.bincount(idx, weights=conf, minlength=n_bins)
    denom = count.clamp_min(1).double()
    empty = count == 0
    acc = (correct.double() / denom).masked_fill(empty, float("nan"))
    mean_conf = (total_conf.double() / denom).masked_fill(empty, float("nan"))
    return {"count": count.tolist(), "acc": acc.tolist(), "conf": mean_conf.tolist()}


def ece_per_temperature(
    logits: torch.Tensor, labels: torch.Tensor, temperatures: torch.Tensor, n_bins: int = 15
) -> torch.Tensor:
    """ECE of logits / T for every T in `temperatures`, vectorised over T (chunked)."""
    logits = logits.float()
    shifted = logits - logits.max(1, keepdim=True).values  # ≤ 0, max is 0: conf = 1/Σ exp(z/T)
    correct = logits.argmax(1).eq(labels)
    inv_t = (1.0 / temperatures).to(device=logits.device, dtype=logits.dtype)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, shifted.numel()))
    out = []
    for part in inv_t.split(chunk):
        conf = torch.exp(shifted[None] * part[:, None, None]).sum(2).reciprocal_()
        out.append(_ece_rows(conf, correct, n_bins))
    return torch.cat(out)


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    objective: str = "ece",
    grid: torch.Tensor | None = None,
    n_bins: int = 15,
) -> float:
    """Temperature T minimising `objective` of logits / T on these samples.

    "ece": the paper's grid search (default grid 0.01 … 4.99), the first T with the smallest ECE.
    "nll": LBFGS on log T of the mean negative log-likelihood (Guo et al., 2017).
    """
    if objective == "ece":
        temps = PAPER_GRID if grid is None else torch.as_tensor(grid, dtype=torch.float64)
        scores = ece_per_temperature(logits, labels, temps, n_bins)
        return float(temps[int(torch.argmin(scores))])
    if objective == "nll":
        return _fit_nll(logits.float(), labels)
    raise ValueError(f"unknown calibration objective {objective!r}; valid: ece, nll")


def _fit_nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """LBFGS on log T. The trial's logits come from `engine.infer` under inference mode, and
    autograd refuses inference tensors: a clone made outside inference mode is an ordinary one
    (every `calibration.objective: nll` trial errored before this)."""
    with torch.inference_mode(False):
        return _lbfgs(logits.clone(), labels.clone())


def _lbfgs(logits: torch.Tensor, labels: torch.Tensor) -> float:
    log_t = torch.zeros(1, device=logits.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(log_t.detach().exp())


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-likelihood."""
    return float(F.cross_entropy(logits.float(), labels))


def brier(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over samples of Σ_k (p_k − 1[y = k])²."""
    probs = logits.float().softmax(1)
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return float((probs - onehot).pow(2).sum(1).mean())


def mean_confidence(logits: torch.Tensor) -> float:
    """Mean max-softmax probability."""
    return float(logits.float().softmax(1).max(1).values.mean())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(logits.argmax(1).eq(labels).float().mean())

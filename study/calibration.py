"""Calibration metrics: ECE, temperature scaling, NLL, Brier, mean confidence.

ECE follows PROTOCOL.md ("Metrics"): confidence = max softmax probability, 15 equal-width bins,
a sample with confidence c is in bin m when lo_m < c ≤ hi_m, ECE = Σ_m |B_m|/n·|acc(B_m) −
conf(B_m)|, which equals Σ_m |Σ_{i∈B_m} (correct_i − c_i)| / n: one weighted bincount.

`fit_temperature(objective="ece")` is the paper's search (grid T = 0.01 … 4.99, first minimum
of ECE). Scaling by T never changes the argmax, so only the confidences move with T: they are
computed for a chunk of temperatures at once and binned with one bincount, instead of a Python
loop over temperatures and bins. `objective="nll"` is Guo et al.'s LBFGS on the NLL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAPER_GRID = torch.arange(1, 500, dtype=torch.float64) / 100  # 0.01, 0.02, …, 4.99
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

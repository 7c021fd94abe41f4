"""fit_temperature (vectorised over T) vs the reference code's per-temperature, per-bin Python
loop (issue 2; target ≥ 10× on CPU). 5,000 × 10 logits, the paper's 499-temperature grid.
Both are checked to pick the same temperature.
Run: .venv/bin/python benchmarks/bench_temperature.py
"""

from __future__ import annotations

import torch
from common import best_of

from study.train.calibration import PAPER_GRID, fit_temperature


def reference_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    softmaxes = torch.softmax(logits, 1)
    confidences, predictions = torch.max(softmaxes, 1)
    accuracies = predictions.eq(labels)
    bounds = torch.linspace(0, 1, n_bins + 1)
    ece = torch.zeros(1)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        in_bin = confidences.gt(lo.item()) * confidences.le(hi.item())
        prop = in_bin.float().mean()
        if prop.item() > 0:
            gap = accuracies[in_bin].float().mean() - confidences[in_bin].mean()
            ece += torch.abs(gap) * prop
    return ece.item()


def reference_fit(logits: torch.Tensor, labels: torch.Tensor) -> float:
    best_t, best = None, float("inf")
    for t in PAPER_GRID.tolist():
        e = reference_ece(logits / t, labels)
        if e < best:
            best_t, best = t, e
    return best_t


def main() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (5000,), generator=g)
    logits = torch.randn(5000, 10, generator=g) * 3
    logits[torch.arange(5000), labels] += 3
    t_ref = best_of(lambda: reference_fit(logits, labels), repeats=1)
    t_ours = best_of(lambda: fit_temperature(logits, labels), repeats=5)
    same = abs(reference_fit(logits, labels) - fit_temperature(logits, labels)) < 1e-9
    print(
        f"5,000 x 10 logits, {len(PAPER_GRID)} temperatures, CPU threads {torch.get_num_threads()}"
    )
    print(f"  reference loop: {t_ref:.3f} s   vectorised: {t_ours:.4f} s   same T: {same}")
    print(f"speed-up: {t_ref / t_ours:.0f}x (target >= 10x)")


if __name__ == "__main__":
    main()

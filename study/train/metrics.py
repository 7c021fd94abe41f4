"""Every per-epoch metric of the Parquet contract from one logits pass per split.

Calibrated ECE (docs/protocol.md, "Metrics"): T is fitted on validation and the test ECE of
logits / T is reported; the optimal ECE fits T* on test itself (a lower bound). `val_cal_ece`
must not score T on the samples it was fitted on, so it is two-fold cross-fitted: validation is
split in two fixed halves, T fitted on each half scales the other, and one ECE is taken over all
validation samples.
"""

from __future__ import annotations

import torch

from study.train import calibration as cal
from study.train.config import CalibrationConfig


def halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint, seeded halves of range(n) for cross-fitting."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2 :]


def cross_fitted_ece(
    logits: torch.Tensor,
    labels: torch.Tensor,
    folds: tuple[torch.Tensor, torch.Tensor],
    cfg: CalibrationConfig,
) -> float:
    """ECE over all samples, each half scaled by the temperature fitted on the other half."""
    a, b = (f.to(logits.device) for f in folds)
    t_a = cal.fit_temperature(logits[a], labels[a], cfg.objective, n_bins=cfg.n_bins)
    t_b = cal.fit_temperature(logits[b], labels[b], cfg.objective, n_bins=cfg.n_bins)
    scaled = torch.cat([logits[a] / t_b, logits[b] / t_a])
    return cal.ece(scaled, torch.cat([labels[a], labels[b]]), cfg.n_bins)


def beyond_ece(
    logits: torch.Tensor, labels: torch.Tensor, scaled: torch.Tensor, n_bins: int
) -> dict[str, float]:
    """Adaptive, classwise and smooth ECE of the raw test logits and of logits / T (the same T
    as `test_cal_ece`): whether a method's calibration after scaling depends on the measure."""
    out = {}
    for prefix, z in (("test", logits), ("test_cal", scaled)):
        out[f"{prefix}_ace"] = cal.adaptive_ece(z, labels, n_bins)
        out[f"{prefix}_cw_ece"] = cal.classwise_ece(z, labels, n_bins)
        out[f"{prefix}_smece"] = cal.smooth_ece(z, labels)
    return out


def epoch_metrics(
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    folds: tuple[torch.Tensor, torch.Tensor],
    cfg: CalibrationConfig,
) -> dict[str, float]:
    """The val_* and test_* columns and both temperatures from fp32 (logits, labels) pairs."""
    (vl, vy), (tl, ty) = ((logits.float(), labels) for logits, labels in (val, test))
    n_bins = cfg.n_bins
    temperature = cal.fit_temperature(vl, vy, cfg.objective, n_bins=n_bins)
    opt_temperature = cal.fit_temperature(tl, ty, cfg.objective, n_bins=n_bins)
    scaled = tl / temperature
    raw_bins = cal.bin_stats(tl, ty, n_bins)
    cal_bins = cal.bin_stats(scaled, ty, n_bins)
    return {
        **beyond_ece(tl, ty, scaled, n_bins),
        **{f"test_bin_{k}": v for k, v in raw_bins.items()},
        **{f"test_cal_bin_{k}": v for k, v in cal_bins.items()},
        "val_acc": cal.accuracy(vl, vy),
        "val_nll": cal.nll(vl, vy),
        "val_ece": cal.ece(vl, vy, n_bins),
        "val_cal_ece": cross_fitted_ece(vl, vy, folds, cfg),
        "test_acc": cal.accuracy(tl, ty),
        "test_nll": cal.nll(tl, ty),
        "test_ece": cal.ece(tl, ty, n_bins),
        "test_cal_ece": cal.ece(scaled, ty, n_bins),
        "test_opt_ece": cal.ece(tl / opt_temperature, ty, n_bins),
        "test_conf": cal.mean_confidence(tl),
        "test_brier": cal.brier(tl, ty),
        "temperature": temperature,
        "opt_temperature": opt_temperature,
    }

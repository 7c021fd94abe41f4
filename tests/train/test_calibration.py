"""ECE on hand-built tensors, the vectorised temperature search against a brute-force loop, a
planted temperature, and cross-fitted validation ECE."""

from __future__ import annotations

import math

import pytest
import torch

from study.train import calibration as cal
from study.train.config import CalibrationConfig
from study.train.metrics import cross_fitted_ece, epoch_metrics, halves


def logits_for(confidences: list[float]) -> torch.Tensor:
    """Two-class logits whose softmax max is exactly each confidence (class 0 predicted)."""
    c = torch.tensor(confidences, dtype=torch.float64)
    return torch.stack([torch.log(c), torch.log1p(-c)], 1)


def test_ece_hand_built():
    # 4 samples, confidences 0.9, 0.9, 0.6, 0.6; correct: yes, no, yes, yes.
    logits = logits_for([0.9, 0.9, 0.6, 0.6])
    labels = torch.tensor([0, 1, 0, 0])
    # bin (0.8667, 0.9333]: acc 0.5, conf 0.9 → 2/4·0.4
    # bin (0.5333, 0.6]: acc 1, conf 0.6 → 2/4·0.4
    assert cal.ece(logits, labels, 15) == pytest.approx(0.4, abs=1e-6)


def test_ece_confidence_one_lands_in_the_last_bin():
    logits = torch.tensor([[50.0, -50.0], [50.0, -50.0]])
    assert cal.ece(logits, torch.tensor([0, 1]), 15) == pytest.approx(0.5, abs=1e-6)


def test_ece_bin_edge_belongs_to_the_lower_bin():
    # confidence exactly 0.6 = 9/15 is in bin (8/15, 9/15], with 0.55 (same bin) not with 0.61.
    # float32 0.6 is 0.60000002 > 9/15's float32 — use 0.5 with 2 bins, an exact binary fraction.
    logits = logits_for([0.5, 0.75])
    labels = torch.tensor([0, 1])
    # 2 bins: 0.5 in (0, 0.5] alone: |1 − 0.5|·½; 0.75 in (0.5, 1]: |0 − 0.75|·½ → 0.625
    assert cal.ece(logits, labels, 2) == pytest.approx(0.625, abs=1e-6)
    # just above the edge (0.5 + 2⁻¹⁰, exact in float32) it joins 0.75 in (0.5, 1]:
    # |(1 + 0)/2 − (0.5009765625 + 0.75)/2|·1 = 0.12548828125
    above = logits_for([0.5 + 2**-10, 0.75])
    assert cal.ece(above, labels, 2) == pytest.approx(0.12548828125, abs=1e-6)


def brute_force_ece(logits, labels, n_bins=15):
    """Reference-code style: a Python loop over bins with lo < c ≤ hi."""
    probs = torch.softmax(logits.double(), 1)
    conf, pred = probs.max(1)
    correct = pred.eq(labels).double()
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.double().mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


def random_logits(n=2000, k=10, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * scale
    logits[torch.arange(n), labels] += 2.0  # informative, overconfident
    return logits, labels


@pytest.mark.parametrize("seed", range(3))
def test_ece_matches_brute_force(seed):
    logits, labels = random_logits(seed=seed)
    assert cal.ece(logits, labels) == pytest.approx(brute_force_ece(logits, labels), abs=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_temperature_search_agrees_with_a_brute_force_loop(seed):
    logits, labels = random_logits(n=1000, seed=seed)
    grid = torch.arange(1, 500, dtype=torch.float64) / 100
    scores = [brute_force_ece(logits / t, labels) for t in grid.tolist()]
    best = min(scores)
    fitted = cal.fit_temperature(logits, labels)
    assert brute_force_ece(logits / fitted, labels) == pytest.approx(best, abs=1e-5)
    first = next(t for t, s in zip(grid.tolist(), scores, strict=True) if s <= best + 1e-6)
    assert fitted == pytest.approx(first, abs=0.011)
    vectorised = cal.ece_per_temperature(logits, labels, grid)
    torch.testing.assert_close(
        vectorised.double(), torch.tensor(scores, dtype=torch.float64), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("objective", ["ece", "nll"])
def test_fit_temperature_recovers_a_planted_temperature(objective):
    g = torch.Generator().manual_seed(0)
    n, k, planted = 20_000, 10, 2.5
    true_logits = torch.randn(n, k, generator=g) * 2
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    fitted = cal.fit_temperature(true_logits * planted, labels, objective)
    assert fitted == pytest.approx(planted, rel=0.06)


@pytest.mark.parametrize("objective", ["ece", "nll"])
def test_epoch_metrics_take_inference_mode_logits(objective):
    """The trial's logits come from `engine.infer` under torch.inference_mode: every objective
    must fit T on them as on ordinary tensors (the NLL fit raised, erroring every trial)."""
    g = torch.Generator().manual_seed(1)
    logits, labels = (
        torch.randn(400, 10, generator=g) * 3,
        torch.randint(0, 10, (400,), generator=g),
    )
    with torch.inference_mode():
        frozen = logits.clone()
    assert frozen.is_inference()
    cfg = CalibrationConfig(objective=objective)
    split = (frozen[:200], labels[:200]), (frozen[200:], labels[200:])
    plain = (logits[:200], labels[:200]), (logits[200:], labels[200:])
    folds = halves(200, 0)
    assert repr(epoch_metrics(*split, folds, cfg)) == repr(
        epoch_metrics(*plain, folds, cfg)
    )  # NaN bins


def test_first_minimum_wins_ties():
    logits = torch.tensor([[1.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 0])  # always correct: ECE falls as T → 0, ties at conf = 1
    assert cal.fit_temperature(logits, labels, grid=[0.01, 0.02, 0.03]) == 0.01


def test_nll_brier_confidence_hand_built():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))
    labels = torch.tensor([0, 2])
    assert cal.nll(logits, labels) == pytest.approx(-(math.log(0.7) + math.log(0.2)) / 2)
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.4**2 + 0.4**2 + 0.8**2)) / 2
    assert cal.brier(logits, labels) == pytest.approx(brier, rel=1e-6)
    assert cal.mean_confidence(logits) == pytest.approx(0.55, rel=1e-6)


def test_cross_fitted_val_ece_never_scores_its_own_temperature():
    logits, labels = random_logits(n=400, seed=5)
    folds = halves(400, 0)
    a, b = folds
    assert set(a.tolist()).isdisjoint(b.tolist()) and len(a) + len(b) == 400
    cfg = CalibrationConfig()
    t_a = cal.fit_temperature(logits[a], labels[a])
    t_b = cal.fit_temperature(logits[b], labels[b])
    scaled = torch.cat([logits[a] / t_b, logits[b] / t_a])
    expected = cal.ece(scaled, torch.cat([labels[a], labels[b]]))
    assert cross_fitted_ece(logits, labels, folds, cfg) == pytest.approx(expected)
    in_sample = cal.ece(logits / cal.fit_temperature(logits, labels), labels)
    assert in_sample <= cross_fitted_ece(logits, labels, folds, cfg) + 1e-9


def test_epoch_metrics_columns_and_ranges():
    val, test = random_logits(n=300, seed=1), random_logits(n=300, seed=2)
    m = epoch_metrics(val, test, halves(300, 0), CalibrationConfig())
    assert m["test_opt_ece"] <= m["test_cal_ece"] + 1e-9
    assert all(0 <= m[k] <= 1 for k in m if k.endswith(("acc", "ece", "conf")) and "bin" not in k)
    assert sum(m["test_cal_bin_count"]) == 300
    assert m["test_cal_ece"] == pytest.approx(cal.ece(test[0] / m["temperature"], test[1]))


def test_bin_stats_are_the_ece_bins():
    logits, labels = random_logits(n=500, seed=3)
    stats = cal.bin_stats(logits, labels, 15)
    n = sum(stats["count"])
    assert n == 500 and len(stats["acc"]) == 15
    gaps = [
        c / n * abs(a - f)
        for c, a, f in zip(stats["count"], stats["acc"], stats["conf"], strict=True)
        if c
    ]
    assert sum(gaps) == pytest.approx(cal.ece(logits, labels), abs=1e-6)
    assert all(math.isnan(a) for c, a in zip(stats["count"], stats["acc"], strict=True) if not c)

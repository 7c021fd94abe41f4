"""Adaptive, classwise and smooth ECE on hand-built tensors, smooth ECE against a brute-force
integral and the relplot package, and the 15-bin ECE against torchmetrics' CalibrationError
(the same numbers except for confidences on a bin edge: docs/analysis.md, "Calibration
measures")."""

from __future__ import annotations

import math

import pytest
import torch
from test_calibration import logits_for, random_logits

from study.train import calibration as cal
from study.train.config import CalibrationConfig
from study.train.metrics import epoch_metrics, halves


def test_adaptive_ece_hand_built():
    # confidences 0.9, 0.6, 0.8, 0.7; correct: no, no, yes, yes (labels 1, 1, 0, 0).
    logits = logits_for([0.9, 0.6, 0.8, 0.7])
    labels = torch.tensor([1, 1, 0, 0])
    # sorted: 0.6 (0), 0.7 (1) | 0.8 (1), 0.9 (0); 2 equal-mass bins:
    # |(0 − 0.6) + (1 − 0.7)| + |(1 − 0.8) + (0 − 0.9)| = 0.3 + 0.7 → /4 = 0.25
    assert cal.adaptive_ece(logits, labels, 2) == pytest.approx(0.25, abs=1e-6)
    # equal-width bins (0, ½], (½, 1] put all four in one bin: |2 − 3.0| / 4 = 0.25 as well,
    # so three bins separate them: ranks 0 | 1 | 2, 3 (⌊r·3/4⌋ = 0, 0, 1, 2): bins {0.6, 0.7},
    # {0.8}, {0.9} → (0.3 + 0.2 + 0.9) / 4 = 0.35
    assert cal.adaptive_ece(logits, labels, 3) == pytest.approx(0.35, abs=1e-6)


def test_adaptive_ece_bins_hold_equal_counts():
    logits, labels = random_logits(n=300, seed=4)
    conf, pred = logits.softmax(1).max(1)
    order = conf.argsort()
    gaps = (pred.eq(labels).float() - conf)[order].reshape(15, 20).sum(1)
    assert cal.adaptive_ece(logits, labels, 15) == pytest.approx(float(gaps.abs().sum() / 300))


def test_classwise_ece_hand_built():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    # 2 bins (0, ½], (½, 1]. class 0: 0.7 alone (+0.3), 0.3 alone (−0.3) → 0.6;
    # class 1: 0.2 (−0.2), 0.6 (−0.6) in different bins → 0.8; class 2: 0.1 (−0.1) and
    # 0.1 (+0.9) in one bin → 0.8. Mean over classes of Σ/n: (0.6 + 0.8 + 0.8) / (2·3)
    assert cal.classwise_ece(probs.log(), labels, 2) == pytest.approx(2.2 / 6, abs=1e-6)


def test_classwise_ece_matches_a_loop_over_classes_and_bins():
    logits, labels = random_logits(n=400, k=5, seed=6)
    probs = logits.double().softmax(1)
    total = 0.0
    for k in range(5):
        p, hit = probs[:, k], labels.eq(k).double()
        for m in range(15):
            inside = (p > m / 15) & (p <= (m + 1) / 15)
            total += abs(float((hit[inside] - p[inside]).sum())) / 400
    assert cal.classwise_ece(logits, labels, 15) == pytest.approx(total / 5, abs=1e-6)


def brute_smece_sigma(conf: torch.Tensor, correct: torch.Tensor, sigma: float) -> float:
    """∫|Σ K r| / ∫Σ K on a fine mesh, the reflected Gaussian as an explicit sum of images."""
    t = torch.linspace(0, 1, 40_001, dtype=torch.float64)[:, None]
    c = conf.double()[None]
    kernel = sum(
        torch.exp(-0.5 * ((t - s * c - 2 * k) / sigma) ** 2) for k in range(-3, 4) for s in (1, -1)
    )
    residual = (kernel * (correct.double() - c)).sum(1)
    return float(torch.trapezoid(residual.abs(), t[:, 0]) / torch.trapezoid(kernel.sum(1), t[:, 0]))


@pytest.mark.parametrize("sigma", [0.003, 0.05, 0.2, 0.7])
def test_smooth_ece_sigma_is_the_reflected_kernel_integral(sigma):
    conf = torch.tensor([0.05, 0.3, 0.31, 0.62, 0.9, 0.97, 1.0])
    correct = torch.tensor([0, 1, 0, 0, 1, 1, 0], dtype=torch.bool)
    expected = brute_smece_sigma(conf, correct, sigma)
    assert cal.smooth_ece_sigma(conf, correct, sigma) == pytest.approx(expected, abs=2e-4)


def test_smooth_ece_of_one_confidence_is_its_gap():
    # every sample at confidence 0.8, half correct: r̂_σ ≡ 0.5 − 0.8 for every σ, so the fixed
    # point is σ* = smECE = 0.3.
    logits = logits_for([0.8] * 10)
    labels = torch.tensor([0, 1] * 5)
    assert cal.smooth_ece(logits, labels) == pytest.approx(0.3, abs=1e-6)


def test_smooth_ece_is_its_own_bandwidth_and_matches_relplot():
    relplot = pytest.importorskip("relplot")
    # relplot's grid counts a confidence of exactly 1 (0) once where its reflection makes it
    # count twice (test above), so compare on logits whose confidences stay below 1.
    for seed, scale in [(0, 0.5), (1, 1.0), (2, 2.0)]:
        logits, labels = random_logits(n=2000, seed=seed, scale=scale)
        assert logits.softmax(1).max() < 0.999
        ours = cal.smooth_ece(logits, labels)
        conf, pred = logits.softmax(1).max(1)
        assert cal.smooth_ece_sigma(conf, pred.eq(labels), ours) == pytest.approx(ours, abs=1e-5)
        f, y = relplot.multiclass_logits_to_confidences(logits.numpy(), labels.numpy())
        assert ours == pytest.approx(relplot.smECE(f, y), abs=2e-3)  # relplot: σ to 1/1024


def test_ece_matches_torchmetrics_off_the_bin_edges():
    metrics = pytest.importorskip("torchmetrics.classification")
    for seed in range(3):
        logits, labels = random_logits(n=1000, seed=seed)
        theirs = metrics.MulticlassCalibrationError(num_classes=logits.shape[1], n_bins=15)
        expected = float(theirs(logits.float().softmax(1), labels))
        assert cal.ece(logits, labels, 15) == pytest.approx(expected, abs=1e-6)


def test_ece_and_torchmetrics_differ_only_on_the_edges():
    # the paper bins lo < c ≤ hi; torchmetrics lo ≤ c < hi, and c = 1 in a bin of its own.
    metrics = pytest.importorskip("torchmetrics.classification")
    logits = torch.tensor([[50.0, -50.0], [3.0, 0.0]])  # confidences 1.0 (wrong), 0.9526
    labels = torch.tensor([1, 0])
    c = torch.tensor(3.0).sigmoid().item()
    ours = cal.ece(logits, labels, 15)  # one bin (14/15, 1]: |(0 − 1) + (1 − c)| / 2
    assert ours == pytest.approx((1 - (1 - c)) / 2, abs=1e-6)
    theirs = float(metrics.MulticlassCalibrationError(num_classes=2, n_bins=15)(logits, labels))
    assert theirs == pytest.approx((1 + (1 - c)) / 2, abs=1e-6)  # bins [14/15, 1) and {1}
    half = logits_for([0.5, 0.75])  # 0.5 on the edge of 2 bins: lower bin here, upper there
    ours = cal.ece(half, torch.tensor([0, 1]), 2)
    tm = metrics.MulticlassCalibrationError(num_classes=2, n_bins=2)
    theirs = float(tm(half.float().softmax(1), torch.tensor([0, 1])))
    assert ours == pytest.approx(0.625) and theirs == pytest.approx(abs(0.5 - 0.625))


def test_epoch_metrics_report_each_measure_raw_and_after_scaling():
    val, test = random_logits(n=300, seed=1), random_logits(n=300, seed=2)
    m = epoch_metrics(val, test, halves(300, 0), CalibrationConfig())
    scaled = test[0] / m["temperature"]
    for column, fn in [
        ("ace", cal.adaptive_ece),
        ("cw_ece", cal.classwise_ece),
        ("smece", lambda z, y, n_bins: cal.smooth_ece(z, y)),
    ]:
        assert m[f"test_{column}"] == pytest.approx(fn(test[0], test[1], 15))
        assert m[f"test_cal_{column}"] == pytest.approx(fn(scaled, test[1], 15))
        assert 0 <= m[f"test_cal_{column}"] <= 1 and not math.isnan(m[f"test_{column}"])
    assert m["test_cal_smece"] != pytest.approx(m["test_smece"])  # T ≠ 1 moves it

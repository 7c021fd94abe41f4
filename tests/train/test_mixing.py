"""Mixing maths: Eq. 4's decoupling is exact for affine maps; MIT-L reduces to ERM on a linear
model; the Δλ sampler's acceptance probability and refusal of near-impossible margins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from study.errors import ConfigError
from study.train import methods, resolve
from study.train.config import MethodConfig, TrialConfig
from study.train.methods import MethodContext
from study.train.methods.mixing import MixRNG, decouple, margin_acceptance, mix, sample_mit_pair


@pytest.mark.parametrize("seed", range(5))
def test_decouple_recovers_affine_outputs(seed):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(12, 7, generator=g), torch.randn(7, generator=g)

    def f(v):
        return v @ w + b

    a, c = torch.randn(9, 12, generator=g), torch.randn(9, 12, generator=g)
    lam1 = 0.5 + 0.5 * torch.rand((), generator=g).item()
    lam2 = 0.5 * torch.rand((), generator=g).item()
    out_a, out_b = decouple(f(mix(a, c, lam1)), f(mix(a, c, lam2)), lam1, lam2)
    torch.testing.assert_close(out_a, f(a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_b, f(c), atol=1e-5, rtol=1e-5)


def test_decouple_matches_the_inverse_matrix():
    lam1, lam2 = 0.8, 0.3
    o1, o2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    inv = torch.linalg.inv(torch.tensor([[lam1, 1 - lam1], [lam2, 1 - lam2]], dtype=torch.float64))
    out_a, out_b = decouple(o1, o2, lam1, lam2)
    torch.testing.assert_close(out_a, inv[0, 0] * o1 + inv[0, 1] * o2)
    torch.testing.assert_close(out_b, inv[1, 0] * o1 + inv[1, 1] * o2)


def test_decouple_refuses_equal_lambdas():
    with pytest.raises(ValueError):
        decouple(torch.ones(2), torch.ones(2), 0.5, 0.5)


@pytest.mark.parametrize("name", ["mit_l", "mit_a"])
def test_mit_on_a_linear_model_equals_erm(name):
    torch.manual_seed(0)
    lin = nn.Linear(20, 5)
    model = nn.Sequential(nn.Flatten(), lin)
    model.stages = [model] if name == "mit_l" else [model[0], model[1]]
    x, y = torch.randn(32, 4, 5), torch.randint(0, 5, (32,))
    ctx = MethodContext(5, 0, lambda: torch.zeros(4, 5), torch.full((5,), 0.2))
    mit = methods.build(MethodConfig(name, alpha=1.0, margin=0.3), ctx)
    erm = methods.build(MethodConfig("erm"), ctx)
    mit_loss, mit_logits = mit.step(model, x, y)
    erm_loss, erm_logits = erm.step(model, x, y)
    assert mit_loss.item() == pytest.approx(erm_loss.item(), abs=1e-5)
    torch.testing.assert_close(mit_logits, erm_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("alpha,margin", [(1.0, 0.5), (0.1, 0.5), (10.0, 0.5), (0.2, 0.9)])
def test_margin_acceptance_matches_sampling(alpha, margin):
    d = np.random.default_rng(0).beta(alpha, alpha, (200_000, 2))
    gap = np.maximum(d[:, 0], 1 - d[:, 0]) - np.minimum(d[:, 1], 1 - d[:, 1])
    assert margin_acceptance(alpha, margin) == pytest.approx(np.mean(gap >= margin), abs=3e-3)


def test_uniform_lambdas_accept_half_at_margin_half():
    assert margin_acceptance(1.0, 0.5) == pytest.approx(0.5, abs=1e-9)


def test_sampler_draws_are_reproducible():
    a = [sample_mit_pair(MixRNG(7), 1.0, 0.5, True) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize("alpha,margin", [(100.0, 0.9), (1.0, 0.9995)])
def test_nearly_impossible_margin_is_refused(alpha, margin):
    overrides = {"method.name": "mit_a", "method.alpha": alpha, "method.margin": margin}
    with pytest.raises(ConfigError, match="nearly impossible"):
        resolve.replace(TrialConfig(), **overrides)


@pytest.mark.parametrize("margin", [-0.1, 1.0, 1.5])
def test_margin_outside_unit_interval_is_refused(margin):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        resolve.replace(TrialConfig(), **{"method.name": "mit_l", "method.margin": margin})

"""Every registered method, parametrised (timm/optuna style): shapes, finiteness, determinism,
and each method's inputs and targets exactly as docs/protocol.md defines them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from study.train import methods, models
from study.train.config import MethodConfig, ModelConfig
from study.train.loader import Normalize, TrainingImages
from study.train.methods import MethodContext
from study.train.methods.mixing import mean_folded

ALL = methods.names()


def ctx(seed: int = 0, k: int = 4) -> MethodContext:
    g = torch.Generator().manual_seed(123)
    pool = TrainingImages(
        torch.randint(0, 256, (40, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.arange(40) % k,
        Normalize((0.5,) * 3, (0.25,) * 3, torch.device("cpu")),
        pad=4,
        flip=True,
    )
    mean_input = lambda: torch.full((3, 32, 32), 0.25)  # noqa: E731
    return MethodContext(k, seed, mean_input, torch.full((k,), 1 / k), train_images=pool)


def make(name: str, seed: int = 0, **kw) -> methods.Method:
    return methods.build(MethodConfig(name, **kw), ctx(seed))


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(ModelConfig("resnet18", width=4), 4, 3)


@pytest.mark.parametrize("name", ALL)
def test_step_shapes_finite_and_deterministic(name, batch):
    x, y = batch
    losses = []
    for _ in range(2):
        loss, logits = make(name, seed=3).step(tiny_model(), x, y)
        assert logits.shape == (16, 4)
        assert torch.isfinite(loss) and loss.ndim == 0
        losses.append(loss.item())
    assert losses[0] == losses[1]
    other = make(name, seed=4)
    assert (not other.state_dict()) == (name in ("erm", "mixup_dt", "label_smoothing"))
    if other.state_dict():  # a method with randomness: another seed mixes differently
        assert other.step(tiny_model(), x, y)[0].item() != losses[0]


STATEFUL = [n for n in ALL if make(n).state_dict()]
STATELESS = [n for n in ALL if n not in STATEFUL]


def test_the_methods_with_mixing_randomness_carry_state():
    # a new method must land in one of the two
    assert set(STATELESS) == {"erm", "mixup_dt", "label_smoothing"}


@pytest.mark.parametrize("name", STATEFUL)
def test_state_dict_round_trip(name, batch):
    """A checkpointed method continues with the same draws: a differently seeded copy that loads
    the state gives the original's next loss, and without the state it would not."""
    x, y = batch
    a = make(name, seed=5)
    a.step(tiny_model(), x, y)
    state = a.state_dict()
    first = a.step(tiny_model(), x, y)[0].item()
    unloaded = make(name, seed=99).step(tiny_model(), x, y)[0].item()
    assert unloaded != first  # else the round trip below would prove nothing
    b = make(name, seed=99)
    b.load_state_dict(state)
    assert b.step(tiny_model(), x, y)[0].item() == pytest.approx(first, abs=0)


@pytest.mark.parametrize("name", STATELESS)
def test_stateless_methods_have_empty_state_and_repeat_themselves(name, batch):
    x, y = batch
    a, b = make(name, seed=5), make(name, seed=99)
    assert a.state_dict() == {} and b.state_dict() == {}
    b.load_state_dict(a.state_dict())
    losses = [m.step(tiny_model(), x, y)[0].item() for m in (a, a, b)]
    assert losses[0] == losses[1] == losses[2]


class Recorder(nn.Module):
    """A linear model that records what it was called with."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 32 * 32, 4)
        self.seen: list[torch.Tensor] = []
        self.stages = [self]

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


def test_mixup_dt_is_its_formula(batch):
    x, y = batch
    m, model = make("mixup_dt", alpha=0.5), Recorder()
    loss, logits = m.step(model, x, y)
    lam = mean_folded(0.5)
    expected_x = 0.25 + lam * (x - 0.25)
    torch.testing.assert_close(model.seen[0], expected_x)
    targets = 0.25 + lam * (F.one_hot(y, 4).float() - 0.25)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    loss2, _ = m.step(model, x, y)
    torch.testing.assert_close(model.seen[1], model.seen[0])  # deterministic
    assert loss2.item() == loss.item()


def test_mean_folded_matches_monte_carlo():
    rng = np.random.default_rng(0)
    for alpha in (0.1, 0.5, 1.0, 4.0):
        lam = rng.beta(alpha, alpha, 400_000)
        assert mean_folded(alpha) == pytest.approx(np.maximum(lam, 1 - lam).mean(), abs=2e-3)
    assert mean_folded(1.0) == pytest.approx(0.75)


def test_mixup_to_leaves_inputs_untouched(batch):
    x, y = batch
    model = Recorder()
    make("mixup_to", alpha=1.0).step(model, x, y)
    torch.testing.assert_close(model.seen[0], x)


def _fits(x, seen):
    """For each mixed image, every (error, λ, j) of x̃_i ≈ λ x_i + (1-λ) x_j (least squares)."""
    flat, mixed = x.flatten(1), seen.flatten(1)
    out = []
    for i in range(len(x)):
        row = []
        for j in range(len(x)):
            d = flat[i] - flat[j]
            lam = 1.0 if j == i else float((mixed[i] - flat[j]) @ d / (d @ d))
            row.append(((mixed[i] - (lam * flat[i] + (1 - lam) * flat[j])).norm().item(), lam, j))
        out.append(row)
    return out


def test_mixup_io_targets_are_the_dominant_one_hot(batch):
    x, y = batch
    model = Recorder()
    loss, logits = make("mixup_io", alpha=1.0).step(model, x, y)
    assert all(min(row)[0] < 1e-3 and min(row)[1] >= 0.5 for row in _fits(x, model.seen[0]))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_mixup_mixes_inputs_and_targets_with_one_partner(batch):
    x, y = batch
    model = Recorder()
    loss, logits = make("mixup", alpha=1.0, seed=1).step(model, x, y)
    best = [min(row) for row in _fits(x, model.seen[0])]
    lams = {round(lam, 4) for err, lam, j in best if j != best.index((err, lam, j))}
    assert len(lams) <= 1 and all(err < 1e-3 for err, _, _ in best)
    lam = best[0][1] if best[0][2] != 0 else next(iter(lams))
    partner = torch.tensor([j for _, _, j in best])
    expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[partner])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("name", ["mit_l", "mit_a"])
@pytest.mark.parametrize("alpha,margin", [(1.0, 0.5), (0.2, 0.0), (2.0, 0.3)])
def test_mit_lambdas_respect_fold_and_margin(name, alpha, margin):
    m = make(name, alpha=alpha, margin=margin)
    pairs = [m.lambdas() for _ in range(500)]
    assert all(l1 >= 0.5 >= l2 and l1 - l2 >= max(margin, 1e-3) for l1, l2 in pairs)


def test_mit_constraint_off_ignores_the_margin():
    m = make("mit_l", alpha=8.0, margin=0.5, constraint=False)
    gaps = [l1 - l2 for l1, l2 in (m.lambdas() for _ in range(500))]
    assert min(gaps) < 0.5  # would be impossible under the margin
    assert m.margin == 0.0 and not m.constraint

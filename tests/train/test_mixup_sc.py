"""Mixup-SC draws each sample's partner from the whole training set of its class (the paper's
Table 2: inputs {λx_i + (1−λ)x_j | y_i = y_j}), augmented like the batches, seeded by the method."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from study.train import methods
from study.train.config import MethodConfig
from study.train.loader import Normalize, TrainingImages
from study.train.methods import MethodContext
from study.train.methods.mixing import fold_up, mix

CPU = torch.device("cpu")


def ctx(pool: object, k: int, seed: int = 0) -> MethodContext:
    return MethodContext(k, seed, lambda: torch.zeros(3, 1, 1), torch.full((k,), 1 / k), pool)


def sc(pool: TrainingImages, k: int, seed: int = 0):
    return methods.build(MethodConfig("mixup_sc", alpha=1.0), ctx(pool, k, seed))


def indexed_pool(k: int, per_class: int) -> TrainingImages:
    """k balanced classes; image n is 3×1×1 and spells n in base 256, so a partner's pixels
    name its training index."""
    n = torch.arange(k * per_class)
    digits = torch.stack([n % 256, n // 256 % 256, n // 65536], 1).to(torch.uint8)
    return TrainingImages(
        digits[:, :, None, None], n % k, Normalize((0.0,) * 3, (1.0,) * 3, CPU), pad=0, flip=False
    )


def index_of(images: torch.Tensor) -> torch.Tensor:
    d = (images[:, :, 0, 0] * 255).round().long()
    return d[:, 0] + 256 * d[:, 1] + 65536 * d[:, 2]


@pytest.mark.parametrize("k", [100, 200])
def test_partners_share_the_class_and_are_almost_never_the_sample(k):
    pool = indexed_pool(k, 300)
    method, order = sc(pool, k), torch.Generator().manual_seed(1)
    selves = total = 0
    drawn_for_class_0: set[int] = set()
    for _ in range(60):  # 60 batches of 128, as Batches would yield them
        idx = torch.randperm(len(pool), generator=order)[:128]
        x, y = pool.fetch(idx, order), pool.y[idx]
        x_j, y_j = method.partners(x, y)
        j = index_of(x_j)
        assert torch.equal(pool.y[j], y) and torch.equal(y_j, y)
        selves += int((j == idx).sum())
        total += len(idx)
        drawn_for_class_0.update(j[y == 0].tolist())
    rate = selves / total
    assert rate < 0.01, f"self-pair rate {rate:.2%} at {k} classes"  # in-batch pairing: 57%/74%
    assert selves > 0  # with replacement, ≈ 1/300 of draws: the estimate is live
    assert len(drawn_for_class_0) > 10  # ≈ 70 and 36 expected: not one fixed partner


def random_pool(k: int = 4, n: int = 40, pad: int = 2, flip: bool = True) -> TrainingImages:
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return TrainingImages(
        x, torch.arange(n) % k, Normalize((0.5,) * 3, (0.2,) * 3, CPU), pad=pad, flip=flip
    )


def test_partners_get_the_batches_augmentation_from_the_methods_generator():
    pool = random_pool()
    y = torch.tensor([0, 1, 2, 3] * 8)
    method = sc(pool, 4, seed=3)
    replay = torch.Generator()
    replay.set_state(method.state_dict()["torch"])
    x_j, _ = method.partners(torch.zeros(32, 3, 8, 8), y)
    j = pool.same_class(y, replay)
    assert torch.equal(x_j, pool.fetch(j, replay))
    assert not torch.equal(x_j, pool.normalize(pool.x[j]))  # cropped and flipped, not raw


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 8 * 8, 4)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


def test_step_mixes_each_sample_with_its_partner_and_keeps_one_hot_targets():
    pool = random_pool()
    y = torch.tensor([0, 1, 2, 3] * 4)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = Recorder()
    loss, logits = sc(pool, 4, seed=5).step(model, x, y)
    twin = sc(pool, 4, seed=5)
    lam = fold_up(float(twin.rng.beta(1.0)))
    x_j, _ = twin.partners(x, y)
    torch.testing.assert_close(model.seen[0], mix(x, x_j, lam))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"only mixup_sc may use the training images (.{name})")


@pytest.mark.parametrize("name", sorted(set(methods.names()) - {"mixup_sc"}))
def test_other_methods_never_touch_the_training_images(name, batch):
    x, y = batch
    losses = []
    for pool in (Untouchable(), random_pool()):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))
        model.stages = [model]
        m = methods.build(MethodConfig(name), ctx(pool, 4, seed=2))
        losses.append(m.step(model, x, y)[0].item())
    assert losses[0] == losses[1]


def test_mixup_sc_without_training_images_is_refused():
    with pytest.raises(ValueError, match="train_images"):
        sc(None, 4)

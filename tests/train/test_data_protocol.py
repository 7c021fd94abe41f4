"""docs/protocol.md's per-dataset data facts through `study.train.data.split`: the normalisation
statistics (fixed per dataset, or computed from the training part alone), the augmentation each
dataset gets, and `dataset.augment: false` turning it off so training batches are the plain
images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from study.train import data as data_mod
from study.train.config import DataConfig
from study.train.loader import Batches, Normalize

FIXED = {  # docs/protocol.md, "Data": mean / std
    "cifar10": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's (reference quirk)
    "cifar100": ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
    "svhn": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
COMPUTED = ["tiny_imagenet", "imagefolder", "digits"]  # "dataset statistics" of the train part
AUGMENTED = {"cifar10": True, "cifar100": True, "svhn": False, "tiny_imagenet": True}


def raw(n_train: int = 400, n_test: int = 50, channels: int = 3) -> data_mod.RawData:
    """Images whose channels have different, known distributions; the first half of the
    training set is much brighter, so statistics of all of it differ from those of a part."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 120, (n_train, channels, 4, 4)).astype(np.uint8)
    x[: n_train // 2] += 120
    x[:, 0] //= 2
    y = np.arange(n_train) % 10
    return data_mod.RawData(x, y, x[:n_test].copy(), y[:n_test].copy())


@pytest.mark.parametrize("name", FIXED)
def test_fixed_statistics_are_the_protocols(name):
    d = data_mod.split(DataConfig(name, val_size=100), data_mod.get(name), raw())
    assert d.mean == pytest.approx(FIXED[name][0], abs=0) and d.std == pytest.approx(FIXED[name][1])


@pytest.mark.parametrize("name", COMPUTED)
def test_computed_statistics_are_the_training_parts_alone(name):
    cfg = DataConfig(name, val_size=150, train_size=120, split_seed=4)
    r = raw(channels=1 if name == "digits" else 3)
    d = data_mod.split(cfg, data_mod.get(name), r)
    train = d.train_x.double() / 255  # exactly the images trials train on
    mean = train.mean((0, 2, 3))
    std = train.permute(1, 0, 2, 3).flatten(1).std(1, unbiased=False)
    np.testing.assert_allclose(d.mean, mean.numpy(), rtol=1e-9)
    np.testing.assert_allclose(d.std, std.numpy(), rtol=1e-9)
    everything = r.train_x.astype(np.float64) / 255  # val and the unused rest included
    assert np.abs(np.array(d.mean) - everything.mean((0, 2, 3))).max() > 1e-3
    assert len(d.mean) == len(d.std) == d.in_channels


@pytest.mark.parametrize("name", AUGMENTED)
@pytest.mark.parametrize("augment", [True, False])
def test_augmentation_per_dataset_and_switched_off(name, augment):
    d = data_mod.split(DataConfig(name, val_size=100, augment=augment), data_mod.get(name), raw())
    on = augment and AUGMENTED[name]
    assert (d.pad, d.flip) == ((4, True) if on else (0, False))


def test_without_augmentation_training_batches_are_the_plain_images():
    """`augment: false` on a dataset that augments: every training batch is a shuffled set of
    the normalised training images themselves (no crop, no flip); with it, they are not."""
    r = raw(n_train=300)
    seen = {}
    for augment in (False, True):
        d = data_mod.split(
            DataConfig("cifar10", val_size=100, augment=augment), data_mod.get("cifar10"), r
        )
        norm = Normalize(d.mean, d.std, torch.device("cpu"))
        batches = Batches(d.train_x, d.train_y, 64, norm, pad=d.pad, flip=d.flip, seed=0)
        plain = {tuple(v.tolist()) for v in norm(d.train_x).flatten(1)}
        images = torch.cat([xb for xb, _ in batches]).flatten(1)
        seen[augment] = sum(tuple(v.tolist()) in plain for v in images)
    assert seen[False] == 200
    assert seen[True] < 200

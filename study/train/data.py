"""Dataset registry: each split loaded once as a uint8 NCHW tensor, split per docs/protocol.md.

The train/val split is `numpy.random.RandomState(split_seed).permutation(n)`, first part train,
last part val (the reference code's). Normalisation statistics and augmentation are per dataset
(docs/protocol.md, "Data"); CIFAR-10 uses ImageNet's statistics, a quirk of the reference code.
Image folders are decoded once and cached as .npz beside the data (or in the user cache when the
data is read-only). Readers live in `study.train.readers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from study.errors import ConfigError
from study.registry import Registry

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import DataConfig

CACHE_HOME = Path.home() / ".cache" / "mixup-calibration-study"


class DataError(ConfigError):
    """Data missing or unreadable: a user error (exit 2) that says where files must be."""


@dataclass
class RawData:
    """Unsplit uint8 NCHW images and int64 labels of a dataset's train and test parts."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class DatasetSpec:
    """What docs/protocol.md fixes for a dataset; `read(cfg, root)` returns its RawData."""

    read: Callable[[DataConfig, Path], RawData]
    num_classes: int | None  # None: the number of class folders found
    mean: tuple[float, ...] | None  # None: computed from the training images
    std: tuple[float, ...] | None
    pad: int  # zero padding of the random crop; 0 = no crop
    flip: bool  # random horizontal flip
    val_size: int  # default held-out validation size


@dataclass
class SplitData:
    """A dataset split once into train/val/test uint8 tensors: picklable, shared by trials."""

    name: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int
    flip: bool
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}


REGISTRY: Registry[DatasetSpec] = Registry("dataset", ["study.train.readers"])
DATASETS, register, names, get = REGISTRY.entries, REGISTRY.register, REGISTRY.names, REGISTRY.get


def default_root(cfg: DataConfig) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else CACHE_HOME / "data" / cfg.name


@dataclass
class SharedData:
    """A dataset read once and not yet split: what a study's driver shares with every trial
    (Ray's object store), so that trials of one study can differ in `dataset.split_seed` — a
    replicate is a seed *and* a data subset. Every other dataset.* setting is the study's."""

    raw: RawData

    def split(self, cfg: DataConfig) -> SplitData:
        """This trial's train/val/test split of the shared images (`split`)."""
        return split(cfg, get(cfg.name), self.raw)


def read(cfg: DataConfig) -> SharedData:
    """Read `cfg.name`'s images once, unsplit."""
    return SharedData(get(cfg.name).read(cfg, default_root(cfg)))


def load(cfg: DataConfig) -> SplitData:
    """Read `cfg.name` once and split it (train/val seeded, optional train/test subsets)."""
    return read(cfg).split(cfg)


def split(cfg: DataConfig, spec: DatasetSpec, raw: RawData) -> SplitData:
    n = len(raw.train_y)
    val_size = cfg.val_size if cfg.val_size is not None else spec.val_size
    if val_size >= n:
        raise DataError(f"dataset.val_size={val_size} leaves no training data ({cfg.name}: {n})")
    perm = np.random.RandomState(cfg.split_seed).permutation(n)
    train_idx, val_idx = perm[: n - val_size], perm[n - val_size :]
    train_idx = _subset("train_size", cfg.train_size, train_idx)
    test_idx = np.random.RandomState(cfg.split_seed).permutation(len(raw.test_y))
    test_idx = np.sort(_subset("test_size", cfg.test_size, test_idx))
    mean, std = _statistics(spec, raw, train_idx)
    classes = spec.num_classes or int(max(raw.train_y.max(), raw.test_y.max()) + 1)

    def part(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(y[idx]).long()

    train = part(raw.train_x, raw.train_y, train_idx)
    val = part(raw.train_x, raw.train_y, val_idx)
    test = part(raw.test_x, raw.test_y, test_idx)
    return SplitData(
        cfg.name,
        classes,
        mean,
        std,
        spec.pad if cfg.augment else 0,
        spec.flip and cfg.augment,
        *train,
        *val,
        *test,
    )


def _subset(key: str, size: int | None, idx: np.ndarray) -> np.ndarray:
    if size is None:
        return idx
    if size > len(idx):
        raise DataError(f"dataset.{key}={size} is larger than the {len(idx)} images available")
    return idx[:size]


def _statistics(
    spec: DatasetSpec, raw: RawData, train_idx: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The protocol's normalisation, or the training images' per-channel mean and std."""
    if spec.mean is not None and spec.std is not None:
        return spec.mean, spec.std
    x = torch.from_numpy(raw.train_x[np.sort(train_idx)])
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in x.split(4096):
        c = chunk.double().div_(255)
        total += c.sum((0, 2, 3))
        squares += c.pow(2).sum((0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())

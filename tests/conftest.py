"""Shared fixtures: tiny data and models so every test runs in seconds on 2 CPU cores."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from study.train import data as data_mod
from study.train import resolve
from study.train.config import DataConfig, TrialConfig

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10"


def tiny_config(**overrides) -> TrialConfig:
    """A fake-data, width-8 ResNet-18 trial of one short epoch (dotted overrides)."""
    base = {
        "dataset.name": "fake",
        "dataset.train_size": 96,
        "dataset.val_size": 40,
        "dataset.test_size": 40,
        "model.name": "resnet18",
        "model.width": 8,
        "train.epochs": 1,
        "train.batch_size": 32,
        "runtime.device": "cpu",
    }
    return resolve.replace(TrialConfig(), **{**base, **overrides})


@pytest.fixture(scope="session")
def fake_data() -> data_mod.SplitData:
    return data_mod.load(tiny_config().dataset)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """The shared CIFAR-10 JPEG copy, extracted once per session; skips where it is absent."""
    if not (SHARED_CIFAR / "extract.sh").exists():
        pytest.skip("../shared/datasets/cifar10 is absent")
    dest = tmp_path_factory.mktemp("cifar10")
    subprocess.run(["bash", str(SHARED_CIFAR / "extract.sh"), str(dest)], check=True)
    return dest


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 32, 32, generator=g), torch.arange(16) % 4


def data_config(**kw) -> DataConfig:
    return DataConfig(**kw)

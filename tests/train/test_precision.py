"""Numeric precision: fp32 by default and in every spec (the reference code runs fp32); bf16 an
honest opt-in on CPU too; TF32 an opt-in that only CUDA honours."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from study.errors import ConfigError
from study.spec import load_spec
from study.train import models, resolve
from study.train.config import ModelConfig, RuntimeConfig, TrialConfig
from study.train.engine import infer
from study.train.loader import Normalize
from study.train.runtime import Runtime, cpu
from study.train.trial import run_trial

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
CPU = torch.device("cpu")


@pytest.fixture
def tf32_flags():
    """Restore torch's process-wide TF32 flags after the test."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fp32_is_the_default():
    rt = TrialConfig().runtime
    assert rt.bf16 is False and rt.tf32 is False


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_runs_fp32(path):
    spec = load_spec(path)
    varied = [p.name for p in spec.space] + [k for a in spec.grid for s in a.settings for k in s]
    assert not [name for name in varied if name.startswith("runtime.")]
    rt = spec.trial_config(next(spec.corner_params())).runtime
    assert rt.bf16 is False and rt.tf32 is False


def test_bf16_on_cpu_computes_in_bf16():
    torch.manual_seed(0)
    model = models.build(ModelConfig("resnet18", width=8), 10, 3).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        with cpu(bf16=False).autocast():
            assert model(x).dtype == torch.float32
        with cpu(bf16=True).autocast():
            assert model(x).dtype == torch.bfloat16
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    norm = Normalize((0.5,) * 3, (0.25,) * 3, CPU)
    fp32 = infer(model, images, norm, 8, cpu(bf16=False))
    bf16 = infer(model, images, norm, 8, cpu(bf16=True))
    assert bf16.dtype == torch.float32  # cast for the metrics, after a bf16 computation
    rel = ((bf16 - fp32).norm() / fp32.norm()).item()
    assert 1e-4 < rel < 0.1, rel  # bf16 rounding: ~0.4% for a plain pass (docs/study.md)


def test_a_bf16_trial_differs_from_fp32_on_cpu(fake_data, tf32_flags):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    rows = {}
    for bf16 in (False, True):
        cfg = tiny_config(**{"runtime.bf16": bf16, "runtime.tf32": True})
        run_trial(cfg, lambda row, _, b=bf16: rows.setdefault(b, row), data=fake_data)
    assert rows[True]["train_loss"] != rows[False]["train_loss"]
    assert rows[True]["val_nll"] != rows[False]["val_nll"]
    # a CPU trial resets the process-wide flags: TF32 asked for on CPU has no effect
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_tf32_is_set_only_on_cuda(tf32_flags):
    cuda = Runtime(torch.device("cuda"), None, True, True, False, None)  # as built on CUDA
    cuda.apply()
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    Runtime(torch.device("cuda"), None, False, True, False, None).apply()
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    Runtime.build(RuntimeConfig(device="cpu", tf32=True)).apply()  # CPU: never TF32
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_tf32_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="runtime.tf32 must"):
        resolve.trial_config({"runtime": {"tf32": value}})

"""Every registered model: composing `stages` equals `forward`; the paper's parameter count."""

from __future__ import annotations

import pytest
import torch

from study.errors import ConfigError
from study.train import models, resolve
from study.train.config import ModelConfig, TrialConfig

INPUT = {"small_cnn": (1, 8)}  # (channels, size); everything else sees 3×32×32


@pytest.mark.parametrize("name", models.names())
def test_stages_compose_to_forward(name):
    channels, size = INPUT.get(name, (3, 32))
    torch.manual_seed(0)
    model = models.build(ModelConfig(name, width=4), num_classes=7, in_channels=channels).eval()
    x = torch.randn(2, channels, size, size)
    out = x
    for stage in model.stages:
        out = stage(out)
    assert out.shape == (2, 7)
    torch.testing.assert_close(out, model(x))
    assert len(model.stages) >= 3


def test_cifar_resnet18_has_the_reference_parameter_count():
    model = models.build(ModelConfig("resnet18"), num_classes=10, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_cifar_resnets_take_64px_inputs():
    model = models.build(ModelConfig("resnet50", width=4), num_classes=200, in_channels=3)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 200)


@pytest.mark.parametrize(
    "name,blocks", [("resnet110", [3, 4, 26, 3]), ("resnet152", [3, 8, 36, 3])]
)
def test_deep_cifar_resnets_have_the_protocol_blocks(name, blocks):
    model = models.build(ModelConfig(name, width=4), num_classes=10, in_channels=3)
    assert [len(s) for s in model.stages[1:5]] == blocks


def test_pretrained_is_refused_for_models_without_weights():
    with pytest.raises(ConfigError, match="tv_resnet18"):
        resolve.replace(TrialConfig(), **{"model.name": "resnet18", "model.pretrained": True})


def test_pretrained_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import torchvision.models as tvm

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(tvm.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(ConfigError, match="not cached at .*resnet18-"):
        models.build(ModelConfig("tv_resnet18", pretrained=True), 10, 3)

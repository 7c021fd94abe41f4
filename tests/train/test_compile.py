"""`runtime.compile`: every model stage torch.compiled (study.train.models.compile_stages), so
MIT-A's stage-by-stage calls run compiled code, a new λ never compiles a new graph, and checkpoints
keep their keys. A counting backend (it runs the graphs eagerly) keeps this fast on CPU."""

from __future__ import annotations

import torch
from conftest import tiny_config

from study.train import methods, models
from study.train.config import MethodConfig, ModelConfig
from study.train.methods import MethodContext
from study.train.trial import run_trial


class Counter:
    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list):
        self.graphs += 1
        return gm.forward


def test_a_new_lambda_never_recompiles():
    torch.compiler.reset()
    model = models.build(ModelConfig("small_cnn", width=4), 10, 1)
    counter = Counter()
    models.compile_stages(model, backend=counter)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 10
    ctx = MethodContext(10, 0, lambda: x.mean(0), torch.full((10,), 0.1))
    mit_a = methods.build(methods.get("mit_a").normalise(MethodConfig("mit_a")), ctx)
    seen = []
    for _ in range(4):  # MIT-A draws fresh (λ1, λ2) for every stage of every step
        loss, _ = mit_a.step(model, x, y)
        loss.backward()
        seen.append(counter.graphs)
    assert seen[0] > 0  # the stages MIT-A calls one by one are compiled
    assert seen == [seen[0]] * 4  # and no new λ compiled anything new


def test_runtime_compile_compiles_the_trial_model(monkeypatch, fake_data):
    counter, compiled = Counter(), []
    real = models.compile_stages

    def recording(model, **options):
        compiled.append(model)
        real(model, backend=counter)

    monkeypatch.setattr(models, "compile_stages", recording)
    torch.compiler.reset()
    states = []
    cfg = tiny_config(**{"runtime.compile": True, "runtime.channels_last": False})
    outcome = run_trial(cfg, lambda row, state: states.append(state()), data=fake_data)
    assert outcome.status == "ok" and len(compiled) == 1 and counter.graphs > 0
    eager = models.build(cfg.model, fake_data.num_classes, fake_data.in_channels)
    assert list(states[-1]["model"]) == list(eager.state_dict())  # checkpoints unchanged
    assert run_trial(tiny_config(), data=fake_data).status == "ok" and len(compiled) == 1

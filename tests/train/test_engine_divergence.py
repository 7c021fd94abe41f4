"""The divergence check's step arithmetic (study.train.engine): losses stay on the device and are
checked a window at a time (every step on CPU, every 50 on CUDA); the step reported is the first
non-finite one, 1-based within the epoch, whatever the window; the epoch's mean loss is the same
whatever the window. Run on CPU with the GPU's interval passed explicitly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from study.train.config import RuntimeConfig
from study.train.engine import Diverged, check_interval, train_epoch
from study.train.runtime import Runtime

STEPS = 120  # more than two windows of 50, and a partial last window of 20


class NanAt:
    """A cross-entropy method whose loss is NaN from step `bad` on (None: never); records how
    many steps ran, so the test sees when the check fired."""

    def __init__(self, bad: int | None):
        self.bad, self.steps = bad, 0

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        self.steps += 1
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if self.bad is not None and self.steps >= self.bad:
            loss = loss * float("nan")
        return loss, logits

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def batches(n: int = STEPS, size: int = 4, device: str = "cpu") -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(size, 6, generator=g), torch.arange(size) % 3) for _ in range(n)]
    return [(x.to(device), y.to(device)) for x, y in data]


def epoch(method: NanAt, check_every: int | None, device: str = "cpu"):
    torch.manual_seed(0)
    model = nn.Linear(6, 3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_epoch(
        method,
        model,
        opt,
        batches(device=device),
        Runtime.build(RuntimeConfig(device)),
        check_every=check_every,
    )


def test_the_interval_is_one_on_cpu_and_fifty_on_cuda():
    assert check_interval(torch.device("cpu")) == 1
    assert check_interval(torch.device("cuda")) == 50
    assert check_interval(torch.device("cuda:1")) == 50


@pytest.mark.parametrize("bad", [1, 2, 49, 50, 51, 73, 99, 100, 101, 117, 120])
@pytest.mark.parametrize("every", [1, 50, 7])
def test_the_first_non_finite_step_is_reported(bad, every):
    method = NanAt(bad)
    with pytest.raises(Diverged) as caught:
        epoch(method, every)
    assert caught.value.step == bad
    # the check fires at the end of the window holding `bad`, or after the last step
    assert method.steps == min(math.ceil(bad / every) * every, STEPS)


def test_the_default_interval_on_cpu_stops_at_the_bad_step():
    method = NanAt(37)
    with pytest.raises(Diverged) as caught:
        epoch(method, None)
    assert caught.value.step == 37 and method.steps == 37


@pytest.mark.parametrize("every", [50, 7, STEPS, 500])
def test_the_epoch_loss_does_not_depend_on_the_window(every):
    ref = epoch(NanAt(None), 1)
    stats = epoch(NanAt(None), every)
    assert stats.samples == ref.samples == STEPS * 4
    assert stats.loss == pytest.approx(ref.loss, rel=1e-6)
    assert stats.acc == ref.acc
    # the mean of the per-step losses, computed by hand with the same updates
    torch.manual_seed(0)
    model, total = nn.Linear(6, 3), 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
    assert stats.loss == pytest.approx(total / (STEPS * 4), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bad", [1, 50, 51, 73, 117])
def test_on_cuda_the_default_interval_is_fifty(bad):
    method = NanAt(bad)
    with pytest.raises(Diverged) as caught:
        epoch(method, None, "cuda")
    assert caught.value.step == bad
    assert method.steps == min(math.ceil(bad / 50) * 50, STEPS)

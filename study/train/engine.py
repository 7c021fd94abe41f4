"""The two passes of an epoch: `train_epoch` (method.step over the batches) and `infer` (one
logits pass over a split, feeding every metric), and the trial's numeric precision.

Precision (docs/study.md, "Precision"): fp32 by default, as the reference code. `bf16` runs both
passes under bf16 autocast, on CUDA and on CPU alike; its logits are computed in bf16 and only
then cast to fp32, so the metrics see bf16-rounded logits. `tf32` lets CUDA matmuls and
convolutions use TF32 (CPU has none).

Divergence is checked without a host sync per step: per-step losses stay on the device and are
checked every `check_interval(device)` steps (every step on CPU, where a sync is free; every
50 on CUDA), and the first non-finite step of a window is the one reported.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from study.train.loader import Normalize, eval_batches
from study.train.methods import Method
from study.train.runtime import Runtime


class Diverged(RuntimeError):
    """A non-finite training loss; `step` is 1-based within the epoch."""

    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


@dataclass
class EpochStats:
    loss: float
    acc: float
    samples: int
    seconds: float


def train_epoch(
    method: Method,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    runtime: Runtime,
    progress=None,
    check_every: int | None = None,
) -> EpochStats:
    """One pass of `method.step` and SGD over `batches`; raises Diverged on a non-finite loss.
    `check_every`: steps between finiteness checks (None: `check_interval(device)`)."""
    device = runtime.device
    model.train()
    check_every = check_every or check_interval(device)
    window = _LossWindow(device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen, start = 0, time.perf_counter()
    for x, y in batches:
        with runtime.autocast():
            loss, logits = method.step(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.add(loss.detach().float() * len(y))
        correct += logits.detach().argmax(1).eq(y).sum()
        seen += len(y)
        if len(window.pending) >= check_every:
            window.check()
        if progress is not None:
            progress.update(1)
    window.check()
    return EpochStats(
        float(window.total) / max(seen, 1),
        int(correct) / max(seen, 1),
        seen,
        time.perf_counter() - start,
    )


def check_interval(device: torch.device) -> int:
    """Steps between divergence checks: 1 on CPU (a sync is free), 50 elsewhere (one host sync
    per 50 steps instead of one per step)."""
    return 1 if device.type == "cpu" else 50


class _LossWindow:
    """Per-step (loss × batch size) on the device, checked for finiteness a window at a time."""

    def __init__(self, device: torch.device):
        self.pending: list[torch.Tensor] = []
        self.checked = 0
        self.total = torch.zeros((), device=device)

    def add(self, weighted_loss: torch.Tensor) -> None:
        self.pending.append(weighted_loss)

    def check(self) -> None:
        if not self.pending:
            return
        window = torch.stack(self.pending)
        finite = torch.isfinite(window)
        if not bool(finite.all()):
            raise Diverged(self.checked + int((~finite).nonzero()[0, 0]) + 1)
        self.total += window.sum()
        self.checked += len(self.pending)
        self.pending.clear()


@torch.inference_mode()
def infer(
    model: nn.Module,
    x: torch.Tensor,
    normalize: Normalize,
    batch_size: int,
    runtime: Runtime,
) -> torch.Tensor:
    """Logits of every image of a uint8 split, in order, un-augmented, as fp32 (under bf16
    autocast computed in bf16, then cast)."""
    model.eval()
    out = []
    with runtime.autocast():
        for xb in eval_batches(x, batch_size, normalize):
            out.append(model(xb).float())
    return torch.cat(out)

"""`run_trial`: the epoch loop shared by Ray Tune and `study trial`.

Per epoch (docs/protocol.md, "Training" and "Metrics"): train with the method → one logits pass on
validation and one on test → every metric column of the Parquet contract → `on_epoch(row,
state_fn)`. `state_fn()` returns the full checkpoint (model, optimiser, scheduler and every RNG
state); passing it back as `resume` continues with the same numbers as an uninterrupted run.
A non-finite loss ends the trial with status "diverged" instead of continuing or crashing.
"""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from study.results.schema import STATUS_DIVERGED, STATUS_OK
from study.train import data as data_mod
from study.train import methods, models
from study.train.config import TrainConfig, TrialConfig
from study.train.engine import Diverged, infer, train_epoch
from study.train.identity import trial_columns
from study.train.loader import Batches, Normalize
from study.train.metrics import epoch_metrics, halves
from study.train.runtime import Runtime

OnEpoch = Callable[[dict[str, Any], Callable[[], dict[str, Any]]], None]


@dataclass
class TrialOutcome:
    status: str  # "ok" or "diverged"
    epochs_done: int  # epochs completed with status ok
    message: str  # "" or "diverged at epoch e, step s"
    last_row: dict[str, Any] | None


class _Trial:
    """The live objects of one trial: model, optimiser, schedule, method and batches."""

    def __init__(self, cfg: TrialConfig, data: data_mod.SplitData):
        self.cfg, self.data = cfg, data
        self.runtime = run = Runtime.build(cfg.runtime, images=data.train_x.dim() == 4)
        self.device, t = run.device, cfg.train
        run.apply()
        torch.manual_seed(t.seed)
        self.model = models.build(cfg.model, data.num_classes, data.in_channels)
        self.model.to(self.device, memory_format=run.memory_format)
        if run.compile:
            models.compile_stages(self.model)
        self.normalize = Normalize(data.mean, data.std, self.device, run.channels_last)
        self.optimizer = sgd(self.model, t)
        self.scheduler = step_schedule(self.optimizer, t)
        train_x = data.train_x.to(self.device)
        self.batches = Batches(
            train_x,
            data.train_y.to(self.device),
            t.batch_size,
            self.normalize,
            pad=data.pad,
            flip=data.flip,
            seed=t.seed,
        )
        self.val = (data.val_x.to(self.device), data.val_y.to(self.device))
        self.test = (data.test_x.to(self.device), data.test_y.to(self.device))
        self.folds = halves(len(data.val_y), cfg.dataset.split_seed)
        ctx = methods.MethodContext(
            num_classes=data.num_classes,
            seed=t.seed + 1,
            mean_input=lambda: self._mean_input(train_x),
            mean_target=torch.bincount(data.train_y, minlength=data.num_classes).float()
            / len(data.train_y),
            train_images=self.batches.images,
        )
        self.method = methods.build(cfg.method, ctx)

    def _mean_input(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(chunk.float().sum(0) for chunk in x.split(4096))
        return (total / len(x)) * self.normalize.scale + self.normalize.shift

    def state(self, epoch: int) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "batches": self.batches.state_dict(),
                "method": self.method.state_dict(),
                "torch_rng": torch.get_rng_state(),
            }
        )

    def restore(self, state: dict[str, Any]) -> int:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.batches.load_state_dict(state["batches"])
        self.method.load_state_dict(state["method"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"])

    def identity(self, epoch: int) -> dict[str, Any]:
        return {
            **trial_columns(self.cfg),
            "epoch": epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "device": str(self.device),
            "hostname": socket.gethostname(),
        }

    def epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        row = self.identity(epoch)
        start = time.perf_counter()
        bar = tqdm(
            total=len(self.batches),
            desc=f"epoch {epoch}/{self.cfg.train.epochs}",
            unit="step",
            leave=False,
            disable=not progress,
        )
        with bar:
            stats = train_epoch(
                self.method,
                self.model,
                self.optimizer,
                self.batches,
                self.runtime,
                bar,
            )
        self.scheduler.step()
        bs, run = self.cfg.train.eval_batch_size, self.runtime
        val_logits = infer(self.model, self.val[0], self.normalize, bs, run)
        test_logits = infer(self.model, self.test[0], self.normalize, bs, run)
        metrics = epoch_metrics(
            (val_logits, self.val[1]), (test_logits, self.test[1]), self.folds, self.cfg.calibration
        )
        return {
            **row,
            **metrics,
            "status": STATUS_OK,
            "message": "",
            "train_loss": stats.loss,
            "train_acc": stats.acc,
            "epoch_seconds": time.perf_counter() - start,
            "samples_per_second": stats.samples / max(stats.seconds, 1e-9),
        }


def _no_checkpoint() -> dict[str, Any]:
    raise RuntimeError("a diverged epoch has no checkpoint")


def run_trial(
    cfg: TrialConfig,
    on_epoch: OnEpoch | None = None,
    resume: dict[str, Any] | None = None,
    data: data_mod.SplitData | None = None,
    progress: bool = False,
) -> TrialOutcome:
    """Train `cfg` for its epochs (from `resume`'s epoch on), calling `on_epoch` after each."""
    data = data if data is not None else data_mod.load(cfg.dataset)
    trial = _Trial(cfg, data)
    done = trial.restore(resume) if resume else 0
    row = None
    for epoch in range(done + 1, cfg.train.epochs + 1):
        try:
            row = trial.epoch(epoch, progress)
        except Diverged as d:
            message = f"diverged at epoch {epoch}, step {d.step}"
            row = {**trial.identity(epoch), "status": STATUS_DIVERGED, "message": message}
            if on_epoch:
                on_epoch(row, _no_checkpoint)
            return TrialOutcome(STATUS_DIVERGED, epoch - 1, message, row)
        if on_epoch:
            on_epoch(row, lambda e=epoch: trial.state(e))
    return TrialOutcome(STATUS_OK, cfg.train.epochs, "", row)


def sgd(model: torch.nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimiser (docs/protocol.md, "Training"): SGD with momentum and weight decay."""
    return torch.optim.SGD(
        model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
    )


def step_schedule(
    optimizer: torch.optim.Optimizer, t: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """The paper's schedule: the lr times `gamma` at each milestone epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(t.milestones), gamma=t.gamma
    )

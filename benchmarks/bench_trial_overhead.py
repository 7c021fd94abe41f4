"""A `study trial` epoch vs a bare loop of the same model, method and batches (issue 2; target
≤ 1.10×). Both train one epoch with the same Batches and method.step, then run one logits pass
over validation and test; the trial also computes every metric of the Parquet contract
(accuracy, NLL, ECE, four temperature fits, Brier, bin statistics). The two alternate
`--repeats` times and the fastest of each is compared (the machine is shared and noisy).
Run: .venv/bin/python benchmarks/bench_trial_overhead.py [--method mit_a]
"""

from __future__ import annotations

import argparse
import time

import torch

from study.train import data as data_mod
from study.train import methods, models, resolve
from study.train.config import RuntimeConfig, TrialConfig
from study.train.engine import infer
from study.train.loader import Batches, Normalize
from study.train.runtime import Runtime
from study.train.trial import run_trial


def bare_epoch(cfg: TrialConfig, data: data_mod.SplitData) -> float:
    """A researcher's plain loop: model, SGD, the same batches and method, one eval pass."""
    torch.manual_seed(cfg.train.seed)
    dev = torch.device("cpu")
    model = models.build(cfg.model, data.num_classes, data.in_channels)
    model.to(memory_format=torch.channels_last)
    norm = Normalize(data.mean, data.std, dev, channels_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = Batches(data.train_x, data.train_y, 128, norm, pad=data.pad, flip=data.flip)
    ctx = methods.MethodContext(
        data.num_classes, 1, lambda: torch.zeros(1), torch.zeros(1), batches.images
    )
    method = methods.build(cfg.method, ctx)
    start = time.perf_counter()
    model.train()
    for x, y in batches:
        loss, _ = method.step(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for x, y in ((data.val_x, data.val_y), (data.test_x, data.test_y)):
        logits = infer(model, x, norm, 500, Runtime.build(RuntimeConfig(device="cpu")))
        float(logits.argmax(1).eq(y).float().mean())
    return time.perf_counter() - start


def trial_epoch(cfg: TrialConfig, data: data_mod.SplitData) -> float:
    rows = []
    run_trial(cfg, lambda row, _: rows.append(row), data=data)
    return rows[0]["epoch_seconds"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="erm")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    cfg = resolve.replace(
        TrialConfig(),
        **{
            "dataset.name": "fake",
            "dataset.train_size": 2000,
            "dataset.val_size": 500,
            "dataset.test_size": 1000,
            "model.width": 16,
            "train.epochs": 1,
            "method.name": args.method,
            "runtime.device": "cpu",
        },
    )
    data = data_mod.load(cfg.dataset)
    bare, trial = [], []
    for _ in range(args.repeats):
        bare.append(bare_epoch(cfg, data))
        trial.append(trial_epoch(cfg, data))
    b, t = min(bare), min(trial)
    print(f"{args.method}, ResNet-18 width 16, 2,000 train / 500 val / 1,000 test fake images, CPU")
    print(f"  bare loop epoch: {b:.2f} s  study trial epoch: {t:.2f} s (best of {args.repeats})")
    print(f"  all bare: {[round(v, 2) for v in bare]}  all trial: {[round(v, 2) for v in trial]}")
    print(f"ratio trial/bare: {t / b:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()

"""What bf16 costs in fidelity (issue 7): the error it puts into MIT's decoupling, and the
accuracy / ECE / calibrated ECE of the same trials in fp32 and bf16, measured in one run.

(a) Relative logit error ‖f_bf16 − f_fp32‖ / ‖f_fp32‖ of a random CIFAR ResNet-18 for a plain
    forward pass (eval and training mode) and, in training mode as MIT runs, for the outputs
    recovered by Eq. 4 (`decouple`) at λ1 − λ2 = Δλ: MIT-L (decoupled at the logits) and MIT-A
    (mixed and decoupled around every stage, the same (λ1, λ2) at each). bf16 is CPU autocast
    here; CUDA autocast casts the same convolutions and matmuls: expect errors of that order.
(b) The same trials (same seed, data, schedule) in fp32 and under bf16 autocast, beside the same
    fp32 trial with another seed, so the bf16 difference can be read against seed noise.

Run: .venv/bin/python benchmarks/bench_precision.py [--root /work/data/cifar10] [--skip-trials |
--skip-decoupling] (without --root: the `fake` dataset's random images).
"""

from __future__ import annotations

import argparse

import torch

from study.train import data as data_mod
from study.train import models, resolve
from study.train.config import ModelConfig, TrialConfig
from study.train.loader import Normalize
from study.train.methods.mixing import decouple, mix
from study.train.runtime import cpu
from study.train.trial import run_trial

DELTAS = (0.6, 0.3, 0.1, 0.03, 0.01, 0.005)
CPU = torch.device("cpu")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@torch.no_grad()
def decoupled(model: torch.nn.Module, stages, a, b, lam1: float, lam2: float, bf16: bool):
    """out_a after mixing at λ1, λ2 and decoupling around each of `stages` (MIT's step)."""
    with cpu(bf16).autocast():
        for stage in stages:
            a, b = decouple(stage(mix(a, b, lam1)), stage(mix(a, b, lam2)), lam1, lam2)
    return a


def decoupling_error(images: torch.Tensor, width: int, classes: int) -> None:
    torch.manual_seed(0)
    model = models.build(ModelConfig("resnet18", width=width), classes, images.shape[1]).train()
    a, b = images[: len(images) // 2], images[len(images) // 2 :]
    print(f"(a) random ResNet-18 (width {width}), batch {len(a)}, CPU autocast")
    for mode in ("eval", "train"):
        model.train(mode == "train")
        with torch.no_grad(), cpu(True).autocast():
            plain_bf16 = model(a)
        with torch.no_grad():
            print(
                f"    plain forward pass, {mode} mode: relative logit error "
                f"{rel(plain_bf16, model(a)):.2%}"
            )
    print("    decoupled outputs (training mode, as MIT runs):")
    print("    | Δλ (λ1, λ2) | MIT-L: decoupled logits | MIT-A: decoupled at every stage |")
    print("    |---|---|---|")
    for d in DELTAS:
        lam1, lam2 = 0.5 + d / 2, 0.5 - d / 2
        errs = []
        for stages in ([model], list(model.stages)):
            ref = decoupled(model, stages, a, b, lam1, lam2, bf16=False)
            errs.append(rel(decoupled(model, stages, a, b, lam1, lam2, bf16=True), ref))
        print(f"    | {d} ({lam1:.4g}, {lam2:.4g}) | {errs[0]:.2%} | {errs[1]:.2%} |")


def trials(base: TrialConfig, data: data_mod.SplitData, methods: list[str]) -> None:
    print(
        f"(b) {base.dataset.name} ({data.sizes()}), ResNet-18 width {base.model.width}, "
        f"{base.train.epochs} epochs, batch {base.train.batch_size}, CPU; test metrics, last epoch"
    )
    print("    | method | run | test acc | test ECE | test cal. ECE | T | train s |")
    print("    |---|---|---|---|---|---|---|")
    for method in methods:
        runs = {"fp32 seed 0": {}, "bf16 seed 0": {"runtime.bf16": True}}
        runs["fp32 seed 1"] = {"train.seed": 1}
        for label, extra in runs.items():
            cfg = resolve.replace(base, **{"method.name": method, **extra})
            rows: list[dict] = []
            run_trial(cfg, lambda row, _, rows=rows: rows.append(row), data=data)
            r, secs = rows[-1], sum(x["epoch_seconds"] for x in rows)
            print(
                f"    | {method} | {label} | {r['test_acc']:.2%} | {r['test_ece']:.2%} | "
                f"{r['test_cal_ece']:.2%} | {r['temperature']:.2f} | {secs:.0f} |",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="an image-folder CIFAR-10 (train/, test/); default: fake data")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 width for (a)")
    p.add_argument("--trial-width", type=int, default=8, help="ResNet-18 width for (b)")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--methods", default="erm,mit_a")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-trials", action="store_true", help="only (a)")
    p.add_argument("--skip-decoupling", action="store_true", help="only (b)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = {"dataset.name": "imagefolder", "dataset.root": args.root} if args.root else {}
    base = resolve.replace(
        TrialConfig(),
        **{
            "dataset.name": "fake",
            **dataset,
            "dataset.train_size": args.train_size,
            "dataset.val_size": 1000,
            "dataset.test_size": 2000,
            "model.width": args.trial_width,
            "train.epochs": args.epochs,
            "train.milestones": [max(args.epochs - 1, 1)],
            "runtime.device": "cpu",
            "runtime.threads": args.threads,
        },
    )
    data = data_mod.load(base.dataset)
    norm = Normalize(data.mean, data.std, CPU)
    if not args.skip_decoupling:
        decoupling_error(norm(data.val_x[:64]), args.width, data.num_classes)
    if not args.skip_trials:
        trials(base, data, args.methods.split(","))


if __name__ == "__main__":
    main()

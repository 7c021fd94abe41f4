"""GPU readiness in one run (issue 8): the paper's CIFAR ResNet-18 (width 64, batch 128, 32×32)
training images/s for ERM and MIT-A in fp32, TF32 and bf16, eager and with `runtime.compile`
(study.train.models.compile_stages); 4 trials packed on one GPU (4 processes, as `resources.gpu:
0.25` runs them) vs 1; `fit_temperature` vs the reference code's loop on the GPU. Prints the
ratios and the goals: ERM ≥ 30,000 img/s in bf16 (H200), MIT-A's step ≤ 2.2× ERM's, 4 packed
trials ≥ 1.5× one trial's throughput. Without a CUDA device it says so and exits 0.
Run: .venv/bin/python benchmarks/bench_gpu.py [--steps 30] [--no-compile] [--no-pack]
"""

from __future__ import annotations

import argparse
import time

import torch

GOAL_ERM_BF16, GOAL_MIT_RATIO, GOAL_PACK = 30_000, 2.2, 1.5
BATCH = 128


def setup(method: str, device: torch.device, compiled: bool, seed: int = 0):
    """Model, method and SGD of a paper trial, and one random CIFAR-shaped batch on `device`."""
    from study.train import methods, models
    from study.train.config import MethodConfig, ModelConfig
    from study.train.methods import MethodContext

    torch.manual_seed(seed)
    model = models.build(ModelConfig("resnet18"), 10, 3).to(
        device, memory_format=torch.channels_last
    )
    if compiled:
        models.compile_stages(model)
    x = torch.randn(BATCH, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,), device=device)
    ctx = MethodContext(10, seed, lambda: x.mean(0), torch.full((10,), 0.1, device=device))
    m = methods.build(methods.get(method).normalise(MethodConfig(method)), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return model, m, opt, x, y


def images_per_second(method: str, precision: str, compiled: bool, steps: int) -> float:
    """Training throughput of one trial (forward, backward, SGD), after 5 warm-up steps."""
    from study.train.config import RuntimeConfig
    from study.train.runtime import Runtime

    rt = RuntimeConfig(device="cuda", bf16=precision == "bf16", tf32=precision == "tf32")
    run = Runtime.build(rt)
    run.apply()
    device = run.device
    model, m, opt, x, y = setup(method, device, compiled)
    model.train()

    def step() -> None:
        with run.autocast():
            loss, _ = m.step(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - start)


def _packed_worker(steps: int, barrier, queue) -> None:
    barrier.wait()
    queue.put(images_per_second("erm", "bf16", False, steps))


def packed(n: int, steps: int) -> float:
    """Aggregate ERM bf16 images/s of `n` trial processes sharing the GPU, started together."""
    ctx = torch.multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_packed_worker, args=(steps, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def temperature_speedup() -> tuple[float, float]:
    """(reference loop seconds, fit_temperature seconds) on 5,000 × 10 logits on the GPU."""
    from bench_temperature import reference_fit

    from study.train.calibration import fit_temperature

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (5000,), generator=g)
    logits = torch.randn(5000, 10, generator=g) * 3
    logits[torch.arange(5000), labels] += 3
    logits, labels = logits.cuda(), labels.cuda()
    fit_temperature(logits, labels)
    torch.cuda.synchronize()
    start = time.perf_counter()
    reference_fit(logits, labels)
    ref = time.perf_counter() - start
    start = time.perf_counter()
    fit_temperature(logits, labels)
    torch.cuda.synchronize()
    return ref, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    p.add_argument("--no-pack", action="store_true", help="skip 4 packed trials vs 1")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: bench_gpu.py measures GPU training and has nothing to do here")
        return 0
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; ResNet-18, batch {BATCH}")
    rate = {}
    for compiled in (False, True) if not args.no_compile else (False,):
        for precision in ("fp32", "tf32", "bf16"):
            for method in ("erm", "mit_a"):
                r = images_per_second(method, precision, compiled, args.steps)
                rate[method, precision, compiled] = r
                tag = "compiled" if compiled else "eager"
                print(f"  {method:6s} {precision:5s} {tag:8s} {r:9,.0f} img/s", flush=True)
    best = max(
        (c for c in (False, True) if ("erm", "bf16", c) in rate),
        key=lambda c: rate["erm", "bf16", c],
    )
    erm, mit = rate["erm", "bf16", best], rate["mit_a", "bf16", best]
    print(f"ERM bf16: {erm:,.0f} img/s (goal >= {GOAL_ERM_BF16:,}: {erm >= GOAL_ERM_BF16})")
    ratio = erm / mit
    ok = ratio <= GOAL_MIT_RATIO
    print(f"MIT-A step / ERM step (bf16): {ratio:.2f}x (goal <= {GOAL_MIT_RATIO}: {ok})")
    fp32 = rate["erm", "fp32", False]
    for precision in ("tf32", "bf16"):
        print(f"ERM {precision} / fp32: {rate['erm', precision, False] / fp32:.2f}x")
    if not args.no_compile:
        gain = rate["erm", "bf16", True] / rate["erm", "bf16", False]
        print(f"ERM bf16 compiled / eager: {gain:.2f}x")
    if not args.no_pack:
        one, four = packed(1, args.steps), packed(4, args.steps)
        print(
            f"4 packed trials / 1 (aggregate img/s): {four / one:.2f}x "
            f"({four:,.0f} vs {one:,.0f}; goal >= {GOAL_PACK}: {four / one >= GOAL_PACK})"
        )
    ref, ours = temperature_speedup()
    print(
        f"fit_temperature: reference loop {ref:.3f} s, vectorised {ours:.4f} s: {ref / ours:.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`runtime.compile` on CPU: a training step (method.step, backward, SGD) with every model stage
torch.compiled (study.train.models.compile_stages) vs eager, for ERM and MIT-A (which calls the
stages one by one), as a ratio measured in the same run; and how many graphs get compiled
over several λ values: with the stages compiled and λ applied outside them (what the study
does), and, as the contrast that motivates it, a whole mixup step compiled with λ as a Python
float (a recompile per new λ) or as a tensor (none).
Run: .venv/bin/python benchmarks/bench_compile.py [--batch 32] [--width 16]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from common import best_of

from study.train import methods, models
from study.train.config import MethodConfig, ModelConfig
from study.train.methods import MethodContext

LAMBDAS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95)


class Counter:
    """A torch.compile backend that counts the graphs it is given and runs them eagerly."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        return gm.forward


def step_fn(method_name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    ctx = MethodContext(num_classes=10, seed=0, mean_input=lambda: x.mean(0), mean_target=None)
    method = methods.build(methods.get(method_name).normalise(MethodConfig(method_name)), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss, _ = method.step(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step, steps: int) -> float:
    for _ in range(2):  # warm-up (compilation)
        step()
    return best_of(lambda: [step() for _ in range(steps)], repeats=3) / steps


def mixup_step(model, x, y, lam):
    j = torch.arange(len(y) - 1, -1, -1)
    out = model(lam * x + (1 - lam) * x[j])
    return lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[j])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--counts-only", action="store_true", help="skip the step timings")
    args = p.parse_args()
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    base = models.build(ModelConfig("resnet18", width=args.width), 10, 3)
    print(
        f"CIFAR ResNet-18 width {args.width}, batch {args.batch}, CPU threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}"
    )
    for name in () if args.counts_only else ("erm", "mit_a"):
        eager, compiled = copy.deepcopy(base), copy.deepcopy(base)
        models.compile_stages(compiled)
        t_eager = timed(step_fn(name, eager, x, y), args.steps)
        t_comp = timed(step_fn(name, compiled, x, y), args.steps)
        print(
            f"  {name:6s} step: eager {t_eager * 1e3:7.1f} ms   compiled {t_comp * 1e3:7.1f} ms"
            f"   speed-up {t_eager / t_comp:.2f}x"
        )

    torch.compiler.reset()
    staged = Counter()
    model = copy.deepcopy(base)
    models.compile_stages(model, backend=staged)
    per_lambda = []
    for lam in LAMBDAS:
        mixup_step(model, x, y, lam).backward()
        per_lambda.append(staged.graphs)
    print(
        f"stages compiled, λ outside them: graphs after each of {len(LAMBDAS)} λ values "
        f"{per_lambda} ({len(model.stages)} stages; none new per λ)"
    )
    for kind, wrap in (("a Python float", float), ("a tensor", torch.tensor)):
        torch.compiler.reset()
        whole = Counter()
        fn = torch.compile(mixup_step, backend=whole)
        model = copy.deepcopy(base)
        for lam in LAMBDAS:
            fn(model, x, y, wrap(lam)).backward()
        print(f"whole step compiled, λ as {kind}: {whole.graphs} graphs over {len(LAMBDAS)} λ")


if __name__ == "__main__":
    main()

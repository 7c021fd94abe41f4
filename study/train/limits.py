"""Limits that depend on more than one setting, or on the machine, checked where both are known
and before any work (a ConfigError: one line, exit 2). study.train.config checks each setting alone.

- Milestones that are given (in a spec, a grid axis or `--set`) must each come before
  `train.epochs`: a step after the last epoch never happens, and `epochs: 10, milestones:
  [150, 250]` trains at one lr without a word. The default [150, 250] is the paper's
  350-epoch schedule and is not checked: a short debugging run keeps its lr.
- `runtime.threads` at most the cores of the machine that runs the trial. A spec allows up to
  config.MAX_THREADS (it may be validated on a driver smaller than the workers); `study trial`
  and a local `study run` check this machine's `os.cpu_count()` before anything starts, a
  cluster's `study run` its largest node's CPUs once Ray is up, before any trial.
- `train.batch_size` at most the training images, which are known once the dataset's split
  sizes are (after it is read, before Ray starts), and at least two training images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from study.errors import ConfigError
from study.train.config import TrialConfig


def milestones_given(fixed: Mapping[str, Any], settings: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Whether `train.milestones` is set in nested sections `fixed` or in dotted `settings`."""
    train = fixed.get("train")
    return (isinstance(train, Mapping) and "milestones" in train) or any(
        "train.milestones" in s for s in settings
    )


def check_milestones(cfg: TrialConfig) -> None:
    """Refuse given milestones at or after the last epoch."""
    t = cfg.train
    late = [m for m in t.milestones if m >= t.epochs]
    if late:
        raise ConfigError(
            f"train.milestones {list(t.milestones)} must each come before train.epochs="
            f"{t.epochs} (a step at or after the last epoch never happens): drop {late} or "
            "train longer"
        )


def check_threads(configs: Iterable[TrialConfig], cores: int, machine: str) -> None:
    """Refuse `runtime.threads` above `cores`, the CPUs of `machine` (what runs the trials)."""
    most = max((c.runtime.threads or 0 for c in configs), default=0)
    if most > cores:
        raise ConfigError(
            f"runtime.threads={most:,} but {machine} has {cores} CPU cores: give at most "
            f"{cores} (or leave it out: a trial uses as many threads as resources.cpu)"
        )


def check_fits(configs: Iterable[TrialConfig], train_images: int) -> None:
    """Refuse a training split of fewer than 2 images, or a batch larger than the split."""
    configs = list(configs)
    name = configs[0].dataset.name if configs else "the dataset"
    if train_images < 2:
        raise ConfigError(
            f"the training split of {name} has {train_images} image(s): at least 2 are needed "
            "(lower dataset.val_size, or raise dataset.train_size)"
        )
    most = max((c.train.batch_size for c in configs), default=0)
    if most > train_images:
        raise ConfigError(
            f"train.batch_size={most:,} is larger than the {train_images:,} training images of "
            f"{name}: give a batch_size of at most {train_images:,}"
        )


def largest_node_cpus() -> int:
    """The CPUs of the largest live node of the Ray cluster this process is connected to."""
    import ray

    return int(
        max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    )

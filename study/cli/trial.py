"""`study trial`: one trial in-process, without Ray, for debugging (breakpoints work).

Shows a progress bar per epoch and a metrics line after it; with `--results DIR` it writes the
same per-epoch Parquet rows as a study, to DIR/<trial_id>.e<epoch>.parquet.
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

from study.train import resolve
from study.train.config import TrialConfig, merge_dotted

LINE = (
    "epoch {epoch}/{epochs}  loss {train_loss:.4f}  train_acc {train_acc:.3f}  "
    "val_acc {val_acc:.3f}  test_acc {test_acc:.3f}  test_ece {test_ece:.4f}  "
    "test_cal_ece {test_cal_ece:.4f} (T={temperature:.2f})  test_opt_ece {test_opt_ece:.4f}  "
    "{samples_per_second:.0f} img/s  {epoch_seconds:.1f}s"
)


def trial_config(args: argparse.Namespace) -> TrialConfig:
    """The spec's fixed settings (if any), then every --set on top; given milestones before
    the last epoch and threads within this machine's cores (study.train.limits)."""
    import os

    from study.train.limits import check_milestones, check_threads, milestones_given
    from study.yamlio import parse_sets

    base: dict[str, Any] = {}
    if args.spec is not None:
        from study.spec import load_spec

        base = load_spec(args.spec).trial_dict()
    sets = parse_sets(args.sets)
    cfg = resolve.trial_config(merge_dotted(base, sets))
    if milestones_given(base, [sets]):
        check_milestones(cfg)
    check_threads([cfg], os.cpu_count() or 1, "this machine")
    return cfg


def trial_cli(args: argparse.Namespace) -> int:
    from study.diskfull import one_line
    from study.paths import writable_dir
    from study.results.trial_rows import TrialRows
    from study.train import data as data_mod
    from study.train.limits import check_fits
    from study.train.trial import run_trial

    cfg = trial_config(args)
    if args.results is not None:  # before an epoch trains, not after
        writable_dir(args.results, "--results")
    data = data_mod.load(cfg.dataset)
    check_fits([cfg], len(data.train_y))
    trial_id = f"trial_{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.sizes().items())
    print(
        f"{cfg.method.name} on {cfg.dataset.name} ({sizes}) with {cfg.model.name}, "
        f"{cfg.train.epochs} epochs; trial {trial_id}"
    )
    rows = TrialRows(args.results / f"{trial_id}.parquet") if args.results else None

    def on_epoch(row: dict[str, Any], state_fn) -> None:
        row = {**row, "study": "trial", "trial_id": trial_id, "node_id": "", "gpu_ids": ""}
        if rows is not None:
            rows.put(row)
        print(LINE.format(**row) if row["status"] == "ok" else row["message"], flush=True)

    with one_line(args.results or ".", "free space, then run the trial again"):
        outcome = run_trial(cfg, on_epoch, data=data, progress=not args.quiet)
    if rows is not None:
        print(f"results: {args.results} (trial {trial_id}, a file per epoch)")
    return 0 if outcome.status == "ok" else 1

"""The identity columns of a trial's rows, from its TrialConfig: what it trains, with its
method's settings normalised (α and the margin null where the method has none)."""

from __future__ import annotations

from typing import Any

from study.train import methods
from study.train.config import TrialConfig


def trial_columns(cfg: TrialConfig) -> dict[str, Any]:
    """The columns naming what a trial trains (a TrialConfig's identity), with α and the margin
    null where its method has none (docs/study.md "Results"): also the identity of an error row
    (study.results.schema.IDENTITY names them, in this order)."""
    m = methods.get(cfg.method.name).normalise(cfg.method)
    return {
        "dataset": cfg.dataset.label or cfg.dataset.name,
        "model": cfg.model.name,
        "method": m.name,
        "pretrained": cfg.model.pretrained,
        "alpha": m.alpha,
        "margin": m.margin,
        "constraint": m.constraint if methods.get(m.name).takes_margin else None,
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "config_json": cfg.to_json(),
    }

"""Trials that differ in more than their replicate: a study (or studies read together) may
hold trials of one (dataset, backbone, variant) cell that differ in a setting the labels do
not show (training epochs, model width, a method's ε). Averaged together they would make an
interval of two configurations; `separate` puts each in its own cell, its differing settings
shown in the label ("resnet18 [train.epochs=15]")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

NOT_IDENTITY = ("runtime",)  # config sections that do not change what a trial computes


REPLICATE_SETTINGS = ("train.seed", "dataset.split_seed")  # what differs between replicates
IN_LABELS = {  # settings the dataset, backbone and variant labels already show
    "dataset.name", "dataset.label", "model.name", "model.pretrained",
    "method.name", "method.alpha", "method.margin", "method.constraint",
}  # fmt: skip


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, f"{name}.")
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def _settings(df: pd.DataFrame) -> list[dict[str, str] | None]:
    """Each row's config as flat dotted settings (None where it has no config)."""
    if "config_json" not in df:
        return [None] * len(df)
    configs = df["config_json"].astype(object)
    parsed: dict[str, dict[str, str] | None] = {}
    for text in configs.dropna().unique():
        try:
            config = json.loads(text)
        except (TypeError, ValueError):
            config = None
        parsed[text] = _flat(config) if isinstance(config, dict) else None
    return [parsed.get(c) if isinstance(c, str) else None for c in configs]


def split_seeds(df: pd.DataFrame) -> np.ndarray:
    """Each row's `dataset.split_seed` from its config (−1 where the config does not say)."""
    out = [int(s["dataset.split_seed"]) if s and "dataset.split_seed" in s else -1 for s in
           _settings(df)]  # fmt: skip
    return np.asarray(out, dtype=np.int64)


def mixed_settings(df: pd.DataFrame) -> dict[tuple[str, str, str], list[str]]:
    """Settings that differ between trials of one cell beyond the replicate and the labels:
    {(dataset, backbone, ""): context keys (training, data, model width…)} and
    {(dataset, backbone, variant): method keys (ε, η…)}. Such trials measure different things
    and must never be averaged as replicates (`separate`)."""
    flat = _settings(df)
    out: dict[tuple[str, str, str], list[str]] = {}
    for group, variant_too in ((["dataset", "backbone"], False), (LABEL_CELL, True)):
        for key, rows in df.groupby(group, observed=True, sort=True).indices.items():
            key = tuple(map(str, key)) + (() if variant_too else ("",))
            keys = _differing([flat[i] for i in rows], method=variant_too)
            if keys:
                out[key] = keys
    return out


LABEL_CELL = ["dataset", "backbone", "variant"]


def _differing(settings: list[dict[str, str] | None], method: bool) -> list[str]:
    known = [s for s in settings if s is not None]
    names = sorted({k for s in known for k in s})
    wanted = [
        k
        for k in names
        if k not in IN_LABELS
        and k not in REPLICATE_SETTINGS
        and not k.startswith(NOT_IDENTITY_PREFIXES)
        and k.startswith("method.") == method
    ]
    return [k for k in wanted if len({s.get(k) for s in known}) > 1]


NOT_IDENTITY_PREFIXES = tuple(f"{s}." for s in NOT_IDENTITY)


def separate(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with trials that differ in more than their replicate in separate cells: the
    differing context settings appended to `backbone` ("resnet18 [train.epochs=15]") and
    differing method settings to `variant`, so that no interval averages two configurations.
    A `split_seed` column is added. Idempotent; unchanged labels where nothing differs."""
    df = df.assign(split_seed=split_seeds(df)) if "split_seed" not in df else df
    mixed = mixed_settings(df)
    if not mixed:
        return df
    flat = _settings(df)
    # the variant pass first: its cells are keyed by the backbone labels as they came
    for column, pick in (("variant", lambda k: k[2] != ""), ("backbone", lambda k: k[2] == "")):
        cells = {k[:2] if k[2] == "" else k: v for k, v in mixed.items() if pick(k)}
        if not cells:
            continue
        group = ["dataset", "backbone"] if column == "backbone" else LABEL_CELL
        labels = df[column].astype(str).copy()
        for key, rows in df.groupby(group, observed=True, sort=False).indices.items():
            keys = cells.get(tuple(map(str, key)))
            for i in rows if keys else ():
                shown = ", ".join(f"{k}={(flat[i] or {}).get(k, '?')}" for k in keys)
                labels.iloc[i] = f"{labels.iloc[i]} [{shown}]"
        df = df.assign(**{column: _ordered(df[column], labels)})
    return df


def _ordered(old: pd.Series, new: pd.Series) -> pd.Categorical:
    """`new` labels as an ordered categorical, in `old`'s category order then by name."""
    if isinstance(old.dtype, pd.CategoricalDtype):
        rank = dict(zip(old.cat.categories, range(len(old.cat.categories)), strict=True))
        place = pd.DataFrame({"new": new.to_numpy(), "rank": old.map(rank).astype(float)})
        order = place.sort_values(["rank", "new"])["new"].drop_duplicates().tolist()
    else:
        order = sorted(new.unique())
    return pd.Categorical(new.to_numpy(), categories=order, ordered=True)

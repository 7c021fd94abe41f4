"""Which trials the report counts: a repeated trial once, a searched method by its best trial.

Repeats. Two trials with the same configuration and seed (the `config_json` without its
`runtime` section, which says where and how fast a trial ran, not what it computed; the label
columns and seed where a row has no config) measure the same thing twice. Counting both would
treat a rerun as a second seed and narrow every interval, so `drop_repeats` keeps the first
(by study and trial id) and says how many it dropped.

Searched methods. A study that searches α or Δλ over a continuous range (Optuna's TPE or
NSGA-II, `float:` in the spec's `space`) runs a method at many values, about one trial each; a
table column per value would be a column per trial (`MIT-L (Δλ>0.0881898, α=0.11796)`).
`collapse_searched` keeps, per (dataset, backbone, seed) and searched method, the trial that is
best by the study's validation objectives (in the spec's order, each breaking the previous
one's ties; test metrics never choose), and labels it "Mixup (best of 7)". Which
methods are searched comes from the study's `spec.yaml` when the results sit in a study
directory, else from the data: a method with more than `MAX_LEVELS` (α, Δλ) values.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.load import LABEL_KEYS, TRIAL_KEYS
from analysis.settings import NOT_IDENTITY, split_seeds
from analysis.variants import METHOD_NAMES, combination_codes
from study.results.schema import STATUS_OK

SEARCHED_PARAMS = ("method.alpha", "method.margin")  # the spec keys that make a method searched
MAX_LEVELS = 5  # without a spec: more (α, Δλ) values than this for one method = searched
DEFAULT_OBJECTIVES = (("val_acc", "max"), ("val_cal_ece", "min"))  # the demo's, the paper's
SPEC_FILE = "spec.yaml"  # written by `study run` beside results/ (study/tune.py)


@dataclass(frozen=True)
class Search:
    """What a study searched: its objectives and the methods whose α/Δλ were continuous."""

    objectives: tuple[tuple[str, str], ...] = DEFAULT_OBJECTIVES  # (column, "max" | "min")
    methods: frozenset[str] | None = None  # searched methods; None: judge from the data
    source: str = f"no spec.yaml found; searched = more than {MAX_LEVELS} (α, Δλ) values"

    def selecting(self, metric: str | None) -> Search:
        """This search with `metric` first (`analysis report --select`): the best trial is the
        one best by it; the other objectives only break its exact ties."""
        if not metric:
            return self
        mode = dict(self.objectives).get(metric) or ("max" if metric.endswith("acc") else "min")
        rest = tuple(o for o in self.objectives if o[0] != metric)
        return replace(self, objectives=((metric, mode), *rest))

    def rule(self) -> str:
        """How the best trial is picked, in words (the report says it; never silent)."""
        (first, mode), *rest = self.objectives
        words = f"the {'highest' if mode == 'max' else 'lowest'} {first} (validation)"
        if rest:
            words += "; " + ", then ".join(c for c, _ in rest) + " only break exact ties"
        return words


def read_search(results: str | Path) -> Search:
    """The search of the study `results` belong to, from `<study>/spec.yaml` (the results dir's
    parent, or the path itself when it is a study dir); the default Search without one."""
    path = Path(results)
    spec = next((p / SPEC_FILE for p in (path, path.parent) if (p / SPEC_FILE).is_file()), None)
    if spec is None:
        return Search()
    try:
        raw = yaml.safe_load(spec.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return Search()
    raw = raw if isinstance(raw, dict) else {}
    search = raw.get("search") or {}
    listed = search.get("objectives") if isinstance(search, dict) else None
    listed = listed if isinstance(listed, list) else [listed] if isinstance(listed, dict) else []
    objectives = tuple(
        (str(o.get("metric", "val_acc")), str(o.get("mode", "max")))
        for o in listed
        if isinstance(o, dict)
    )
    return Search(
        objectives=objectives or (("val_acc", "max"),),
        methods=frozenset(_searched_methods(raw.get("space") or {})),
        source=f"{spec}",
    )


def _searched_methods(space: dict) -> set[str]:
    """Methods whose α or margin the spec's `space` draws from a continuous (`float`) range."""
    methods: set[str] = set()
    choices = space.get("method.name", {})
    all_methods = set(choices.get("choices", [])) if isinstance(choices, dict) else set()
    for key in SEARCHED_PARAMS:
        param = space.get(key)
        if not isinstance(param, dict) or "float" not in param:
            continue
        when = (param.get("when") or {}).get("method.name")
        methods |= set(when) if when else all_methods or {"*"}
    return methods


def identity(df: pd.DataFrame) -> pd.Series:
    """What a trial computed, as one string per row: its config without `NOT_IDENTITY`
    sections (seed included), or its label columns and seed where the config is null."""
    keys = [k for k in [*LABEL_KEYS, "constraint", "seed"] if k in df]
    codes = combination_codes(df, keys) if len(df) else np.zeros(0, np.int64)
    fallback = pd.Series([f"labels {c}" for c in codes], index=df.index, dtype=object)
    if "config_json" not in df:
        return fallback
    configs = df["config_json"].astype(object)
    unique = {c: _canonical(c) for c in configs.dropna().unique()}
    return configs.map(unique).fillna(fallback)


def _canonical(text: str) -> str | None:
    try:
        config = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return json.dumps({k: v for k, v in config.items() if k not in NOT_IDENTITY}, sort_keys=True)


def repeats(df: pd.DataFrame) -> pd.DataFrame:
    """The rows (one per trial) that repeat an earlier trial's configuration and seed, with
    `first`: the trial id they repeat."""
    ids = identity(df)
    first = df.groupby(ids.to_numpy(), sort=False)["trial_id"].transform("first")
    return df[ids.duplicated()].assign(first=first[ids.duplicated()].astype(str))


def drop_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial, each configuration and seed once (the first trial that ran it)."""
    return df[~identity(df).duplicated()]


def searched(df: pd.DataFrame, search: Search) -> list[str]:
    """The methods of `df` whose variants are collapsed to their best trial (module docstring);
    never one without α and Δλ (ERM stays ERM)."""
    tuned = df[df["alpha"].notna() | df["margin"].notna()]
    levels = tuned.groupby(tuned["method"].astype(str))["variant"].nunique()
    if search.methods is None:
        return sorted(m for m, n in levels.items() if n > MAX_LEVELS)
    named = set(levels.index) if "*" in search.methods else search.methods
    return sorted(m for m, n in levels.items() if m in named and n > 0)


def collapse_searched(
    df: pd.DataFrame,
    search: Search,
    keys: Sequence[str] = ("dataset", "backbone", "split_seed", "seed"),
) -> pd.DataFrame:
    """`df` (one row per trial) with each searched method reduced to its best trial per `keys`
    by the validation objectives, relabelled "<Method> (best of N)"; other
    methods untouched. Trials without an ok row are dropped from searched methods. The
    `variant` column stays an ordered categorical (methods in table order)."""
    methods = searched(df, search)
    if not methods:
        return df
    df = df if "split_seed" in df else df.assign(split_seed=split_seeds(df))
    is_searched = df["method"].astype(str).isin(methods)
    pool = df[is_searched & (df["status"] == STATUS_OK)]
    objectives = [(c, m) for c, m in search.objectives if c in df]
    by = [*keys, "method"]
    order = pool.sort_values(
        [*by, *(c for c, _ in objectives), *TRIAL_KEYS],
        ascending=[True] * len(by) + [m == "min" for _, m in objectives] + [True, True],
        kind="stable",
    )
    grouped = order.groupby([order[k].astype(str) for k in by], sort=False)
    best = order.loc[grouped.head(1).index]
    counts = grouped["trial_id"].transform("size").loc[best.index]
    names = best["method"].astype(str).map(lambda m: METHOD_NAMES.get(m, m))
    labels = names + " (best of " + counts.astype(str) + ")"
    return _relabel(pd.concat([df[~is_searched], best]), labels)


def _relabel(df: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """`df` with `variant` replaced by `labels` where given, kept in table order."""
    old = df["variant"]
    new = old.astype(str).where(~df.index.isin(labels.index), labels.reindex(df.index))
    rank = dict(zip(old.cat.categories, range(len(old.cat.categories)), strict=True))
    place = pd.DataFrame({"new": new, "rank": old.map(rank).astype(float)})
    categories = place.sort_values(["rank", "new"])["new"].drop_duplicates().tolist()
    return df.assign(variant=pd.Categorical(new, categories=categories, ordered=True)).sort_index()


def seeds_per_pair(df: pd.DataFrame) -> int:
    """The fewest distinct replicates (split seed, seed) of any (dataset, backbone, variant)
    cell with an ok trial."""
    ok = df[df["status"] == STATUS_OK]
    if ok.empty:
        return 0
    ok = ok if "split_seed" in ok else ok.assign(split_seed=split_seeds(ok))
    cells = ok.groupby(["dataset", "backbone", "variant"], observed=True)
    return int(cells[["split_seed", "seed"]].apply(lambda g: len(g.drop_duplicates())).min())


def variants_of(df: pd.DataFrame, methods: Collection[str]) -> list[str]:
    """The variant labels (table order) of the ok rows of the given methods."""
    ok = df[(df["status"] == STATUS_OK) & df["method"].astype(str).isin(list(methods))]
    return [str(v) for v in ok["variant"].cat.categories if (ok["variant"] == v).any()]


def values(df: pd.DataFrame, column: str) -> np.ndarray:
    """The distinct non-null values of `column` over ok rows, sorted."""
    return np.sort(df.loc[df["status"] == STATUS_OK, column].dropna().unique())


def curves_of(every: pd.DataFrame, view: pd.DataFrame) -> pd.DataFrame:
    """The rows of `every` (all epochs) of the trials in `view`, with `view`'s variant labels.
    Matched a trial at a time (integer group numbers per row, not a string key per row: 2
    million rows of curves take 0.1 s, not 2 s)."""
    keys = ["study", "trial_id"]
    group = every.groupby(keys, observed=True, sort=False).ngroup().to_numpy()
    trials = every[keys].drop_duplicates().astype(str)  # in group-number order
    wanted = view[[*keys, "variant"]].astype({k: str for k in keys})
    label = trials.merge(wanted, on=keys, how="left")["variant"]
    categories = view["variant"].cat.categories
    codes = pd.Categorical(label, categories=categories, ordered=True).codes[group]
    kept = codes >= 0
    variant = pd.Categorical.from_codes(codes[kept], categories=categories, ordered=True)
    return every[kept].assign(variant=variant)


def chosen(view: pd.DataFrame, unique: pd.DataFrame, search: Search) -> pd.DataFrame:
    """The trials that stand for each searched method (one row each): dataset, backbone, seed,
    variant, trial_id, alpha, margin and the objectives, with `searched`: the trials it beat."""
    methods = searched(unique, search)
    rows = view[view["method"].astype(str).isin(methods)]
    rows = rows if "split_seed" in rows else rows.assign(split_seed=split_seeds(rows))
    objectives = [c for c, _ in search.objectives if c in view]
    keys = ["dataset", "backbone", "split_seed", "seed", "variant"]
    columns = [*keys, "trial_id", "alpha", "margin", *objectives]
    return rows[columns].sort_values(keys)


def selection_gain(unique: pd.DataFrame, view: pd.DataFrame, metric: str) -> pd.DataFrame:
    """How much picking the best of N on validation moves `metric` on test: per searched
    variant of `view` ("… (best of N)"), the mean over its cells and replicates of the chosen
    trial's value minus the mean of the N trials it was chosen from. Against one ERM run per
    replicate, this is how far the comparison is tilted in the searched method's favour (it
    also holds any real effect of the searched parameters). Columns: variant, gain, n."""
    best = view[view["variant"].astype(str).str.contains(r"\(best of \d+\)", regex=True)]
    if best.empty or metric not in view:
        return pd.DataFrame(columns=["variant", "gain", "n"])
    keys = ["dataset", "split_seed", "seed", "method"]
    pool = unique if "split_seed" in unique else unique.assign(split_seed=split_seeds(unique))
    pool = pool[pool["status"] == STATUS_OK]
    pool = pool.assign(backbone=pool["backbone"].astype(str), method=pool["method"].astype(str))
    means = pool.groupby([*keys, "backbone"])[metric].mean().rename("pool_mean")
    chosen = best.assign(backbone=best["backbone"].astype(str), method=best["method"].astype(str))
    merged = chosen.join(means, on=[*keys, "backbone"])
    merged = merged.assign(gain=merged[metric] - merged["pool_mean"])
    out = merged.groupby(merged["variant"].astype(str))["gain"].agg(["mean", "size"])
    return out.reset_index().rename(columns={"variant": "variant", "mean": "gain", "size": "n"})

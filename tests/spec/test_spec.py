"""Study specs: the define-by-run function under `optuna.trial.FixedTrial` and in an in-memory
Optuna study (conditional parameters appear only with their methods), grids (exactly their cross
product, labels decoded into settings), `extends`, `${ENV}`, overrides, start points, and the
specs in search_spaces/."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest
import yaml

from study.errors import ConfigError
from study.spec import SAMPLERS, load_spec, parse_spec

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
METHODS = ["erm", "mixup", "mixup_dt", "mixup_to", "mixup_sc", "mixup_io", "mit_l", "mit_a"]
MIXING, MIT = METHODS[1:], ["mit_l", "mit_a"]
BASE = {"dataset": {"name": "fake"}, "model": {"name": "resnet18", "width": 8}}
SPACE = {
    "method.name": METHODS,
    "method.alpha": {"float": [0.1, 2.0], "log": True, "when": {"method.name": MIXING}},
    "method.margin": {"float": [0.0, 0.6], "when": {"method.name": MIT}},
    "method.constraint": {"choices": [True, False], "when": {"method.name": MIT}},
}


def expected_keys(method: str) -> set[str]:
    keys = {"method.name"}
    keys |= {"method.alpha"} if method in MIXING else set()
    return keys | ({"method.margin", "method.constraint"} if method in MIT else set())


@pytest.fixture(scope="module")
def spec():
    return parse_spec({**BASE, "name": "space", "space": SPACE})


@pytest.mark.parametrize("method", METHODS)
def test_fixed_trial_suggests_only_the_methods_parameters(spec, method):
    trial = optuna.trial.FixedTrial(
        {
            "method.name": method,
            "method.alpha": 0.5,
            "method.margin": 0.3,
            "method.constraint": True,
        }
    )
    spec.suggest(trial)
    assert set(trial.params) == expected_keys(method)
    cfg = spec.trial_config(trial.params)
    assert cfg.method.name == method and cfg.model.width == 8
    assert cfg.method.margin == (0.3 if method in MIT else None)


def test_in_memory_study_samples_conditional_parameters(spec):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: spec.suggest(t) or 0.0, n_trials=60)
    seen = set()
    for t in study.trials:
        method = t.params["method.name"]
        seen.add(method)
        assert set(t.params) == expected_keys(method)
        assert 0.1 <= t.params.get("method.alpha", 1.0) <= 2.0
        assert spec.trial_config(t.params).method.name == method
    assert seen == set(METHODS)


GRID = {
    "method": [{"name": "erm"}, {"name": "mixup", "alpha": 0.1}, {"name": "mit_a", "margin": 0.5}],
    "model.name": ["resnet18", "resnet50"],
    "train.seed": [0, 1],
}


def test_grid_sampler_runs_exactly_the_cross_product():
    spec = parse_spec({**BASE, "name": "grid", "grid": GRID})
    assert spec.sampler == "grid" and spec.num_trials == 3 * 2 * 2
    study = optuna.create_study(sampler=SAMPLERS["grid"](spec))
    for _ in range(spec.num_trials):
        trial = study.ask()
        spec.suggest(trial)
        study.tell(trial, 0.0)
    points = {tuple(t.params[a.name] for a in spec.grid) for t in study.trials}
    assert points == set(itertools.product(*(a.labels for a in spec.grid)))
    corners = [tuple(p.values()) for p in spec.corner_params()]
    assert sorted(corners) == sorted(points)


def test_grid_labels_decode_into_settings():
    spec = parse_spec({**BASE, "name": "grid", "grid": GRID})
    cfg = spec.trial_config(
        {"method": "name=mixup,alpha=0.1", "model.name": "resnet50", "train.seed": "1"}
    )
    assert (cfg.method.name, cfg.method.alpha, cfg.model.name, cfg.train.seed) == (
        "mixup",
        0.1,
        "resnet50",
        1,
    )
    assert cfg.model.width == 8  # fixed settings stay under the grid's


def sampled(spec, sampler: str, n: int = 12) -> list[dict]:
    """The parameters of `n` trials of a two-objective in-memory study driven by `sampler`."""
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=SAMPLERS[sampler](spec)
    )
    study.optimize(lambda t: (spec.suggest(t) or len(t.params), 0.1), n_trials=n)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2"])
def test_samplers_drive_the_space(spec, sampler):
    """Each sampler draws only each method's parameters, within bounds, into valid configs;
    the spec's seed makes its draws repeatable and another seed changes them."""
    trials = sampled(spec, sampler)
    assert len({t["method.name"] for t in trials}) > 1
    for params in trials:
        assert set(params) == expected_keys(params["method.name"])
        assert 0.1 <= params.get("method.alpha", 1.0) <= 2.0
        assert 0.0 <= params.get("method.margin", 0.0) <= 0.6
        assert spec.trial_config(params).method.name == params["method.name"]
    assert sampled(spec, sampler) == trials
    reseeded = parse_spec(spec.raw, {"search.seed": 1})
    assert sampled(reseeded, sampler) != trials


def test_paper_specs_hold_the_tables_columns():
    specs = {p.stem: load_spec(p) for p in sorted(SPACES.glob("*.yaml"))}
    assert {"demo", "paper_cifar10", "paper_cifar100", "paper_svhn", "paper_tiny_imagenet"} <= set(
        specs
    )
    assert {"alpha_sweep", "mit_search", "cifar10_cpu"} <= set(specs)
    for name in ("paper_cifar10", "paper_cifar100", "paper_svhn"):
        assert specs[name].num_trials == 11 * 4
    assert specs["paper_tiny_imagenet"].num_trials == 11 * 6
    assert specs["cifar10_cpu"].num_trials == 11
    tiny = specs["paper_tiny_imagenet"]
    models = {tiny.trial_config(p).model for p in tiny.corner_params()}
    assert {(m.name, m.pretrained) for m in models if m.pretrained} == {
        ("tv_resnet18", True),
        ("tv_resnet152", True),
    }
    demo = specs["demo"]
    assert {p["method.name"] for p in demo.search.points} == set(METHODS)
    assert demo.trial_dict()["dataset"] == {"name": "digits"}
    assert (
        specs["mit_search"].sampler == "nsga2" and len(specs["mit_search"].search.objectives) == 2
    )


def test_describe_prints_the_resolved_space(spec):
    text = spec.describe()
    assert "Optuna tpe, 10 trials" in text
    assert "method.margin" in text and "when method.name in mit_l, mit_a" in text
    assert "float in [0.1, 2.0] log" in text


def test_extends_env_and_overrides(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump({**BASE, "train": {"epochs": 5, "lr": 0.05}, "grid": GRID})
    )
    child = {
        "extends": "base.yaml",
        "dataset": {"root": "${DATA_HOME:-/nowhere}/x"},
        "train": {"epochs": 2},
        "grid": {"model.name": ["resnet18"]},
    }
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child))
    spec = load_spec(tmp_path / "child.yaml")
    assert spec.name == "child" and spec.num_trials == 3 * 1 * 2
    assert spec.fixed["train"] == {"epochs": 2, "lr": 0.05}
    assert spec.fixed["dataset"] == {"name": "fake", "root": "/nowhere/x"}
    monkeypatch.setenv("DATA_HOME", "/data")
    spec = load_spec(tmp_path / "child.yaml", {"train.epochs": 3, "tune.max_failures": 0})
    assert spec.fixed["dataset"]["root"] == "/data/x"
    assert spec.fixed["train"]["epochs"] == 3 and spec.tune.max_failures == 0


def test_start_points_and_trials_override(spec):
    with_points = parse_spec(
        {**spec.raw, "search": {"trials": 3, "points": [{"method.name": "mit_a"}]}},
        {"search.seed": 7},
    )
    assert with_points.search.points == ({"method.name": "mit_a"},)
    assert with_points.num_trials == 3 and with_points.search.seed == 7
    with pytest.raises(ConfigError, match="not in the space"):
        parse_spec({**spec.raw, "search": {"points": [{"method.alpha": 9.0}]}})


def test_cuda_device_needs_a_gpu_per_trial():
    with pytest.raises(ConfigError, match="resources.gpu"):
        parse_spec({**BASE, "name": "gpu", "runtime": {"device": "cuda"}})
    spec = parse_spec(
        {**BASE, "name": "gpu", "runtime": {"device": "cuda"}, "resources": {"gpu": 0.5}}
    )
    assert spec.resources.gpu == 0.5


def test_a_replicate_axis_ties_seed_and_split_seed(tmp_path):
    """`replicate:` sets several dotted keys per entry (tied, not crossed); dataset.split_seed
    may vary (each trial splits the shared images), no other dataset.* key may."""
    from study.errors import ConfigError
    from study.spec import parse_spec

    raw = {
        "name": "r",
        "dataset": {"name": "digits"},
        "grid": {
            "method": [{"name": "erm"}],
            "replicate": [
                {"train.seed": 0, "dataset.split_seed": 0},
                {"train.seed": 1, "dataset.split_seed": 7},
            ],
        },
    }
    spec = parse_spec(raw)
    configs = [spec.trial_config(p) for p in spec.corner_params()]
    assert [(c.train.seed, c.dataset.split_seed) for c in configs] == [(0, 0), (1, 7)]
    bad = {**raw, "grid": {"replicate": [{"dataset.val_size": 10}, {"dataset.val_size": 20}]}}
    with pytest.raises(ConfigError, match="dataset.val_size can't vary"):
        parse_spec(bad)

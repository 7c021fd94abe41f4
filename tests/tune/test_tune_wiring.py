"""The Tune wiring of `study run`, seen from outside in one small study (one local Ray): a
checkpoint every `tune.checkpoint_every` epochs and at the last; a trial that fails once is
retried under `tune.max_failures` from `tune.get_checkpoint()` (it trains only the epochs after
its checkpoint); a diverged trial reaches Optuna with the worst value of every objective;
`--name`; `study resume` of a finished study and `--resume` with a changed spec. Plus
`StudySearcher.restore` handing an orphaned Optuna trial back to the sampler (no Ray)."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray
import torch
import yaml
from test_tune import GOALS, TINY

from study.cli.main import main
from study.spec import SAMPLERS, parse_spec
from study.train import methods
from study.tune.checkpoint import STATE_FILE
from study.tune.searcher import StudySearcher
from study.tune.worker import objective_values

EPOCHS, EVERY, STEPS_PER_EPOCH = 5, 2, 2  # 64 training images in batches of 32
FAIL_AT_STEP = 2 * STEPS_PER_EPOCH + 1  # the first step of epoch 3, after the epoch-2 checkpoint


def methods_hook(log: str):
    """Registers "flaky" (ERM that raises once, at FAIL_AT_STEP of its first run; every step
    is logged under the id of the run that took it) and "nan" (a NaN loss: diverges)."""

    def register() -> None:
        import uuid
        from pathlib import Path

        from study.train.methods.erm import ERM

        class Flaky(ERM):
            def __init__(self):
                self.run, self.steps = uuid.uuid4().hex, 0

            def step(self, model, x, y):
                self.steps += 1
                with open(Path(log) / "steps.log", "a") as f:
                    f.write(f"{self.run}\n")
                marker = Path(log) / "failed"
                if self.steps == FAIL_AT_STEP and not marker.exists():
                    marker.touch()
                    raise RuntimeError("flaky: fails once")
                return super().step(model, x, y)

        class Nan(ERM):
            def step(self, model, x, y):
                loss, logits = super().step(model, x, y)
                return loss * float("nan"), logits

        methods.register("flaky", methods.MethodEntry(lambda c, x: Flaky(), takes_alpha=False))
        methods.register("nan", methods.MethodEntry(lambda c, x: Nan(), takes_alpha=False))

    return register


@pytest.fixture(scope="module")
def log_dir():
    path = tempfile.mkdtemp(prefix="i13wiring")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory, log_dir):
    """The study `wired` (spec file wiring.yaml, named by --name), run to the end."""
    methods_hook(str(log_dir))()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp,
        runtime_env={"worker_process_setup_hook": methods_hook(str(log_dir))},
    )
    root = tmp_path_factory.mktemp("wiring")
    spec = {
        **TINY,
        "train": {**TINY["train"], "epochs": EPOCHS},
        "tune": {"checkpoint_every": EVERY, "keep_checkpoints": 10, "max_failures": 1},
        "search": {"objectives": GOALS, "storage": "sqlite:///{study_dir}/optuna.db"},
        "grid": {"method.name": ["erm", "flaky", "nan"]},
    }
    path = root / "wiring.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    argv = [str(path), "--storage", str(root / "studies"), "--name", "wired"]
    code = main(["run", *argv])
    yield code, root / "studies", argv
    ray.shutdown()
    for name in ("flaky", "nan"):
        methods.METHODS.pop(name, None)
    shutil.rmtree(temp, ignore_errors=True)


def rows(storage: Path) -> pd.DataFrame:
    return pd.read_parquet(storage / "wired" / "results").sort_values(["method", "epoch"])


def test_the_study_runs_under_its_name(study):
    code, storage, _ = study
    assert code == 0
    assert not (storage / "wiring").exists()
    df = rows(storage)
    assert (df.study == "wired").all()
    for method in ("erm", "flaky"):
        ok = df[df.method == method]
        assert list(ok.epoch) == list(range(1, EPOCHS + 1)) and (ok.status == "ok").all()
    nan = df[df.method == "nan"]
    assert list(nan.status) == ["diverged"] and nan.message.item().startswith("diverged at epoch 1")


def test_checkpoints_every_n_epochs_and_at_the_last(study):
    _, storage, _ = study
    df = rows(storage)
    ids = df.groupby("method").trial_id.first()
    for method, expected in (("erm", [2, 4, 5]), ("flaky", [2, 4, 5]), ("nan", [])):
        states = sorted((storage / "wired" / "tune").rglob(f"{ids[method]}*/**/{STATE_FILE}"))
        loaded = [torch.load(p, weights_only=True) for p in states]
        # a diverged trial's last checkpoint holds its rows only (study.results.quarantine rebuilds
        # from it)
        epochs = [state["epoch"] for state in loaded if "model" in state]
        assert sorted(epochs) == expected, method


def test_a_failed_trial_is_retried_from_its_checkpoint(study, log_dir):
    """Two runs of the flaky trial: the first took the steps of epochs 1-2 and the failing
    one; the retry restored the epoch-2 checkpoint and trained epochs 3-5 only (a restart
    from scratch would take all 5 epochs' steps)."""
    _, storage, _ = study
    runs = Counter((log_dir / "steps.log").read_text().split())
    assert len(runs) == 2, runs
    assert sorted(runs.values()) == sorted([FAIL_AT_STEP, (EPOCHS - EVERY) * STEPS_PER_EPOCH])
    flaky = rows(storage).query("method == 'flaky'")
    assert (flaky.status == "ok").all() and not flaky.epoch.duplicated().any()


def test_a_diverged_trial_reaches_optuna_with_the_worst_values(study):
    _, storage, _ = study
    db = f"sqlite:///{storage / 'wired' / 'optuna.db'}"
    trials = optuna.load_study(study_name="wired", storage=db).trials
    by_method = {t.params["method.name"]: t for t in trials}
    assert set(by_method) == {"erm", "flaky", "nan"}
    assert by_method["nan"].values == [-math.inf, math.inf]  # val_acc max, val_cal_ece min
    assert all(math.isfinite(v) for m in ("erm", "flaky") for v in by_method[m].values)
    spec = parse_spec({**TINY, "name": "x", "search": {"objectives": GOALS}})
    assert objective_values(spec, {"status": "diverged"}) == {
        "val_acc": -math.inf,
        "val_cal_ece": math.inf,
    }


def test_resume_of_a_finished_study_and_a_changed_spec(study, capsys):
    _, storage, argv = study
    before = rows(storage)
    changed = ["run", *argv, "--resume", "--set", "train.epochs=6"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("study run: error: ")
    assert "spec" in err and "wired" in err
    assert main(["resume", *argv]) == 0  # the alias: nothing left to do, nothing lost
    after = rows(storage)
    cols = ["trial_id", "epoch", "status", "val_acc", "node_id"]
    pd.testing.assert_frame_equal(
        before[cols].reset_index(drop=True), after[cols].reset_index(drop=True)
    )


def test_study_search_restore_requeues_orphaned_optuna_trials(tmp_path):
    """A driver killed after Optuna (persistent storage) started a trial but before Tune's
    snapshot: the restored searcher marks that orphan failed and hands its parameters out
    again, first."""
    spec = parse_spec(
        {
            **TINY,
            "name": "orphans",
            "search": {"sampler": "random", "trials": 6, "seed": 3},
            "space": {"method.name": ["erm", "mixup"], "train.seed": {"int": [0, 10**6]}},
        }
    )
    db = f"sqlite:///{tmp_path / 'optuna.db'}"

    def searcher() -> StudySearcher:
        return StudySearcher(
            space=spec.suggest,
            metric="val_acc",
            mode="max",
            sampler=SAMPLERS["random"](spec),
            study_name="orphans",
            storage=optuna.storages.RDBStorage(db),
        )

    crashed = searcher()
    owned = crashed.suggest("t1")
    crashed.save(str(tmp_path / "searcher.pkl"))  # Tune's last snapshot
    orphan = crashed.suggest("t2")  # asked for after the snapshot, then the driver died
    assert orphan != owned
    restored = searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = Counter(
        t.state.name for t in optuna.load_study(study_name="orphans", storage=db).trials
    )
    assert states == Counter({"RUNNING": 1, "FAIL": 1, "WAITING": 1})
    assert restored.suggest("t3") == orphan  # the orphan's parameters, before new draws

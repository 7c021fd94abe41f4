"""End to end on one local Ray instance (2 CPUs, shared by the module): `study run` of tiny
specs → Parquet rows of the contract; a raising trial recorded as errored; unmeetable resources
refused before anything starts. Trials run in Ray workers, so the raising method is registered
there through Ray's `worker_process_setup_hook`."""

from __future__ import annotations

import shutil
import tempfile

import optuna
import pandas as pd
import pytest
import ray
import yaml

from study.cli.main import main
from study.results.schema import COLUMN_NAMES
from study.train import methods
from study.tune.checkpoint import checkpoint_rows

GOALS = [{"metric": "val_acc", "mode": "max"}, {"metric": "val_cal_ece", "mode": "min"}]
TINY = {
    "dataset": {"name": "fake", "train_size": 64, "val_size": 32, "test_size": 32},
    "model": {"name": "resnet18", "width": 8},
    "train": {"epochs": 2, "batch_size": 32, "eval_batch_size": 64},
    "runtime": {"device": "cpu"},
    "resources": {"cpu": 1},
}


def boom_hook():
    """A function registering method "boom", whose build raises (every trial that uses it
    errors at its first epoch), and "lossy", ERM whose reported loss is 100 higher (same
    training, a clearly worse train_loss); nested, so Ray pickles it by value for its workers."""

    def register_boom() -> None:
        from study.train.methods.erm import ERM

        def build(cfg, ctx):
            raise ValueError("boom: this method always fails")

        class Lossy(ERM):
            def step(self, model, x, y):
                loss, logits = super().step(model, x, y)
                return loss + 100.0, logits

        methods.register("boom", methods.MethodEntry(build, takes_alpha=False))
        methods.register("lossy", methods.MethodEntry(lambda c, x: Lossy(), takes_alpha=False))

    return register_boom


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    boom_hook()()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,  # workers' lines would land in the captured stderr at random
        _temp_dir=temp,
        runtime_env={"worker_process_setup_hook": boom_hook()},
    )
    yield
    ray.shutdown()
    methods.METHODS.pop("boom", None)
    methods.METHODS.pop("lossy", None)
    shutil.rmtree(temp, ignore_errors=True)


def run(tmp_path, spec: dict, *extra: str) -> int:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return main(["run", str(path), "--storage", str(tmp_path / "studies"), *extra])


def test_tiny_study_writes_every_row_of_the_contract(tmp_path, capsys):
    spec = {
        **TINY,
        "name": "tiny",
        "search": {"sampler": "random", "trials": 4, "seed": 1},
        "space": {
            "method.name": ["erm", "mit_a"],
            "method.alpha": {"float": [0.2, 1.0], "when": {"method.name": "mit_a"}},
            "method.margin": {"float": [0.0, 0.5], "when": {"method.name": "mit_a"}},
        },
    }
    assert run(tmp_path, spec) == 0
    df = pd.read_parquet(tmp_path / "studies" / "tiny" / "results")
    assert len(df) == 4 * 2
    assert list(df.columns) == COLUMN_NAMES
    assert not df.duplicated(["trial_id", "epoch"]).any()
    assert sorted(df.groupby("trial_id").epoch.apply(sorted).map(tuple).unique()) == [(1, 2)]
    assert set(df.method) == {"erm", "mit_a"}
    assert (df.status == "ok").all() and (df.study == "tiny").all()
    assert df.loc[df.method == "erm", ["alpha", "margin"]].isna().all().all()
    assert df.loc[df.method == "mit_a", ["alpha", "margin"]].notna().all().all()
    assert df.node_id.str.len().gt(0).all()
    assert df[["val_acc", "val_cal_ece", "test_acc", "test_cal_ece"]].notna().all().all()
    out = capsys.readouterr().out
    assert "best validation accuracy" in out and "Pareto front on validation" in out
    results = (
        tmp_path / "studies" / "tiny" / "results"
    )  # compacted at the end (study.results.compact)
    names = sorted(p.name for p in results.iterdir())
    assert names == ["_shortlist.parquet", "compacted.parquet"], out
    assert "compacted 8 files (8 rows)" in out  # a file per trial and epoch


def test_raising_trial_is_recorded_and_others_finish(tmp_path, capsys):
    spec = {
        **TINY,
        "name": "errors",
        "tune": {"max_failures": 0},
        "search": {"objectives": GOALS, "storage": "sqlite:///{study_dir}/optuna.db"},
        "grid": {"method.name": ["erm", "boom", "mixup"]},
    }
    assert run(tmp_path, spec) == 1  # a study with an errored trial is not a success
    df = pd.read_parquet(tmp_path / "studies" / "errors" / "results")
    failed = df[df.method == "boom"]
    assert len(failed) == 1 and failed.status.item() == "error" and failed.epoch.item() == 1
    assert failed.message.item() == "ValueError: boom: this method always fails"
    done = df[df.method != "boom"]
    assert len(done) == 2 * 2 and (done.status == "ok").all()
    out, err = capsys.readouterr()
    assert "errored: ValueError: boom" in out
    line = err.strip().splitlines()[-1]
    assert "2 of 3 planned trials complete; 1 errored (" in line, err
    assert "ValueError: boom: this method always fails" in line and line.endswith("--resume")
    storage = f"sqlite:///{tmp_path / 'studies' / 'errors' / 'optuna.db'}"
    states = sorted(
        t.state.name for t in optuna.load_study(study_name="errors", storage=storage).trials
    )
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]


def test_a_diverged_trial_can_be_rebuilt_from_its_checkpoint(tmp_path):
    """Checkpoints carry a trial's rows, a diverged one's too: its damaged file comes back."""
    from study.results import quarantine

    spec = {**TINY, "name": "div", "grid": {"train.lr": [0.1, 1e30]}}
    assert run(tmp_path, spec) == 0
    study_dir = tmp_path / "studies" / "div"
    df = pd.read_parquet(study_dir / "results").sort_values(["trial_id", "epoch"])
    diverged = df[df.status == "diverged"].trial_id.item()
    assert len(df[df.status == "ok"]) == 2
    path = study_dir / "results" / f"{diverged}.parquet"
    # the study ended compacted: a damaged per-trial file of that trial appears (a copy cut
    # short mid-write, say) and is rebuilt from the trial's checkpoint
    assert not path.exists()
    path.write_bytes(b"PAR1" + bytes(96))
    quarantine.repair(study_dir, checkpoint_rows)
    assert not path.exists()  # set aside; its rows back as the trial's epoch files
    parts = sorted((study_dir / "results").glob(f"{diverged}.e*.parquet"))
    rebuilt = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert list(rebuilt.status) == list(df[df.trial_id == diverged].status)
    assert rebuilt.message.iloc[-1].startswith("diverged at epoch")


def test_asha_stops_the_clearly_worse_trials_early(tmp_path):
    """ASHA (grace 1, factor 2) on train_loss, trials one at a time in a fixed order: erm,
    lossy, erm, lossy. At the epoch-1 rung each lossy trial is below the cutoff the erm trials
    set, so ASHA stops it after one epoch; the first erm trial sets every cutoff, so it runs
    all epochs. Without ASHA every trial would run 3 epochs."""
    spec = {
        **TINY,
        "name": "asha",
        "train": {**TINY["train"], "epochs": 3},
        "tune": {"max_concurrent_trials": 1},
        "search": {
            "trials": 4,
            "objectives": [{"metric": "train_loss", "mode": "min"}],
            "asha": {"grace_period": 1, "reduction_factor": 2},
            "points": [{"method.name": m} for m in ("erm", "lossy", "erm", "lossy")],
        },
        "space": {"method.name": ["erm", "lossy"]},
    }
    assert run(tmp_path, spec) == 0
    df = pd.read_parquet(tmp_path / "studies" / "asha" / "results")
    assert df.trial_id.nunique() == 4 and (df.status == "ok").all()
    for _, epochs in df.groupby("trial_id").epoch:
        assert sorted(epochs) == list(range(1, len(epochs) + 1))
    last = df.groupby("trial_id").agg(method=("method", "first"), epochs=("epoch", "max"))
    assert (df[df.method == "lossy"].train_loss > 100).all()
    assert sorted(last[last.method == "lossy"].epochs) == [1, 1]  # stopped early
    assert 3 in set(last[last.method == "erm"].epochs)  # the best ran to the end


@pytest.mark.parametrize("resources", [{"gpu": 1}, {"cpu": 3}])
def test_unmeetable_resources_fail_fast(tmp_path, capsys, resources):
    spec = {**TINY, "name": "greedy", "resources": resources, "grid": {"train.seed": [0]}}
    assert run(tmp_path, spec) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "largest of the cluster's" in err
    assert not (tmp_path / "studies" / "greedy").exists()

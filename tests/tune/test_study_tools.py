"""The tools researchers already use, on one tiny study (one local Ray instance, 3 trials × 2
epochs, ERM and MIT-A): the Optuna storage in the study directory (objective names; each trial
tagged with its Tune trial id, a pandas line reading its rows, before and after compaction, and
its final status; its per-epoch values), optuna-dashboard serving it on loopback, Tune's CSV /
TensorBoard / MLflow loggers read back (TensorBoard's hparams served with every searched
parameter), and the live status in a captured log."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import io
import json
import re
import shutil
import tempfile
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from test_tune import GOALS, TINY

from study.cli.main import main
from study.results.files import LEAN
from study.results.names import part_name
from study.tune.search import TAGS

pytestmark = pytest.mark.slow

NEEDS = {"csv": (), "tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow",)}
LOGGERS = [n for n, pkgs in NEEDS.items() if all(importlib.util.find_spec(p) for p in pkgs)]
TRIALS = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Run the study once; its directory, stdout and results for every test here."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    root = tmp_path_factory.mktemp("tools")
    spec = {
        **TINY,
        "name": "tools",
        "tune": {"loggers": LOGGERS},
        "search": {
            "sampler": "random",
            "trials": TRIALS,
            "seed": 3,
            "objectives": GOALS,
            "points": [{"method.name": "mit_a"}, {"method.name": "erm"}],  # margin and none
        },
        "space": {
            "method.name": ["erm", "mit_a"],
            "method.alpha": {"float": [0.2, 1.0], "when": {"method.name": "mit_a"}},
            "method.margin": {"float": [0.0, 0.5], "when": {"method.name": "mit_a"}},
        },
    }
    path = root / "tools.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(["run", str(path), "--storage", str(root / "studies")])
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert code == 0, out.getvalue()[-2000:]
    study_dir = root / "studies" / "tools"
    df = pd.read_parquet(study_dir / "results").sort_values(["trial_id", "epoch"])
    return {"dir": study_dir, "out": out.getvalue(), "df": df}


def last_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("trial_id").tail(1).set_index("trial_id")


def test_optuna_storage_has_names_and_tags_matching_the_parquet_files(study):
    d = study["dir"]
    s = optuna.load_study(study_name="tools", storage=f"sqlite:///{d / 'optuna.db'}")
    assert s.metric_names == ["val_acc", "val_cal_ece"]
    assert len(s.trials) == TRIALS
    last = last_rows(study["df"])
    # the per-trial files were merged into results/compacted.parquet when the study ended
    names = sorted(p.name for p in (d / "results").glob("*.parquet"))
    assert names == ["_shortlist.parquet", "compacted.parquet"]
    assert {t.user_attrs["tune_trial_id"] for t in s.trials} == set(last.index)
    for t in s.trials:
        assert set(TAGS) <= set(t.user_attrs)  # every tag the docs promise
        tid = t.user_attrs["tune_trial_id"]
        assert (d / t.user_attrs["results"]).is_dir()
        assert t.user_attrs["status"] == last.loc[tid, "status"] == "ok"
        assert t.values == pytest.approx([last.loc[tid, "val_acc"], last.loc[tid, "val_cal_ece"]])
    assert f"optuna-dashboard sqlite:///{d / 'optuna.db'}" in study["out"]


def test_every_trials_rows_tag_reads_its_rows_after_and_before_compaction(study, tmp_path):
    """The `rows` tag, run as written, gives exactly its trial's rows: on the study as it ended
    (compacted file + shortlist) and on the same rows as epoch files (a running study)."""
    d, df = study["dir"], study["df"]
    running = tmp_path / "running"
    (running / "results").mkdir(parents=True)
    table = pq.read_table(d / "results" / "compacted.parquet")  # the results schema
    for tid in df.trial_id.unique():  # one file per epoch, as the running study wrote them
        part = table.filter(pc.equal(table["trial_id"], tid))
        for e in part["epoch"].to_pylist():
            one = part.filter(pc.equal(part["epoch"], e))
            pq.write_table(one, running / "results" / part_name(tid, e), **LEAN)
    s = optuna.load_study(study_name="tools", storage=f"sqlite:///{d / 'optuna.db'}")
    for t in s.trials:
        tid, line = t.user_attrs["tune_trial_id"], t.user_attrs["rows"]
        want = df[df.trial_id == tid].sort_values("epoch").reset_index(drop=True)
        assert len(want) == 2
        for where in (d, running):
            got = eval(line.replace(str(d), str(where)), {"pd": pd})  # the tag as a user runs it
            got = got.sort_values("epoch").reset_index(drop=True)
            pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_multi_objective_trials_carry_per_epoch_values(study):
    """Optuna refuses intermediate values with two objectives: each trial's `curve.<metric>`
    user attrs hold them by epoch instead, equal to the Parquet rows."""
    d, df = study["dir"], study["df"]
    s = optuna.load_study(study_name="tools", storage=f"sqlite:///{d / 'optuna.db'}")
    for t in s.trials:
        rows = df[df.trial_id == t.user_attrs["tune_trial_id"]].sort_values("epoch")
        assert t.intermediate_values == {}
        for metric in ("val_acc", "val_cal_ece"):
            assert t.user_attrs[f"curve.{metric}"] == pytest.approx(rows[metric].tolist())


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no request lines in the test output
        pass


def test_optuna_dashboard_serves_the_study_on_loopback(study):
    from optuna_dashboard import wsgi

    storage = optuna.storages.RDBStorage(f"sqlite:///{study['dir'] / 'optuna.db'}")
    server = make_server("127.0.0.1", 0, wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:

        def get(path: str) -> dict:
            with urllib.request.urlopen(base + path, timeout=30) as r:
                return json.load(r)

        studies = get("/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tools"]
        detail = get(f"/api/studies/{studies[0]['study_id']}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert detail["objective_names"] == ["val_acc", "val_cal_ece"]
    trials = detail["trials"]
    assert len(trials) == TRIALS
    tags = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in trials]
    assert {t["tune_trial_id"] for t in tags} == set(study["df"].trial_id)
    assert all(t["status"] == "ok" for t in tags)
    assert all(json.loads(t["curve.val_acc"]) and t["rows"] for t in tags)  # shown as text
    assert not detail["has_intermediate_values"]  # its learning-curve plot stays empty


def _mit(study) -> pd.DataFrame:
    df = study["df"]
    mit = df[df.method == "mit_a"]
    assert not mit.empty
    return mit[mit.trial_id == mit.trial_id.iloc[0]]


def test_csv_logger_writes_each_epoch_with_the_params(study):
    if "csv" not in LOGGERS:
        pytest.skip("ray's CSV logger unavailable")
    rows = _mit(study)
    csv = pd.read_csv(study["dir"] / "tune" / rows.trial_id.iloc[0] / "progress.csv")
    assert list(csv.epoch) == [1, 2]
    assert csv.val_acc.tolist() == pytest.approx(rows.val_acc.tolist())
    assert csv.val_cal_ece.tolist() == pytest.approx(rows.val_cal_ece.tolist())
    assert (csv.method == "mit_a").all()
    assert csv.alpha.tolist() == pytest.approx(rows.alpha.tolist())
    assert csv.margin.tolist() == pytest.approx(rows.margin.tolist())


def test_tensorboard_logger_writes_scalars_and_hparams(study):
    if "tensorboard" not in LOGGERS:
        pytest.skip("tensorboard (the event reader) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = _mit(study)
    (events,) = glob.glob(str(study["dir"] / "tune" / rows.trial_id.iloc[0] / "events.*"))
    acc = EventAccumulator(events)
    acc.Reload()
    for metric in ("val_acc", "val_cal_ece"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"ray/tune/{metric}")]
        assert [s for s, _ in logged] == [1, 2]
        assert [v for _, v in logged] == pytest.approx(rows[metric].tolist(), rel=1e-6)
    hp = _hparams(acc, "session_start_info").session_start_info.hparams
    assert hp["method.name"].string_value == "mit_a"
    assert hp["method.alpha"].number_value == pytest.approx(rows.alpha.iloc[0])
    assert hp["method.margin"].number_value == pytest.approx(rows.margin.iloc[0])


def _hparams(acc, tag: str):
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")[f"_hparams_/{tag}"]
    return plugin_data_pb2.HParamsPluginData.FromString(content)


SEARCHED = {"method.name": "STRING", "method.alpha": "FLOAT64", "method.margin": "FLOAT64"}


def test_tensorboard_hparams_name_every_searched_parameter_in_every_trial(study):
    """TensorBoard's table takes its columns from one run's experiment tag, picked arbitrarily:
    every trial declares all searched parameters with the spec's types, and its session names
    each one, "none" where its method has none (ERM: α and margin)."""
    if "tensorboard" not in LOGGERS:
        pytest.skip("tensorboard (the event reader) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2

    last = last_rows(study["df"])
    assert set(last.method) == {"erm", "mit_a"}
    for tid, row in last.iterrows():
        (events,) = glob.glob(str(study["dir"] / "tune" / tid / "events.*"))
        acc = EventAccumulator(events)
        acc.Reload()
        infos = _hparams(acc, "experiment").experiment.hparam_infos
        assert {i.name: api_pb2.DataType.Name(i.type) for i in infos} == {
            k: f"DATA_TYPE_{v}" for k, v in SEARCHED.items()
        }
        hp = _hparams(acc, "session_start_info").session_start_info.hparams
        assert set(hp) == set(SEARCHED)
        assert hp["method.name"].string_value == row.method
        for name in ("method.alpha", "method.margin"):
            if row.method == "erm":
                assert hp[name].string_value == "none"
            else:
                assert hp[name].number_value == pytest.approx(row[name.split(".")[1]])


ANY = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def test_tensorboard_serves_the_margin_column_for_every_trial(study):
    """TensorBoard itself (on loopback, what its hparams table asks for) lists every searched
    parameter as a column and gives each trial a value in it."""
    if "tensorboard" not in LOGGERS:
        pytest.skip("tensorboard is not installed")
    from tensorboard import program

    board = program.TensorBoard()
    logdir = str(study["dir"] / "tune")
    argv = ["--logdir", logdir, "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"]
    board.configure(argv=[None, *argv])
    base = board.launch() + "data/plugin/hparams/"

    def post(path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"}
        request = urllib.request.Request(base + path, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)

    groups: list = []
    for _ in range(120):  # until it has read every trial's events (it loads in the background)
        infos = post("experiment", {"experimentName": ""}).get("hparamInfos", [])
        if len(infos) == len(SEARCHED):
            cols = [{"hparam": i["name"]} for i in infos]
            body = {"colParams": cols, "startIndex": 0, "sliceSize": 100, "allowedStatuses": ANY}
            groups = post("session_groups", body).get("sessionGroups", [])
            if len(groups) == TRIALS:
                break
        threading.Event().wait(0.5)
    assert {i["name"] for i in infos} == set(SEARCHED)
    assert len(groups) == TRIALS
    assert all(set(g["hparams"]) == set(SEARCHED) for g in groups)
    margins = [g["hparams"]["method.margin"] for g in groups]
    assert "none" in margins and any(isinstance(m, float) for m in margins)


def test_mlflow_logger_writes_a_run_per_trial_in_the_study_dir(study):
    if "mlflow" not in LOGGERS:
        pytest.skip("mlflow is not installed")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{study['dir'] / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tools").experiment_id])
    assert len(runs) == TRIALS
    rows = _mit(study)
    (run,) = [r for r in runs if rows.trial_id.iloc[0] in r.info.run_name]
    assert run.data.params["method.name"] == "mit_a"
    assert float(run.data.params["method.alpha"]) == pytest.approx(rows.alpha.iloc[0])
    assert float(run.data.params["method.margin"]) == pytest.approx(rows.margin.iloc[0])
    for metric in ("val_acc", "val_cal_ece"):
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)
        )
        assert [s for s, _ in history] == [1, 2]
        assert [v for _, v in history] == pytest.approx(rows[metric].tolist())


STATUS = re.compile(
    r"^\[\d+:\d\d:\d\d\] (\d+) running, (\d+) done, (\d+) errored of (\d+)"
    r"(?: \| best \(last epoch\) val_acc ([\d.]+) \(\w+\) val_cal_ece ([\d.]+) \(\w+\))?"
    r"(?: \| ~\d+:\d\d:\d\d left)?$"
)


def test_live_status_in_a_captured_log(study):
    out = study["out"].splitlines()
    status = [m for m in map(STATUS.match, out) if m]
    assert status, study["out"][-2000:]
    final = status[-1].groups()
    assert final[:4] == ("0", str(TRIALS), "0", str(TRIALS))
    df = study["df"]
    last = last_rows(df)  # the best over each trial's last epoch
    assert float(final[4]) == pytest.approx(last.val_acc.max(), abs=1e-4)
    assert float(final[5]) == pytest.approx(last.val_cal_ece.min(), abs=1e-4)
    assert sum(" finished: val_acc " in line for line in out) == TRIALS
    assert not any(" | epoch " in line for line in out)  # per-epoch lines only with -v
    log = (study["dir"] / "study.log").read_text().splitlines()
    assert sum(" | epoch " in line for line in log) == TRIALS * 2  # …and always in the log
    assert any(STATUS.match(line.split(" ", 2)[2]) for line in log)

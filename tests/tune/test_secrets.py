"""Secrets never written (issue 18): credentials in a storage URI are refused in one line that
does not echo them; a real study on a loopback S3 server (moto), addressed only through the
URI's query options (no AWS_ENDPOINT_URL), with a planted secret in AWS_SECRET_ACCESS_KEY,
trains, summarises, compacts and reports, and then no file it or Ray wrote — in the bucket, the
study's local home, the report, Ray's temp dir with its session logs — holds the secret's
bytes, hex or base64."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import ray
import yaml
from procs import free_port, kill_marked, server
from test_storage import MOTO
from test_tune import TINY

from study.cli.main import main

SECRET = f"planted-{secrets.token_hex(16)}"  # unique per run: a match is this run's leak
KEY_ID = f"AKIA{secrets.token_hex(8).upper()}"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on a free loopback port with bucket `bkt`; yields the environment of a
    user whose credentials are in AWS_* but whose endpoint is only in the URI, the URI's query,
    and the port."""
    port = free_port()
    query = f"endpoint_override=127.0.0.1:{port}&scheme=http"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with server([*MOTO, str(port)], port, env):
        s3fs(port).create_dir("bkt")
        yield env, query, port


def s3fs(port: int) -> pafs.S3FileSystem:
    """The test's own client of the server (credentials given here, never to the study)."""
    return pafs.S3FileSystem(
        access_key=KEY_ID,
        secret_key=SECRET,
        region="us-east-1",
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        allow_bucket_creation=True,
    )


def forms(secret: str) -> list[bytes]:
    """The secret as bytes, hex (both cases: Tune hex-encodes pickles) and base64 at each of
    the three alignments it can take inside a longer base64 text."""
    raw = secret.encode()
    out = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw)
        out.append(encoded[4 if k else 0 : -4])
    return out


def holders(files: dict[str, bytes], secret: str = SECRET) -> list[str]:
    """The names of the files whose bytes hold `secret` in any of its forms."""
    return sorted(name for name, data in files.items() if any(f in data for f in forms(secret)))


def local_files(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (symlinks not followed), by path."""
    found = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = Path(d) / n
            if p.is_file() and not p.is_symlink():
                try:
                    found[str(p)] = p.read_bytes()
                except OSError:  # a file removed while walking (Ray's agents)
                    pass
    return found


def bucket_files(port: int) -> dict[str, bytes]:
    """Every object in bucket `bkt`, by key (read with the planted credentials, in this
    process only)."""
    fs = s3fs(port)
    infos = fs.get_file_info(pafs.FileSelector("bkt", recursive=True))
    found = {}
    for i in infos:
        if i.type == pafs.FileType.File:
            with fs.open_input_stream(i.path) as f:
                found[f"s3://{i.path}"] = f.read()
    return found


def test_forms_find_a_pickled_or_encoded_secret():
    """The search finds the secret however Tune stores it (the test can fail)."""
    import pickle

    planted = {
        "plain": f"key={SECRET}".encode(),
        "hex": pickle.dumps({"k": SECRET}).hex().encode(),
        "b64": base64.b64encode(b"xy" + pickle.dumps(SECRET)),
        "none": b"nothing here",
    }
    assert holders(planted) == ["b64", "hex", "plain"]


RAY_CHECK = """
import os
from ray.tune.execution import class_cache
from study.tune.ray_private import keep_credentials_out_of_ray
assert "AWS_SECRET_ACCESS_KEY" in class_cache.ENV_VARS_TO_PROPAGATE, "Ray no longer copies it"
def actor_env():
    class Trainable: pass
    return class_cache._ActorClassCache().get(Trainable)._default_options["runtime_env"]
assert os.environ["AWS_SECRET_ACCESS_KEY"] in str(actor_env())  # what Tune does by itself
keep_credentials_out_of_ray()
env = actor_env()["env_vars"]
assert not any(k.startswith("AWS_") for k in env) and env.get("PL_DISABLE_FORK") == "1", env
print("ok")
"""


def test_ray_tune_copies_no_aws_credentials_into_runtime_env():
    """Ray Tune's private list (ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE, Ray
    2.60) still exists and still copies AWS_SECRET_ACCESS_KEY into a trial actor's
    runtime_env by itself, and study.tune.ray_private takes the AWS names off it (Tune's other
    variables stay). Fails loudly when Ray renames or changes it: then revisit
    study/tune/ray_private.py. A fresh process, so Ray's module is as Ray left it."""
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": SECRET}
    done = subprocess.run(
        [sys.executable, "-c", RAY_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_masked_shows_a_uri_without_its_secrets():
    from study.credentials import masked

    assert masked("s3://bkt/x?endpoint_override=h:9000&scheme=http") is None
    assert masked("hdfs://user@namenode:8020/x") is None  # a user name is no secret
    assert masked("sqlite:////tmp/optuna.db") is None
    assert masked("s3://K:a/b+c@bkt/x?region=r") == "s3://K:***@bkt/x?region=r"
    assert masked("s3://bkt/x?region=r&secret_key=S&access_key=K") == (
        "s3://bkt/x?region=r&secret_key=***&access_key=***"
    )
    assert masked("postgresql://u:pw@db:5432/optuna") == "postgresql://u:***@db:5432/optuna"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://{id}:{secret}@bkt/studies?{query}",
        "s3://bkt/studies?{query}&secret_key={secret}&access_key={id}",
        "s3://bkt/studies?session_token={secret}&{query}",
        "gs://{id}:{secret}@bkt/studies",
        "abfs://acct:{secret}@box.dfs.core.windows.net/studies",
    ],
)
def test_credentials_in_a_uri_are_refused_without_echo(s3_env, tmp_path, capsys, uri):
    """`study run`, `study resume`, `study compact`, `analysis report`, `analysis.load_results`:
    one line naming the masked URI and where credentials go, exit 2, before anything starts."""
    import analysis
    from analysis.cli import main as analysis_main
    from analysis.load import ResultsError

    uri = uri.format(id=KEY_ID, secret=SECRET, query=s3_env[1])
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "name": "s"}))
    for argv, run in (
        (["compact", uri], main),
        (["report", uri, "--out", str(tmp_path / "r")], analysis_main),
        (["resume", str(spec), "--storage", uri], main),
        (["run", str(spec), "--storage", uri], main),
    ):
        assert run(argv) == 2, argv
        out, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1, err
        assert "***" in err and "environment" in err, err
        assert not holders({"out": out.encode(), "err": err.encode()}), err
    assert not ray.is_initialized() and not (tmp_path / "r").exists()
    with pytest.raises(ResultsError) as caught:
        analysis.load_results(uri)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.slow
def test_a_study_on_s3_writes_no_secret_anywhere(s3_env, tmp_path):
    """A study addressed by `?endpoint_override=…&scheme=http` only (dropping the options
    would send it to the public endpoint) trains, compacts at its end, prints reopenable
    URIs; `study compact` and `analysis report` take the same URI; then no file of the bucket,
    the working directory (study home, report) or Ray's temp dir holds the planted secret."""
    env, query, port = s3_env
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    spec = {
        **TINY,
        "name": "sec",
        "train": {**TINY["train"], "epochs": 1},
        "tune": {"max_concurrent_trials": 2},
        "search": {"sampler": "random", "trials": 2},
        "space": {"method.name": ["erm", "mixup"]},
    }
    path = tmp_path / "sec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    root = f"s3://bkt/studies?{query}"
    results = f"s3://bkt/studies/sec/results?{query}"
    env = {**env, "RAY_TMPDIR": ray_tmp}
    study = [sys.executable, "-m", "study.cli"]
    report = [sys.executable, "-m", "analysis", "report", results, "--out", "report"]
    try:
        runs = [
            subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=t)
            for cmd, t in (
                ([*study, "run", str(path), "--storage", root], 400),
                ([*study, "compact", results], 120),
                (report, 300),
            )
        ]
        ray_files = local_files(Path(ray_tmp))
    finally:
        kill_marked(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    ran = runs[0]
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert "compacted 2 files" in ran.stdout and f"results: {results}" in ran.stdout, ran.stdout
    assert all(r.returncode == 0 for r in runs[1:]), [r.stderr[-2000:] for r in runs[1:]]
    in_bucket = bucket_files(port)
    assert "s3://bkt/studies/sec/results/compacted.parquet" in in_bucket
    assert sum(k.endswith("state.pt") for k in in_bucket) == 2  # the trials' checkpoints
    assert any("session_" in name for name in ray_files)  # Ray's session dir was walked
    outputs = {f"output {i}": (r.stdout + r.stderr).encode() for i, r in enumerate(runs)}
    found = {**in_bucket, **local_files(tmp_path), **ray_files, **outputs}
    assert holders(found) == [], f"{len(holders(found))} of {len(found)} files"


def test_an_optuna_url_with_a_password_is_refused_without_echo(tmp_path, capsys, monkeypatch):
    """`search.storage: ${OPTUNA_URL}` holding a password: the loaded spec (URL expanded) is
    pickled by Tune into tune/, so the spec is refused in one line, the password masked, by
    `study validate` and `study run`, before Ray starts; a URL without one is taken."""
    monkeypatch.setenv("OPTUNA_URL", f"postgresql://optuna:{SECRET}@db:5432/optuna")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "name": "s", "search": {"storage": "${OPTUNA_URL}"}}))
    for argv in (["validate", str(spec)], ["run", str(spec), "--storage", str(tmp_path)]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1 and "postgresql://optuna:***@db" in err, err
        assert "PGPASSWORD" in err and not holders({"o": (out + err).encode()}), err
    assert not ray.is_initialized() and not (tmp_path / "s").exists()
    monkeypatch.setenv("OPTUNA_URL", "postgresql://optuna@db:5432/optuna")
    assert main(["validate", str(spec)]) == 0

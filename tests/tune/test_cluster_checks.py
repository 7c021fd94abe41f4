"""study.tune.cluster without a cluster: a dead `--address` refused in one line before Ray starts
(Ray's own ray.init retries for minutes), bad address forms, the schedule line."""

from __future__ import annotations

import pytest
import ray
import yaml
from procs import free_port
from test_tune import TINY

from study.cli.main import main
from study.tune.cluster import schedule_line


def run_refused(tmp_path, capsys, address: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "name": "s"}))
    argv = ["run", str(path), "--storage", str(tmp_path / "st"), "--address", address]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not ray.is_initialized()
    return err


def test_dead_address_refused(tmp_path, capsys):
    err = run_refused(tmp_path, capsys, f"127.0.0.1:{free_port()}")  # nothing listens there
    assert "no Ray cluster answers at 127.0.0.1:" in err and "ray start --head" in err


@pytest.mark.parametrize("address", ["127.0.0.1", "host:port", ":6379"])
def test_malformed_address_refused(tmp_path, capsys, address):
    assert "--address must be auto or HOST:PORT" in run_refused(tmp_path, capsys, address)


def test_schedule_line():
    line = schedule_line(1, 0.25, {"CPU": 8.0, "GPU": 2.0}, 8)
    assert line == (
        "1 CPU + 0.25 GPU per trial: 4 trials at once per GPU; "
        "8 at once on the cluster (8 CPU, 2 GPU)"
    )
    line = schedule_line(2, 0, {"CPU": 4.0}, 2)
    assert line == "2 CPU per trial: 2 at once on the cluster (4 CPU)"


def test_auto_is_checked_as_the_ray_address_it_stands_for(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")  # Ray's first choice for auto
    err = run_refused(tmp_path, capsys, "auto")
    assert "no Ray cluster answers at 127.0.0.1:" in err


def test_auto_without_a_cluster_is_one_line(tmp_path, capsys, monkeypatch):
    """What Ray raises for `address="auto"` when it finds no running instance (its message, as
    seen with none running; faked here, since a real one may be running on a shared machine)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def init(*args, **kwargs):
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by "
            "setting `--address` flag or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(ray, "init", init)
    err = run_refused(tmp_path, capsys, "auto")
    assert err.startswith("study run: error: --address auto: Could not find any running Ray")
    assert "ray start --head" in err

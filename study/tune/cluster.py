"""Joining a Ray cluster and placing trials on it (docs/study.md, "A cluster").

`check_address` asks the head's GCS for its cluster id before `ray.init`, within seconds: a dead
address (Ray itself retries for minutes) or a token-authentication mismatch (Ray's error never
says "auth") becomes one line. `schedule_line` says how many trials run at once per GPU and on
the cluster; `assigned_gpus` is what Ray gave a trial (`ray.get_gpu_ids()`, which Ray also puts
in CUDA_VISIBLE_DEVICES, so torch's "cuda" is the trial's own GPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from study.errors import ConfigError

PROBE_SECONDS = 10  # the most the address check waits for the head's answer
TOKEN_HELP = (
    "copy the head's ~/.ray/auth_token to this machine or set RAY_AUTH_TOKEN (docs/study.md, "
    '"A cluster")'
)


def check_address(address: str | None) -> None:
    """Refuse (ConfigError) a HOST:PORT where no Ray head answers, or one that wants a token
    this process will not send or has wrong; `auto` is checked as the RAY_ADDRESS it stands for
    when that is set (Ray's first choice for it), else left to Ray (run_study_cli turns Ray's
    "no running instance" into one line), as are `local` and `ray://`."""
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be auto or HOST:PORT (the head's GCS), got {address!r}")
    import grpc

    code, details = _ask(address, None)
    if code is None:
        return
    if code != grpc.StatusCode.UNAUTHENTICATED:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({code.name.lower()}: {details.splitlines()[0]})"
            f": start one with `ray start --head --port {port}` or check --address"
        )
    token = _token()
    if token is None:
        raise ConfigError(
            f"this cluster uses token authentication: set RAY_AUTH_MODE=token and {TOKEN_HELP}"
        )
    if _ask(address, token)[0] is not None:
        raise ConfigError(f"the cluster at {address} refused this machine's token: {TOKEN_HELP}")


def _ask(address: str, token: str | None) -> tuple[Any, str]:
    """(None, "") when the GCS at `address` answers GetClusterId, else (status code, details)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_SECONDS, metadata=metadata
            )
        except grpc.RpcError as e:
            return e.code(), e.details() or ""
    return None, ""


def _token() -> str | None:
    """The token Ray will send from this process: with RAY_AUTH_MODE=token, RAY_AUTH_TOKEN, or
    the file RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token; None when Ray sends none."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else ""


def schedule_line(cpu: float, gpu: float, resources: dict[str, float], at_once: int) -> str:
    """What the study scheduled, e.g. "1 CPU + 0.25 GPU per trial: 4 trials at once per GPU;
    4 at once on the cluster (2 CPU, 1 GPU)"."""
    per_trial = f"{cpu:g} CPU" + (f" + {gpu:g} GPU" if gpu else "")
    have = ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU") if resources.get(k))
    per_gpu = f"{int(1 // gpu)} trials at once per GPU; " if gpu else ""
    return f"{per_trial} per trial: {per_gpu}{at_once} at once on the cluster ({have})"


def assigned_gpus() -> str:
    """The GPU ids Ray assigned the running trial, comma-separated ("" for none)."""
    import ray

    return ",".join(str(g) for g in ray.get_gpu_ids())

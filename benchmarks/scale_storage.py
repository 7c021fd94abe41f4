"""Storage for benchmarks/bench_scale.py: local disk, local disk behind an injected latency
per request ("delayed", a pyarrow PyFileSystem handler), moto's S3 server on loopback behind
the same latency ("s3-delayed"); and the PUTs and bytes of every results file written."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from study.results import trial_rows as results  # where TrialRows calls write_atomic

PORT = 5931


class Delayed(pafs.FileSystemHandler):
    """A pyarrow filesystem handler adding `latency` seconds to every request of `base`."""

    def __init__(self, base: pafs.FileSystem, latency: float):
        self.base, self.latency = base, latency

    def _wait(self) -> None:
        time.sleep(self.latency)

    def get_type_name(self) -> str:
        return "delayed"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return self is other

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        self._wait()
        return self.base.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        self._wait()
        return self.base.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.base.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.base.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.base.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError

    def delete_file(self, path: str) -> None:
        self._wait()
        self.base.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._wait()
        self.base.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self._wait()
        self.base.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        self._wait()
        return self.base.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        self._wait()
        return self.base.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any = None) -> Any:
        self._wait()  # the PUT
        return self.base.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any = None) -> Any:
        raise NotImplementedError


class Stats:
    """PUTs and bytes of every results file write (counted around write_atomic, as TrialRows
    calls it; the file's size read from the undelayed filesystem)."""

    def __init__(self, base: pafs.FileSystem | None):
        self.base, self.puts, self.bytes, self.lock = base, 0, 0, threading.Lock()
        self.real = results.write_atomic

    def write_atomic(self, table: Any, path: Path, filesystem: Any = None, options=None) -> None:
        self.real(table, path, filesystem, options)
        size = (
            os.path.getsize(path) if filesystem is None else self.base.get_file_info(str(path)).size
        )
        with self.lock:
            self.puts, self.bytes = self.puts + 1, self.bytes + size


@contextlib.contextmanager
def storage(backend: str, latency: float) -> Any:
    """(results directory, its filesystem for the writer, the undelayed one) of a backend."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        if backend == "local":
            yield Path(tmp) / "results", None, None
            return
        if backend == "delayed":  # local disk behind `latency` per request: S3-like, no moto
            local = pafs.LocalFileSystem()
            (Path(tmp) / "results").mkdir()  # a local disk needs the folder an object store not
            yield Path(tmp) / "results", pafs.PyFileSystem(Delayed(local, latency)), local
            return
        env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "x"}
        os.environ.update(env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = pafs.S3FileSystem(
                endpoint_override=f"127.0.0.1:{PORT}", scheme="http", allow_bucket_creation=True
            )
            for _ in range(100):
                with contextlib.suppress(OSError):
                    base.create_dir("bkt")
                    break
                time.sleep(0.1)
            yield Path("bkt/results"), pafs.PyFileSystem(Delayed(base, latency)), base
        finally:
            proc.terminate()
            proc.wait()

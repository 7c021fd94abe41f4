"""Where a study lives: a local directory or any URI pyarrow's filesystems open (s3://, gs://,
abfs://, hdfs://, file://), so that every node of a cluster reaches the same experiment,
checkpoints and results (Ray Tune's `RunConfig(storage_path=…, storage_filesystem=…)`).

Credentials and endpoints come from the standard environment of each library (for S3 and
S3-compatible stores such as MinIO or Ceph: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, AWS_DEFAULT_REGION; a URI may also carry pyarrow's
query options, e.g. `s3://bucket/x?endpoint_override=host:9000&scheme=http`, kept through every
step). Credentials in the URI itself are refused (study.credentials).
`check_writable` writes and deletes a probe file before anything starts, so an unreachable,
unauthorised, read-only or mistyped store is one line (ConfigError), not a traceback after Ray
started.
"""

from __future__ import annotations

import concurrent.futures
import posixpath
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from study import credentials
from study.errors import ConfigError

CHECK_SECONDS = 60  # the most a storage check waits for an answer
SCHEMES = "a local path or a URI: s3://, gs://, abfs://, hdfs://, file://"


@dataclass(frozen=True)
class Location:
    """A directory or file in a filesystem: `fs` and `path` inside it (an absolute local path,
    or `bucket/prefix/…`), `uri` without the query (`s3://bucket/prefix/…`) and the URI's
    `query` (pyarrow's options: `endpoint_override=host:9000&scheme=http`, no secret: those
    are refused). `str()` is the whole URI, query included: what every line shows and every
    later step (summary, compaction, the report, "read them") reopens it by."""

    fs: pafs.FileSystem
    path: str
    uri: str
    query: str = ""

    def __truediv__(self, name: str) -> Location:
        joined = f"{self.uri.rstrip('/')}/{name}"
        return Location(self.fs, posixpath.join(self.path, name), joined, self.query)

    def __str__(self) -> str:
        return f"{self.uri}?{self.query}" if self.query else self.uri

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def filesystem(self) -> pafs.FileSystem | None:
        """The filesystem to hand to Tune and the results writer: None for local paths (their
        own local behaviour), the remote filesystem otherwise."""
        return None if self.local else self.fs

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as f:
            return f.read().decode()

    def write_text(self, text: str) -> None:
        with self.fs.open_output_stream(self.path) as f:
            f.write(text.encode())


def open_location(where: str | Path) -> Location:
    """A Location for a local path or a URI; a URI pyarrow cannot open, or one carrying
    credentials (study.credentials: refused, secret masked), is a ConfigError."""
    text = str(where)
    if "://" not in text:
        try:
            path = str(Path(text).expanduser().resolve())
        except (OSError, RuntimeError) as e:  # a symlink loop (RuntimeError before 3.13)
            raise ConfigError(f"--storage {text}: {_first_line(e)}; give a directory") from None
        return Location(pafs.LocalFileSystem(), path, path)
    refused = credentials.refusal(text, "--storage")
    if refused:
        raise ConfigError(refused)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (OSError, ValueError, ImportError) as e:
        raise ConfigError(f"--storage {text}: {_first_line(e)}; use {SCHEMES}") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return Location(fs, path, path)
    base, _, query = text.partition("?")
    return Location(fs, path.rstrip("/"), base.rstrip("/"), query)


def check_writable(root: Location) -> None:
    """Create `root` if needed, then write and delete a probe file in it, within CHECK_SECONDS;
    any failure is one ConfigError line naming the store and why."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        pool.submit(_probe, root).result(timeout=CHECK_SECONDS)
    except concurrent.futures.TimeoutError:
        raise ConfigError(
            f"--storage {root} did not answer within {CHECK_SECONDS} s: check its endpoint "
            "(AWS_ENDPOINT_URL for S3-compatible stores) and the network"
        ) from None
    except OSError as e:
        raise ConfigError(f"--storage {root}: {_reason(root, e)}") from None
    finally:
        pool.shutdown(wait=False)


def _probe(root: Location) -> None:
    info = root.fs.get_file_info(root.path)
    if info.type == pafs.FileType.File:
        raise NotADirectoryError(f"{root} is a file, not a directory")
    root.mkdir()
    probe = root / f".study-write-check-{secrets.token_hex(4)}"
    probe.write_text("ok")
    root.fs.delete_file(probe.path)


def _reason(root: Location, e: OSError) -> str:
    """pyarrow's error as one line, with what to do for the usual cases."""
    text = _first_line(e)
    if isinstance(e, NotADirectoryError) and "is a file" in text:
        return f"{text}: give a directory, or {SCHEMES}"
    if any(k in text for k in ("NETWORK_CONNECTION", "connect", "resolve host", "Timeout")):
        return (
            f"unreachable ({text}): check the endpoint (AWS_ENDPOINT_URL for S3-compatible "
            "stores) and the network"
        )
    if any(k in text for k in ("ACCESS_DENIED", "InvalidAccessKeyId", "SignatureDoesNotMatch")):
        return (
            f"unauthorised ({text}): set credentials that may write there "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3)"
        )
    if "NO_SUCH_BUCKET" in text or "not found" in text.lower():
        return f"the bucket does not exist ({text}): create it first"
    return f"not writable ({text})"


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."

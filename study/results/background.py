"""Writes off the caller's thread: a small pool of threads that persists "dirty" keys (a study's
trials) with a caller-given function, so Ray Tune's driver loop never waits on storage.

Why (issue 21): every reported epoch rewrites its trial's Parquet file; on object storage one
PUT costs tens of milliseconds, and a thousand concurrent trials report more epochs per second
than a serial driver can upload. Here a report only marks its trial dirty (`submit`), and
`workers` threads write dirty trials in the order they became dirty:

- **coalescing**: a trial that becomes dirty again before its write started is written once,
  with every row it has by then (the write reads the rows when it starts);
- **one writer per key**: a trial is never written by two threads at once, so an older
  snapshot can never overwrite a newer one;
- **bounded**: at most `max_pending` distinct trials wait; `submit` of one more blocks until
  a write finishes (backpressure instead of unbounded memory when storage cannot keep up);
- **errors surface**: the first exception of a write (a full disk, a refused upload) stops the
  pool and is raised, as itself, by the next `submit`, `flush` or `close`: never swallowed;
- **flush**: waits until every key submitted before it is on storage (study.tune.writer flushes
  before every snapshot of the experiment state and at the experiment's end).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class BackgroundWriter:
    """Persist submitted keys with `write(key)` on `workers` daemon threads (see module doc)."""

    def __init__(
        self,
        write: Callable[[Hashable], None],
        workers: int = 8,
        max_pending: int = 4096,
        name: str = "results-writer",
    ):
        if workers < 1 or max_pending < 1:
            raise ValueError("workers and max_pending must be at least 1")
        self._write, self.max_pending = write, max_pending
        self._cond = threading.Condition()
        self._pending: OrderedDict[Hashable, None] = OrderedDict()  # dirty, oldest first
        self._busy: set[Hashable] = set()  # being written now
        self._error: BaseException | None = None
        self.raised = False  # the error reached a caller
        self._closed = False
        self.writes = 0  # completed writes (coalesced reports count once)
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, key: Hashable) -> None:
        """Mark `key` dirty; blocks while `max_pending` other keys wait. Raises the pool's
        error, if a write failed."""
        with self._cond:
            self._raise()
            while key not in self._pending and len(self._pending) >= self.max_pending:
                self._cond.wait()
                self._raise()
            if self._closed:
                raise RuntimeError("submit to a closed BackgroundWriter")
            self._pending[key] = None
            self._cond.notify_all()

    def flush(self) -> None:
        """Block until every key submitted so far is written; raise the pool's error if any."""
        with self._cond:
            while (self._pending or self._busy) and self._error is None:
                self._cond.wait()
            self._raise()

    def close(self) -> None:
        """Flush, then stop the threads (the error, if any, is raised after they stopped)."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()

    @property
    def pending(self) -> int:
        """Keys waiting or being written now."""
        with self._cond:
            return len(self._pending) + len(self._busy)

    def _raise(self) -> None:
        if self._error is not None:
            self.raised = True
            raise self._error

    def _next(self) -> Hashable | None:
        """The oldest dirty key no thread is writing (None: stop), under the lock."""
        while True:
            if self._error is not None or (self._closed and not self._pending):
                return None
            key = next((k for k in self._pending if k not in self._busy), None)
            if key is not None:
                del self._pending[key]
                self._busy.add(key)
                return key
            self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                key = self._next()
            if key is None:
                return
            error = None
            try:
                self._write(key)
            except BaseException as e:  # noqa: BLE001 - handed to the caller, not swallowed
                error = e
            with self._cond:
                self._busy.discard(key)
                if error is not None and self._error is None:
                    self._error = error
                    self._pending[key] = None  # not written: still dirty
                elif error is None:
                    self.writes += 1
                self._cond.notify_all()

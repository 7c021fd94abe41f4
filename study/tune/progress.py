"""A study's live status (a Tune callback): trials running / done / errored of the total, the
best value so far of each objective, elapsed time and an estimate of the time left.

"Best" has one definition across the tools: each trial counts with its *last* reported epoch
(what Optuna is told when a trial ends and what the end summary and `analysis` read), so the
live best is the best over trials of their latest epoch, never an earlier epoch's peak.

On a terminal the status is one line rewritten in place (at most twice a second); otherwise
(a log, CI, `nohup`) it is a line every `every` seconds, then every tenth of the elapsed time
(at most every 10 minutes). A finished or errored trial is always a
line of its own; each trial's per-epoch line only with `study run -v` (`STUDY_VERBOSE=1`: the
callback is restored with the study on `--resume`, so it reads the setting when it runs). Every
line, the per-epoch ones included, also goes to `<study_dir>/study.log`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from time import monotonic, strftime
from typing import Any, TextIO

from ray import tune

from study.tune.writer import error_message

LOG_FILE = "study.log"
VERBOSE_ENV = "STUDY_VERBOSE"  # "1": per-epoch lines on the console too (`study run -v`)
TTY_EVERY = 0.5  # seconds between in-place refreshes on a terminal
MAX_EVERY = 600.0  # the longest gap between status lines in a log


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS (hours unbounded)."""
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class LiveStatus(tune.Callback):
    """The status line, the trial lines and the study log (see the module docstring)."""

    def __init__(self, spec: Any, study_dir: Path, every: float = 30.0):
        self.total = spec.num_trials
        self.goals = [(o.metric, o.mode) for o in spec.search.objectives]
        self.log_path = Path(study_dir) / LOG_FILE
        self.every = every  # seconds between status lines when not on a terminal
        self._reset()

    def _reset(self) -> None:
        self.start = monotonic()
        self.epochs: dict[str, tuple[int, int]] = {}  # trial id → (epochs seen, planned)
        self.latest: dict[str, dict[str, float]] = {}  # trial id → metric → its last value
        self.methods: dict[str, str] = {}  # trial id → its method (the row's)
        self.ended: set[str] | None = None  # trials that finished or errored (None: not yet seen)
        self._last_status, self._log, self._drawn = -math.inf, None, False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_log": None}  # pickled with the study (resume)

    # -- Tune's hooks
    def setup(self, **info: Any) -> None:
        self._reset()  # also when a restored study starts again

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        row = result.get("row") or {}
        epoch, epochs = int(row.get("epoch") or 0), int(row.get("epochs") or 0)
        self.epochs[trial.trial_id] = (epoch, epochs)
        if row.get("method"):
            self.methods[trial.trial_id] = str(row["method"])
        self.latest[trial.trial_id] = {
            m: float(v) for m, _ in self.goals if (v := row.get(m)) is not None and math.isfinite(v)
        }
        params = " ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in trial.config.items())
        scores = " ".join(f"{m} {_short(row.get(m))}" for m, _ in self.goals)
        line = f"{trial.trial_id} {params} | epoch {epoch}/{epochs} {scores}"
        self._emit(f"{line} {row.get('message') or ''}".rstrip(), console=self.verbose)
        self._status(trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._status(trials)  # the clock moves (and a log line comes) between results too

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        seen, planned = self.epochs.get(trial.trial_id, (0, 0))
        self.epochs[trial.trial_id] = (planned or seen, planned or seen)  # stopped early: done
        self._ended(trials).add(trial.trial_id)
        self._emit(f"{self._named(trial.trial_id)} finished{self._scores(trial.trial_id)}")
        self._status(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        seen, _ = self.epochs.get(trial.trial_id, (0, 0))
        self.epochs[trial.trial_id] = (seen, seen)  # no more work
        self._ended(trials).add(trial.trial_id)
        self._emit(f"{self._named(trial.trial_id)} errored: {error_message(trial)}")
        self._status(trials, force=True)

    def on_experiment_end(self, trials: list, **info) -> None:
        self._status(trials, force=True, final=True)
        if self._log:
            self._log.close()
            self._log = None

    # -- the status
    @property
    def best(self) -> dict[str, tuple[float, str]]:
        """Metric → (best value, trial id) over every trial's last reported epoch."""
        out: dict[str, tuple[float, str]] = {}
        for metric, mode in self.goals:
            seen = [(v[metric], tid) for tid, v in self.latest.items() if metric in v]
            if seen:
                pick = max if mode == "max" else min
                out[metric] = pick(seen, key=lambda p: p[0])
        return out

    def _named(self, trial_id: str) -> str:
        method = self.methods.get(trial_id)
        return f"{trial_id} ({method})" if method else trial_id

    def _scores(self, trial_id: str) -> str:
        last = self.latest.get(trial_id) or {}
        return ": " + " ".join(f"{m} {last[m]:.4g}" for m, _ in self.goals) if last else ""

    @property
    def verbose(self) -> bool:
        return os.environ.get(VERBOSE_ENV, "") not in ("", "0")

    def status_line(self, trials: list) -> str:
        """`[0:01:05] 3 running, 5 done, 1 errored of 16 | best (last epoch) val_acc 0.91 (id) …
        | ~0:02:10 left` — the time left from the share of all planned epochs done so far."""
        ended = self._ended(trials)
        states = [t.status for t in trials]
        running, errored = states.count("RUNNING"), states.count("ERROR")
        done = sum(t.status == "TERMINATED" and t.trial_id in ended for t in trials)
        stopped = states.count("TERMINATED") - done  # Ctrl-C: Tune terminates what runs
        elapsed = monotonic() - self.start
        best = " ".join(f"{m} {v:.4g} ({tid})" for m, (v, tid) in self.best.items())
        left = self.time_left(elapsed, done + errored)
        eta = "" if left is None else f" | ~{clock(left)} left"
        return (
            f"[{clock(elapsed)}] {running} running, {done} done, {errored} errored"
            + (f", {stopped} stopped before the end" if stopped else "")
            + f" of {self.total}"
            + (f" | best (last epoch) {best}" if best else "")
            + eta
        )

    def _ended(self, trials: list) -> set[str]:
        """Trials that finished or errored; at the first look, those a restored study found
        ended (trials Tune stops on Ctrl-C end terminated but never finished)."""
        if self.ended is None:
            self.ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        return self.ended

    def time_left(self, elapsed: float, finished: int) -> float | None:
        """Elapsed × (work left / work done), the work in epochs; trials not started yet count
        with the planned epochs of those seen. None before the first epoch."""
        done = sum(seen for seen, _ in self.epochs.values())
        planned = [p for _, p in self.epochs.values() if p]
        if not done or not planned:
            return None
        per_trial = sum(planned) / len(planned)
        unseen = max(0, self.total - len(self.epochs))
        left = sum(max(0, p - s) for s, p in self.epochs.values()) + unseen * per_trial
        return elapsed * left / done

    def _status(self, trials: list, force: bool = False, final: bool = False) -> None:
        now = monotonic()
        tty = self._tty()
        if not force and now - self._last_status < (TTY_EVERY if tty else self.interval(now)):
            return
        self._last_status = now
        line = self.status_line(trials)
        self._write_log(line)
        if tty:
            sys.stdout.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
            sys.stdout.flush()
            self._drawn = not final
        else:
            print(line, flush=True)

    def interval(self, now: float) -> float:
        """Seconds between log lines: `every` at first, then a tenth of the elapsed time (a
        week-long study writes hundreds of status lines, not tens of thousands), at most
        MAX_EVERY."""
        return min(MAX_EVERY, max(self.every, (now - self.start) / 10))

    def _emit(self, line: str, console: bool = True) -> None:
        """A line of its own: in the log always, on the console when asked (above the status
        line on a terminal)."""
        self._write_log(line)
        if console:
            prefix = "\r\x1b[K" if self._drawn else ""
            print(f"{prefix}{line}", flush=True)
            self._drawn = False

    def _write_log(self, line: str) -> None:
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", buffering=1)
        self._log.write(f"{strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    @staticmethod
    def _tty() -> bool:
        stream: TextIO = sys.stdout
        return bool(getattr(stream, "isatty", lambda: False)())

"""Whether a study is done, judged by its rows (docs/reliability.md, "Exit status").

A study exits 0 only when every planned trial has its rows, epochs 1..E each once and ok, to its
last planned epoch E, or ended with a recorded stop: a divergence (its "diverged" row) or a
scheduler's early stop (ASHA; Tune records the trial as terminated with fewer epochs). Tune's
snapshot alone is not enough: two drivers on one study once left 48 of 72 rows while Tune
counted "8 trials: 8 ok", and a study whose every trial errored exited 0.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field

from study.results import files as results_files
from study.results import read as results_read
from study.results.schema import STATUS_DIVERGED, STATUS_ERROR, STATUS_OK

COLUMNS = ["study", "trial_id", "epoch", "epochs", "status", "message"]
SHOWN = 3  # trials named per kind of shortfall


@dataclass
class Completion:
    """What a study's rows hold against its plan."""

    planned: int  # trials the spec plans
    complete: list[str] = field(default_factory=list)  # trials done (or stopped, recorded)
    errored: dict[str, str] = field(default_factory=dict)  # trial -> its error message
    short: dict[str, tuple[int, int]] = field(default_factory=dict)  # trial -> (rows, epochs)

    @property
    def missing(self) -> int:
        """Planned trials with no row at all."""
        return max(0, self.planned - len(self.complete) - len(self.errored) - len(self.short))

    @property
    def ok(self) -> bool:
        return len(self.complete) >= self.planned and not self.errored and not self.short

    def describe(self) -> str:
        """One line: what is complete and, by kind, what is not (a few trials named)."""
        parts = [f"{len(self.complete)} of {self.planned} planned trials complete"]
        errored = [f"{t}: {m}" for t, m in self.errored.items()]
        short = [f"{t} {n} of {e} epochs" for t, (n, e) in self.short.items()]
        if errored:
            parts.append(f"{len(errored)} errored ({_some(errored, '; ')})")
        if short:
            parts.append(f"{len(short)} without all their epochs ({_some(short, ', ')})")
        if self.missing:
            parts.append(f"{self.missing} with no rows")
        return "; ".join(parts)


def _some(items: list[str], sep: str) -> str:
    more = len(items) - SHOWN
    return sep.join(items[:SHOWN]) + (f"{sep}{more} more" if more > 0 else "")


def completion(
    results: str | os.PathLike, planned: int, stopped: Collection[str] = ()
) -> Completion:
    """Judge the rows under `results` against `planned` trials; `stopped` are trials a
    scheduler ended early (Tune's record), complete with whatever ok epochs they have."""
    done = Completion(planned)
    try:
        table = results_read.read(results, COLUMNS).table
    except results_files.ResultsError:  # no results at all: every planned trial is missing
        return done
    df = table.to_pandas().sort_values(["trial_id", "epoch"], kind="stable")
    df = df.drop_duplicates(["study", "trial_id", "epoch"], keep="last")
    for trial, rows in df.groupby("trial_id", sort=False):
        last = rows.iloc[-1]
        epochs = int(last["epochs"]) if last["epochs"] == last["epochs"] else 0
        contiguous = list(rows["epoch"]) == list(range(1, len(rows) + 1))
        earlier_ok = (rows["status"].iloc[:-1] == STATUS_OK).all()
        if last["status"] == STATUS_ERROR:
            done.errored[trial] = str(last["message"] or "error")
        elif contiguous and earlier_ok and last["status"] == STATUS_DIVERGED:
            done.complete.append(trial)
        elif contiguous and earlier_ok and last["status"] == STATUS_OK:
            if len(rows) == epochs or trial in stopped:
                done.complete.append(trial)
            else:
                done.short[trial] = (len(rows), epochs)
        else:
            done.short[trial] = (int((rows["status"] == STATUS_OK).sum()), epochs)
    return done

"""The live status (study.tune.progress.LiveStatus) driven by hand, without Ray: counts, best so
far, time left, a line per interval in a log, in place on a terminal, per-epoch lines behind -v and
always in the study log; and the `tune.loggers` spec key."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest
from test_tune import GOALS, TINY

from study.errors import ConfigError
from study.spec import LOGGERS, parse_spec
from study.tune import loggers, progress

SPEC = parse_spec(
    {
        **TINY,
        "name": "p",
        "search": {"objectives": GOALS, "trials": 4},
        "space": {"method.name": ["erm"]},
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trial(tid: str, status: str = "RUNNING") -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status=status, config={"method.name": "erm"})


def result(epoch: int, acc: float, ece: float) -> dict:
    row = {"epoch": epoch, "epochs": 2, "val_acc": acc, "val_cal_ece": ece, "method": "erm"}
    return {"row": row}


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress, "monotonic", c)
    return c


def drive(tmp_path, clock, monkeypatch, tty: bool, verbose: bool) -> tuple[str, str]:
    """Four trials of two epochs: a, b run; a finishes; c errors; 90 s pass in steps."""
    monkeypatch.setenv(progress.VERBOSE_ENV, "1" if verbose else "0")
    out = Stream(tty)
    monkeypatch.setattr(sys, "stdout", out)
    s = progress.LiveStatus(SPEC, tmp_path, every=30)
    s.setup()
    a, b, c = trial("a"), trial("b"), trial("c", "PENDING")
    trials = [a, b, c]
    for step in range(9):
        clock.now += 10
        s.on_step_end(step, trials)
        if step == 1:
            s.on_trial_result(step, trials, a, result(1, 0.5, 0.2))
            s.on_trial_result(step, trials, b, result(1, 0.6, 0.3))
        if step == 4:
            s.on_trial_result(step, trials, a, result(2, 0.7, 0.1))
            a.status = "TERMINATED"
            s.on_trial_complete(step, trials, a)
        if step == 6:
            c.status = "ERROR"
            s.on_trial_error(step, trials, c)
    s.on_experiment_end(trials)
    return out.getvalue(), (tmp_path / progress.LOG_FILE).read_text()


def test_status_counts_best_and_time_left(tmp_path, clock, monkeypatch):
    out, log = drive(tmp_path, clock, monkeypatch, tty=False, verbose=False)
    lines = out.splitlines()
    last = lines[-1]
    assert last.startswith("[0:01:30] 1 running, 1 done, 1 errored of 4")
    assert "best (last epoch) val_acc 0.7 (a) val_cal_ece 0.1 (a)" in last
    # 3 epochs seen (a: 2 done, b: 1) in 90 s; left: b 1 + one unseen trial × 2 = 3 epochs
    assert last.endswith("| ~0:01:30 left")
    assert "a (erm) finished: val_acc 0.7 val_cal_ece 0.1" in lines
    assert any(x.startswith("c errored:") for x in lines)
    assert not any(" | epoch " in x for x in lines)
    assert not any("\r" in x for x in lines)
    periodic = [x for x in lines if x.startswith("[") and "errored of" in x]
    assert 4 <= len(periodic) <= 8  # every 30 s of 90, plus one per finished trial and the end
    assert sum(" | epoch " in x for x in log.splitlines()) == 3  # the log has every epoch


def test_best_is_each_trials_last_epoch(tmp_path, clock, monkeypatch):
    """The live best is what Optuna and the end summary use: each trial's last epoch, not an
    earlier epoch's peak (a trial at 0.9 then 0.6 counts with 0.6)."""
    monkeypatch.setattr(sys, "stdout", Stream(False))
    s = progress.LiveStatus(SPEC, tmp_path, every=30)
    s.setup()
    a, b = trial("a"), trial("b")
    s.on_trial_result(0, [a, b], a, result(1, 0.9, 0.05))
    s.on_trial_result(0, [a, b], b, result(1, 0.7, 0.2))
    s.on_trial_result(1, [a, b], a, result(2, 0.6, 0.3))
    assert s.best == {"val_acc": (0.7, "b"), "val_cal_ece": (0.2, "b")}
    assert "best (last epoch) val_acc 0.7 (b) val_cal_ece 0.2 (b)" in s.status_line([a, b])


def test_trials_stopped_by_ctrl_c_are_not_counted_done(tmp_path, clock, monkeypatch):
    """Tune ends a study interrupted by Ctrl-C by terminating its running trials without
    finishing them; trials a restored study found finished count as done."""
    monkeypatch.setattr(sys, "stdout", Stream(False))
    s = progress.LiveStatus(SPEC, tmp_path, every=30)
    s.setup()
    old, a, b = trial("old", "TERMINATED"), trial("a"), trial("b")
    trials = [old, a, b]
    s.on_step_end(0, trials)  # a restored study: "old" finished before
    s.on_trial_result(1, trials, a, result(2, 0.7, 0.1))
    a.status = "TERMINATED"
    s.on_trial_complete(1, trials, a)
    b.status = "TERMINATED"  # Ctrl-C
    assert s.status_line(trials).startswith(
        "[0:00:00] 0 running, 2 done, 0 errored, 1 stopped before the end of 4"
    )


def test_verbose_prints_every_epoch(tmp_path, clock, monkeypatch):
    out, _ = drive(tmp_path, clock, monkeypatch, tty=False, verbose=True)
    epochs = [x for x in out.splitlines() if " | epoch " in x]
    assert epochs[0] == "a name=erm | epoch 1/2 val_acc 0.5 val_cal_ece 0.2"
    assert len(epochs) == 3


def test_terminal_status_is_rewritten_in_place(tmp_path, clock, monkeypatch):
    out, _ = drive(tmp_path, clock, monkeypatch, tty=True, verbose=False)
    assert out.count("\r\x1b[K[") >= 9  # a redraw at every step (each ≥ 0.5 s apart)
    assert out.endswith("left\n")  # the last status stays on screen
    # a trial's line replaces the status, which follows
    assert "\r\x1b[Ka (erm) finished: val_acc 0.7 val_cal_ece 0.1\n" in out


def test_time_left_unknown_before_the_first_epoch(tmp_path):
    s = progress.LiveStatus(SPEC, tmp_path, every=30)
    assert s.interval(s.start + 60) == 30
    assert s.interval(s.start + 3600) == pytest.approx(360)
    assert s.interval(s.start + 86400) == progress.MAX_EVERY
    assert s.time_left(5.0, 0) is None
    assert progress.clock(3725) == "1:02:05"


def test_loggers_key_is_validated():
    base = {**TINY, "name": "l", "space": {"method.name": ["erm"]}}
    spec = parse_spec({**base, "tune": {"loggers": ["csv", "tensorboard"]}})
    assert spec.tune.loggers == ("csv", "tensorboard")
    with pytest.raises(ConfigError, match="csv, tensorboard, mlflow; got 'wandb'"):
        parse_spec({**base, "tune": {"loggers": ["csv", "wandb"]}})
    with pytest.raises(ConfigError, match="repeats"):
        parse_spec({**base, "tune": {"loggers": ["csv", "csv"]}})
    assert set(loggers.FACTORIES) == set(LOGGERS)


def test_epoch_view_has_metrics_not_lists_or_strings():
    row = {"epoch": 3, "val_acc": 0.9, "test_bin_count": [1, 2], "config_json": "{}", "method": "x"}
    view = loggers.epoch_view({"row": row, "training_iteration": 3})
    assert view == {"training_iteration": 3, "epoch": 3, "val_acc": 0.9}
    assert loggers.epoch_view({"row": row}, identity=True)["method"] == "x"

"""A study is complete by its rows (study.results.completion): every planned trial ok to its last
planned epoch, epochs 1..E once each, or a recorded stop (divergence, a scheduler's stop)."""

from __future__ import annotations

import pytest

from study.results.completion import completion
from study.results.files import write_atomic
from study.results.schema import STATUS_DIVERGED, STATUS_ERROR, STATUS_OK, to_table

E = 3


def trial(tmp_path, name: str, statuses: list[str], epochs: list[int] | None = None) -> None:
    epochs = epochs or list(range(1, len(statuses) + 1))
    rows = [
        {
            "study": "s",
            "trial_id": name,
            "epoch": e,
            "epochs": E,
            "status": st,
            "message": st,
            "schema_version": 2,
        }
        for e, st in zip(epochs, statuses, strict=True)
    ]
    write_atomic(to_table(rows), tmp_path / f"{name}.parquet")


def test_every_trial_to_its_last_epoch_is_complete(tmp_path):
    for t in ("a", "b"):
        trial(tmp_path, t, [STATUS_OK] * E)
    done = completion(tmp_path, 2)
    assert done.ok and sorted(done.complete) == ["a", "b"]
    assert done.describe() == "2 of 2 planned trials complete"


def test_a_divergence_or_a_schedulers_stop_is_a_recorded_end(tmp_path):
    trial(tmp_path, "div", [STATUS_OK, STATUS_DIVERGED])
    trial(tmp_path, "asha", [STATUS_OK])
    assert not completion(tmp_path, 2).ok  # cut short, unless the scheduler stopped it
    assert completion(tmp_path, 2, stopped={"asha"}).ok


@pytest.mark.parametrize(
    ("statuses", "epochs", "why"),
    [
        ([STATUS_OK] * 2, None, "1 without all their epochs (t 2 of 3 epochs)"),
        ([STATUS_OK] * 2, [1, 3], "1 without all their epochs (t 2 of 3 epochs)"),  # a gap
        ([STATUS_OK, STATUS_ERROR], None, "1 errored (t: error)"),
        ([STATUS_ERROR], None, "1 errored (t: error)"),
    ],
)
def test_a_trial_short_of_its_plan_is_named(tmp_path, statuses, epochs, why):
    trial(tmp_path, "ok", [STATUS_OK] * E)
    trial(tmp_path, "t", statuses, epochs)
    done = completion(tmp_path, 2, stopped={"t"} if STATUS_ERROR in statuses else ())
    assert not done.ok
    assert done.describe() == f"1 of 2 planned trials complete; {why}"


def test_every_trial_errored_or_none_reported_is_not_a_success(tmp_path):
    assert completion(tmp_path / "nothing", 4).describe() == (
        "0 of 4 planned trials complete; 4 with no rows"
    )
    for t in "abcd":
        trial(tmp_path, t, [STATUS_ERROR])
    done = completion(tmp_path, 4)
    assert not done.ok and len(done.errored) == 4
    assert done.describe().startswith("0 of 4 planned trials complete; 4 errored (a: error; ")
    assert done.describe().endswith("; 1 more)")


def test_planned_trials_without_rows_are_counted(tmp_path):
    trial(tmp_path, "a", [STATUS_OK] * E)
    done = completion(tmp_path, 3)
    assert done.describe() == "1 of 3 planned trials complete; 2 with no rows"

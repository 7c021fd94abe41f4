"""Moving the code must not change what a trial writes (issue 19): one 2-epoch trial of every
registered method gives the same Parquet bytes as the code before the move did
(tests/fixtures/rows_before_move/, made by `python -m tests.fixtures.same_rows` at e519a83),
once the columns that differ between two runs (id, clock, host) are nulled."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.fixtures.same_rows import methods, trial_rows

BEFORE = Path(__file__).parents[1] / "fixtures" / "rows_before_move"


@pytest.mark.parametrize("method", methods())
def test_rows_are_byte_identical_to_the_code_before_the_move(method, tmp_path):
    pq.write_table(trial_rows(method, tmp_path), tmp_path / "now.parquet")
    assert (tmp_path / "now.parquet").read_bytes() == (BEFORE / f"{method}.parquet").read_bytes()

"""Results written before schema version 2 still read: a version-1 file (no `constraint`, nor
the other columns version 2 added) beside a version-2 file, through `analysis.load_results` and
pandas; the new columns come back null for the old rows (docs/study.md, "Results")."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from analysis_fixtures import grid

from analysis import load_results, synthetic
from study.results.files import write_atomic
from study.results.schema import COLUMN_NAMES, SCHEMA_VERSION

ADDED_IN_2 = {  # columns version 2 added (study/results.py); version-1 files lack them
    "constraint",
    *("test_ace", "test_cal_ace", "test_cw_ece", "test_cal_cw_ece", "test_smece", "test_cal_smece"),
}
V1_COLUMNS = [c for c in COLUMN_NAMES if c not in ADDED_IN_2]


def rows(method: str, alpha: float | None, margin: float | None, seed: int) -> pd.DataFrame:
    cells = grid(["cifar10"], ["resnet18"], [(method, alpha, margin)])
    return synthetic.epoch_rows(synthetic.trials(cells, 1, study="s"), 2, seed=seed)


def test_a_version_1_file_reads_beside_a_version_2_file(tmp_path):
    assert SCHEMA_VERSION == 2 and "constraint" in COLUMN_NAMES
    old = rows("mit_a", 1.0, 0.5, seed=0).assign(trial_id="old", schema_version=1)
    new = rows("mit_a", 1.0, 0.5, seed=1).assign(trial_id="new", constraint=True)
    v1 = synthetic.to_arrow(old).select(V1_COLUMNS)
    assert "constraint" not in v1.schema.names
    pq.write_table(v1, tmp_path / "old.parquet")
    write_atomic(synthetic.to_arrow(new), tmp_path / "new.parquet")

    alone = pd.read_parquet(tmp_path / "old.parquet")  # pandas reads the old file as it is
    assert "constraint" not in alone and len(alone) == 2 and (alone.schema_version == 1).all()

    df = load_results(tmp_path, "all").set_index(["trial_id", "epoch"]).sort_index()
    assert len(df) == 4 and set(COLUMN_NAMES) - {"trial_id", "epoch"} <= set(df.columns)
    assert df.loc["old", "constraint"].isna().all()
    assert df.loc["new", "constraint"].eq(True).all()
    assert df.loc["old", "schema_version"].eq(1).all()
    assert df.loc["old", "val_acc"].tolist() == old.sort_values("epoch").val_acc.tolist()

"""Synthetic results for the analysis tests (built on analysis.synthetic, the contract schema)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import paper, synthetic

VARIANTS = [  # (method, alpha, margin): one of each kind of label
    ("erm", None, None),
    ("mixup", 0.1, None),
    ("mixup", 1.0, None),
    ("mixup_dt", 1.0, None),
    ("mixup_sc", 1.0, None),
    ("mit_a", 1.0, 0.5),
]


def grid(
    datasets: list[str],
    models: list[str],
    variants: list[tuple] = VARIANTS,
    **metrics: float,
) -> pd.DataFrame:
    """Cells for every dataset × model × variant; `metrics` set a final value for all cells."""
    rows = [
        {"dataset": d, "model": m, "method": v, "alpha": a, "margin": g, **metrics}
        for d in datasets
        for m in models
        for v, a, g in variants
    ]
    return pd.DataFrame(rows)


def write(cells: pd.DataFrame, directory: Path, **kwargs) -> Path:
    """Write `cells` as results under `directory` (see analysis.synthetic.write_results)."""
    synthetic.write_results(cells, directory, **kwargs)
    return directory


def paper_table_cells(table: str, datasets: list[str]) -> pd.DataFrame:
    """Cells whose final metric is the paper's printed value of `table` ("Table 4" or "5")."""
    metric, _ = paper.RANKED[table]
    cells = paper.paper_cells()
    cells = cells[(cells["table"] == table) & cells["dataset"].isin(datasets)]
    return cells.rename(columns={"value": metric}).reset_index(drop=True)

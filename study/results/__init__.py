"""The results store (docs/study.md "Results"): the Parquet schema (`schema`), one trial's file
(`trial_rows`), reading a folder (`files`, `read`, `rows`), compaction (`compact`,
`compact_swap`), repair (`quarantine`), and what a study's rows say (`summary`, `completion`).
Imports core only, never torch, Ray or Optuna: `analysis` reads results through it without them.
The schema's names are re-exported here (`from study.results import SCHEMA`)."""

from study.results.schema import *  # noqa: F403
from study.results.schema import __all__ as __all__

"""A study on Ray Tune (docs/study.md): the Tuner and resume (`tuner`), what runs in a trial's
worker (`worker`), its checkpoints (`checkpoint`), Optuna (`search`), the driver's callbacks
(`writer`, `progress`, `loggers`), the study directory (`start`, `names`, `lock`, `storage`) and
the cluster (`cluster`). Imports study.train, study.results, study.spec and core.

The three names below are where a Tune snapshot made before issue 19's move (flat `study.tune`)
pickled them; `--resume` of such a study unpickles them from here (kept for one release;
tests/tune/test_old_snapshot.py)."""

from study.tune.search import StudySearch
from study.tune.worker import trainable
from study.tune.writer import Writer

__all__ = ["StudySearch", "Writer", "trainable"]

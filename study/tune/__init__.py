"""A study on Ray Tune (docs/study.md): the Tuner and resume (`tuner`), what runs in a trial's
worker (`worker`), its checkpoints (`checkpoint`), Optuna (`search`), the driver's callbacks
(`writer`, `progress`, `loggers`), the study directory (`start`, `names`, `lock`, `storage`) and
the cluster (`cluster`). Imports study.train, study.results, study.spec and core.

The names below are where a Tune snapshot made before issue 19's move (flat `study.tune`)
pickled them; `--resume` of such a study unpickles them from here, resolved on first use
(kept for one release; tests/tune/test_old_snapshot.py)."""

import importlib
from typing import Any

_PICKLED = {  # name -> its module now; imported on first use, so the package loads nothing
    "StudySearch": "study.tune.ray_private",  # new studies: study.tune.searcher
    "Writer": "study.tune.writer",
    "trainable": "study.tune.worker",
    "_trial_dirname": "study.tune.tuner",  # TuneConfig.trial_dirname_creator
}


def __getattr__(name: str) -> Any:
    if name in _PICKLED:
        return getattr(importlib.import_module(_PICKLED[name]), name)
    raise AttributeError(f"module 'study.tune' has no attribute {name!r}")

"""The spec language of a study (docs/study.md "Specs"): `model` (the data model, samplers,
the define-by-run space), `checks` (what a spec must satisfy), `parse` (YAML → StudySpec).
Above study.train (a spec's trials are TrialConfigs), below study.tune."""

from study.spec.model import GridSampler
from study.spec.parse import *  # noqa: F403 (the spec's public names, parse.__all__)
from study.spec.parse import __all__ as __all__

_GridSampler = GridSampler  # the name Tune snapshots of v0.1 pickled (a grid study's sampler)

"""mixup-calibration-study: Ray Tune studies of mixup and calibration (Wang et al., CVPR 2023).

Layers, each importing only those below it (docs/architecture.md, tests/test_layers.py):
core (this folder's modules) ← study.results.schema ← study.train, study.results ←
study.spec ← study.tune ← study.cli."""

from study import compat

compat.install()  # v0.2's module paths, for the Tune snapshots of studies begun before the move

"""Training one trial (Wang et al., CVPR 2023, Sec. 3-5; docs/protocol.md): the config
dataclasses (`config`) and their checking (`resolve`), the datasets (`data`, `readers`,
`loader`), `models/` and `methods/` (registries), the loop (`engine`, `trial`), the metrics
(`metrics`, `calibration`). Imports core and study.results.schema only: no Ray, no Optuna."""

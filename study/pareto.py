"""The accuracy–calibration Pareto front (the dilemma of Wang et al., CVPR 2023): used by the
study's end summary and by the analysis' dilemma plot (analysis.stats re-exports it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Mask of the points no other point dominates, maximising `x` and minimising `y`.

    q dominates p when q.x ≥ p.x and q.y ≤ p.y, one strictly. Sorting by x (descending) gives
    O(n log n): a point is on the front when it has the lowest y of its x and a lower y than
    every point of strictly greater x. NaN points are never on the front.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    order = finite[np.lexsort((y[finite], -x[finite]))]
    xs, ys = x[order], y[order]
    starts = np.r_[True, xs[1:] != xs[:-1]] if len(xs) else np.zeros(0, bool)
    group = np.cumsum(starts) - 1
    group_min = ys[starts]
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]] if len(xs) else group_min
    mask = np.zeros(len(x), dtype=bool)
    mask[order] = (ys == group_min[group]) & (ys < before[group])
    return mask

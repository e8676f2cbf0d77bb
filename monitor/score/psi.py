"""Population Stability Index: the one definition, for every binning.

::

    PSI = sum_i (r_i - c_i) * ln(r_i / c_i)

over bin shares ``r`` (reference) and ``c`` (current). An empty bin's share becomes
0.0001, or, where the smallest non-empty share is already at most 0.0001, that share
divided by 10^6, as Evidently 0.7 does, so that PSI stays finite (:func:`fill_empty`).

The bins are the caller's: scoring from profiles uses coarse reference-quantile bins
(:mod:`monitor.score.drift.profiled`), the raw-array test Evidently's own
(:mod:`monitor.score.drift.distance`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["EMPTY_BIN_SHARE", "fill_empty", "psi"]

EMPTY_BIN_SHARE = 1e-4


def fill_empty(shares: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Replace empty bins' shares as Evidently's PSI does, so that logarithms stay finite."""
    empty = shares == 0
    if not empty.any():
        return shares
    smallest = float(shares[~empty].min())
    filler = smallest / 10**6 if smallest <= EMPTY_BIN_SHARE else EMPTY_BIN_SHARE
    return np.where(empty, filler, shares)


def psi(reference_shares: npt.ArrayLike, current_shares: npt.ArrayLike) -> float:
    """PSI between two vectors of bin shares (each summing to 1)."""
    r = fill_empty(np.asarray(reference_shares, dtype=np.float64))
    c = fill_empty(np.asarray(current_shares, dtype=np.float64))
    return float(np.sum((r - c) * np.log(r / c)))

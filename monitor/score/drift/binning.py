"""Bins and bin shares as Evidently 0.7 computes them for PSI, Jensen-Shannon and Hellinger.

Evidently bins a numeric feature with more than 20 distinct reference values into
equal-width Sturges bins over the reference and current values together, and counts
every other feature by its distinct values (the union of both samples' values). The
bins therefore depend on the current window as well; a fitted test keeps the sorted
reference so that each window is binned the way Evidently bins it.

PSI fills empty bins as :func:`monitor.score.psi.fill_empty` says (re-exported here).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import numpy.typing as npt

from monitor.score.drift.base import FloatArray, NumericSample
from monitor.score.psi import fill_empty

__all__ = [
    "MAX_DISCRETE_VALUES",
    "aligned_counts",
    "fill_empty",
    "histogram_counts",
    "is_discrete",
    "numeric_shares",
    "shares_by_value",
    "sturges_edges",
]

MAX_DISCRETE_VALUES = 20
"""A numeric reference with at most this many distinct values is counted by value."""


def sturges_edges(low: float, high: float, count: int, integer: bool) -> FloatArray:
    """The edges ``numpy.histogram_bin_edges(a, "sturges")`` returns, from a summary of ``a``.

    Args:
        low: ``a.min()``.
        high: ``a.max()``.
        count: ``a.size``.
        integer: Whether ``a`` has an integer dtype (numpy then keeps bins at least 1 wide).
    """
    width = (high - low) / (np.log2(count) + 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    if width:
        if integer and width < 1:
            width = 1.0
        bins = int(np.ceil((high - low) / width))
    else:
        bins = 1
    return np.linspace(low, high, bins + 1)


def histogram_counts(sorted_values: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    """``numpy.histogram(values, edges)[0]`` for already sorted values.

    Bins are closed on the left, and the last one on the right too.
    """
    cumulative = np.concatenate(
        (
            sorted_values.searchsorted(edges[:-1], "left"),
            sorted_values.searchsorted(edges[-1:], "right"),
        )
    )
    return np.diff(cumulative)


def is_discrete(reference: NumericSample) -> bool:
    """Whether Evidently counts this numeric reference by value rather than in bins."""
    return int(np.count_nonzero(np.diff(reference.sorted))) + 1 <= MAX_DISCRETE_VALUES


def numeric_shares(
    reference: NumericSample, current: NumericSample, discrete: bool
) -> tuple[FloatArray, FloatArray]:
    """Reference and current shares in Evidently's bins for a numeric feature.

    Args:
        reference: The reference's values.
        current: The window's values.
        discrete: :func:`is_discrete` of the reference.
    """
    if not discrete:
        edges = sturges_edges(
            min(reference.sorted[0], current.sorted[0]),
            max(reference.sorted[-1], current.sorted[-1]),
            reference.count + current.count,
            reference.integer and current.integer,
        )
        return (
            histogram_counts(reference.sorted, edges) / reference.count,
            histogram_counts(current.sorted, edges) / current.count,
        )
    return shares_by_value(_value_counts(reference.sorted), _value_counts(current.sorted))


def aligned_counts(
    reference: Mapping[Hashable, int], current: Mapping[Hashable, int]
) -> tuple[list[Hashable], FloatArray, FloatArray]:
    """Every value either sample holds (the reference's first), and each one's counts."""
    keys = list(reference)
    keys.extend(k for k in current if k not in reference)
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    return keys, ref, cur


def shares_by_value(
    reference: Mapping[Hashable, int], current: Mapping[Hashable, int]
) -> tuple[FloatArray, FloatArray]:
    """Each sample's share of every value either sample holds."""
    _, ref, cur = aligned_counts(reference, current)
    return ref / ref.sum(), cur / cur.sum()


def _value_counts(sorted_values: FloatArray) -> dict[Hashable, int]:
    keys, counts = np.unique(sorted_values, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))

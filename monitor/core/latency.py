"""Latency quantiles in constant memory: latencies in, p50/p95/p99 out.

Stage: core. A window's latencies are read from its rows in chunks and counted on
fixed logarithmic bins, each 1% wider than the one below (the scheme of DDSketch), so
that scoring a window of any size holds one small array instead of every latency of
the window (an open window of a busy model was millions of floats, rescored on every
pass, and the monitor's memory grew with it).

Precision: a quantile is reported as the linear interpolation, as ``numpy.quantile``
does, between the representatives of the bins holding the two ranks around it; each
representative is within 0.5% (relative) of every value in its bin, so a reported
quantile is within ``0.005 * exact + 1e-6`` seconds of the exact ``numpy.quantile``
of the same latencies (latencies under 1 microsecond are counted as 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["RELATIVE_ERROR", "LatencyHistogram"]

GROWTH = 1.01
"""Each bin's upper edge over its lower edge."""
SMALLEST = 1e-6
"""Latencies below this (seconds) fall in bin 0, reported as 0."""
LARGEST = 3600.0
"""The contract's largest latency; larger values (none pass validation) are clipped."""
RELATIVE_ERROR = math.sqrt(GROWTH) - 1
"""Largest relative distance from a bin's representative to a value in it (0.4988%)."""
_BINS = 1 + math.ceil(math.log(LARGEST / SMALLEST) / math.log(GROWTH))
_LOG_GROWTH = math.log(GROWTH)


def _representatives() -> NDArray[np.float64]:
    """Bin 0 stands for 0; bin i >= 1 covers ``[S g^(i-1), S g^i)``, its geometric middle."""
    i = np.arange(_BINS, dtype=np.float64)
    middle = SMALLEST * GROWTH ** (i - 0.5)
    middle[0] = 0.0
    return middle


_REPRESENTATIVES = _representatives()


@dataclass
class LatencyHistogram:
    """Counts of latencies on fixed logarithmic bins; mergeable.

    ``zero()`` is the empty histogram, ``update(values)`` counts a batch, ``merge``
    adds another's counts.
    """

    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(_BINS, dtype=np.int64))

    @classmethod
    def zero(cls) -> LatencyHistogram:
        """The histogram of no latencies."""
        return cls()

    @property
    def total(self) -> int:
        """How many latencies were counted."""
        return int(self.counts.sum())

    def update(self, values: NDArray[np.float64]) -> None:
        """Count a batch of latencies in seconds (NaN, for a missing one, is skipped)."""
        values = values[~np.isnan(values)]
        if not len(values):
            return
        clipped = np.clip(values, SMALLEST, LARGEST)
        index = np.ceil(np.log(clipped / SMALLEST) / _LOG_GROWTH).astype(np.int64)
        # A value on an edge lands in the bin below it, still within the bound; the
        # smallest value counted, SMALLEST itself, goes to bin 1.
        index = np.maximum(index, 1)
        index = np.where(values < SMALLEST, 0, np.minimum(index, _BINS - 1))
        self.counts += np.bincount(index, minlength=_BINS)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """The histogram of both sets of latencies."""
        return LatencyHistogram(self.counts + other.counts)

    def quantiles(self, qs: Sequence[float]) -> tuple[float, ...] | None:
        """The latencies at ``qs`` (numpy's linear interpolation between the ranks
        around each), or None when nothing was counted; see the module's precision."""
        n = self.total
        if n == 0:
            return None
        cumulative = np.cumsum(self.counts)
        out = []
        for q in qs:
            h = (n - 1) * q
            low, high = math.floor(h), math.ceil(h)
            # The bin holding rank r (0-based) is the first whose cumulative count > r.
            lo_bin, hi_bin = np.searchsorted(cumulative, [low, high], side="right")
            lo, hi = _REPRESENTATIVES[lo_bin], _REPRESENTATIVES[hi_bin]
            out.append(float(lo + (h - low) * (hi - lo)))
        return tuple(out)

"""Drift tests that give a distance: PSI, Jensen-Shannon, normalised Wasserstein, Hellinger.

Each follows Evidently 0.7's test of the same name, bins included (see
:mod:`monitor.score.drift.binning`), and reports drift when the distance reaches the
threshold (``distance >= threshold``). Jensen-Shannon uses the natural logarithm, so it
lies in ``[0, sqrt(ln 2)]``. Hellinger is computed as ``sqrt(sum((sqrt p - sqrt q)^2) / 2)``,
equal to Evidently's ``sqrt(1 - sum(sqrt(p q)))`` but without its cancellation, so that
identical samples give exactly 0.

PSI, Jensen-Shannon and Hellinger differ only in their name, their distance between
bin shares and, for Hellinger, how numbers are binned: each is one
:class:`BinnedDistance`. Wasserstein is a :class:`~monitor.score.drift.base.SampleTest`
on the sorted values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias

import numpy as np
from scipy.special import rel_entr

from monitor.score.drift.base import (
    Comparison,
    DriftScore,
    FeatureKind,
    FloatArray,
    NumericSample,
    SampleTest,
    StatisticKind,
    Values,
    category_counts,
    check_fit,
    judged,
    numeric_sample,
)
from monitor.score.drift.binning import (
    histogram_counts,
    is_discrete,
    numeric_shares,
    shares_by_value,
    sturges_edges,
)
from monitor.score.psi import psi

__all__ = ["BinnedDistance", "Hellinger", "JensenShannon", "Psi", "Wasserstein"]

MIN_WASSERSTEIN_SCALE = 0.001
"""Evidently divides by the reference's standard deviation, but by no less than this."""

_BOTH: frozenset[FeatureKind] = frozenset({"numeric", "categorical", "boolean"})


BinnedTestName = Literal["psi", "jensenshannon", "hellinger"]

ShareDistance: TypeAlias = Callable[[FloatArray, FloatArray], float]
"""A distance between two vectors of bin shares, reference first."""

NumericBinning: TypeAlias = Callable[
    [NumericSample, NumericSample, bool], tuple[FloatArray, FloatArray]
]
"""Reference and current shares of a numeric feature, given whether the reference is
counted by value (:func:`~monitor.score.drift.binning.is_discrete`)."""


@dataclass(frozen=True, slots=True)
class BinnedDistance:
    """A distance between the reference's and a window's shares on Evidently's bins.

    Categorical and boolean features are counted by value; numeric ones are binned by
    ``numeric_binning``.
    """

    name: BinnedTestName
    default_threshold: float
    distance: ShareDistance
    numeric_binning: NumericBinning = numeric_shares
    drifts_when: Comparison = operator.ge
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = _BOTH

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedBinned:
        """Keep the reference for binning.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        if kind == "numeric":
            sample = numeric_sample(reference, "reference")
            return FittedBinned(self, sample, None, is_discrete(sample), chosen, sample.count)
        counts = category_counts(reference, "reference")
        return FittedBinned(self, None, counts, True, chosen, sum(counts.values()))


@dataclass(frozen=True, slots=True)
class FittedBinned:
    """A reference kept for a :class:`BinnedDistance`."""

    test: BinnedDistance
    sample: NumericSample | None
    """Numeric features: the sorted values."""
    counts: Mapping[Hashable, int] | None
    """Categorical and boolean features: the value counts."""
    discrete: bool
    """Numeric features: whether Evidently counts the values rather than binning them."""
    threshold: float
    reference_count: int

    def shares(self, current: Values) -> tuple[FloatArray, FloatArray, int]:
        """Reference and current shares on the bins, and the current count."""
        if self.sample is not None:
            cur = numeric_sample(current, "current window")
            return (*self.test.numeric_binning(self.sample, cur, self.discrete), cur.count)
        assert self.counts is not None
        cur_counts = category_counts(current, "current window")
        return (*shares_by_value(self.counts, cur_counts), sum(cur_counts.values()))

    def score(self, current: Values) -> DriftScore:
        """The distance of ``current`` from the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        ref, cur, n_cur = self.shares(current)
        value = self.test.distance(ref, cur)
        return judged(self.test, value, None, self.threshold, (self.reference_count, n_cur))


def jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon distance (natural logarithm) between two vectors of shares."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0
    return float(np.sqrt((np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2.0))


def hellinger(p: FloatArray, q: FloatArray) -> float:
    """Hellinger distance between two vectors of shares that each sum to 1."""
    return min(1.0, float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)))


def _hellinger_shares(
    ref: NumericSample, cur: NumericSample, discrete: bool
) -> tuple[FloatArray, FloatArray]:
    # Evidently's Hellinger takes Sturges bins over the distinct values of both samples,
    # whether or not the reference has few values.
    distinct = np.union1d(ref.sorted, cur.sorted)
    edges = sturges_edges(distinct[0], distinct[-1], distinct.size, ref.integer and cur.integer)
    return (
        histogram_counts(ref.sorted, edges) / ref.count,
        histogram_counts(cur.sorted, edges) / cur.count,
    )


Psi: Final = BinnedDistance("psi", 0.1, psi)
"""Population Stability Index, ``sum((r - c) * ln(r / c))`` over Evidently's bins."""

JensenShannon: Final = BinnedDistance("jensenshannon", 0.1, jensen_shannon)
"""Jensen-Shannon distance over Evidently's bins (empty bins stay empty)."""

Hellinger: Final = BinnedDistance("hellinger", 0.1, hellinger, _hellinger_shares)
"""Hellinger distance; a numeric feature gets Sturges bins over both samples' distinct
values, as in Evidently."""


def _wasserstein(reference: NumericSample, current: NumericSample) -> tuple[float, None]:
    ref, cur = reference.sorted, current.sorted
    both = np.sort(np.concatenate((ref, cur)), kind="mergesort")
    ref_cdf = ref.searchsorted(both[:-1], "right") / ref.size
    cur_cdf = cur.searchsorted(both[:-1], "right") / cur.size
    scale = max(float(np.std(ref)), MIN_WASSERSTEIN_SCALE)
    return float(np.dot(np.abs(ref_cdf - cur_cdf), np.diff(both))) / scale, None


Wasserstein: Final = SampleTest("wasserstein", 0.1, "distance", operator.ge, _wasserstein)
"""First Wasserstein distance divided by the reference's (population) standard deviation."""

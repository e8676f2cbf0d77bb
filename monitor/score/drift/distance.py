"""Drift tests that give a distance: PSI, Jensen-Shannon, normalised Wasserstein, Hellinger.

Each follows Evidently 0.7's test of the same name, bins included (see
:mod:`monitor.score.drift.binning`), and reports drift when the distance reaches the
threshold (``distance >= threshold``). Jensen-Shannon uses the natural logarithm, so it
lies in ``[0, sqrt(ln 2)]``. Hellinger is computed as ``sqrt(sum((sqrt p - sqrt q)^2) / 2)``,
equal to Evidently's ``sqrt(1 - sum(sqrt(p q)))`` but without its cancellation, so that
identical samples give exactly 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from scipy.special import rel_entr

from monitor.score.drift.base import (
    DriftScore,
    FeatureKind,
    FloatArray,
    NumericSample,
    StatisticKind,
    Values,
    category_counts,
    check_fit,
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

__all__ = ["Hellinger", "JensenShannon", "Psi", "Wasserstein"]

MIN_WASSERSTEIN_SCALE = 0.001
"""Evidently divides by the reference's standard deviation, but by no less than this."""

_BOTH: frozenset[FeatureKind] = frozenset({"numeric", "categorical", "boolean"})


BinnedTestName = Literal["psi", "jensenshannon", "hellinger"]


@dataclass(frozen=True, slots=True)
class FittedBinned:
    """A reference kept for the tests that compare shares on Evidently's bins."""

    test: BinnedTestName
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
            if self.test == "hellinger":
                return (*_hellinger_shares(self.sample, cur), cur.count)
            return (*numeric_shares(self.sample, cur, self.discrete), cur.count)
        assert self.counts is not None
        cur_counts = category_counts(current, "current window")
        return (*shares_by_value(self.counts, cur_counts), sum(cur_counts.values()))

    def score(self, current: Values) -> DriftScore:
        """The distance of ``current`` from the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        ref, cur, n_cur = self.shares(current)
        if self.test == "psi":
            value = psi(ref, cur)
        elif self.test == "jensenshannon":
            value = jensen_shannon(ref, cur)
        else:
            value = hellinger(ref, cur)
        return DriftScore(
            self.test,
            value,
            None,
            self.threshold,
            value >= self.threshold,
            self.reference_count,
            n_cur,
        )


def jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon distance (natural logarithm) between two vectors of shares."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0
    return float(np.sqrt((np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2.0))


def hellinger(p: FloatArray, q: FloatArray) -> float:
    """Hellinger distance between two vectors of shares that each sum to 1."""
    return min(1.0, float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)))


def _hellinger_shares(ref: NumericSample, cur: NumericSample) -> tuple[FloatArray, FloatArray]:
    # Evidently's Hellinger takes Sturges bins over the distinct values of both samples.
    distinct = np.union1d(ref.sorted, cur.sorted)
    edges = sturges_edges(distinct[0], distinct[-1], distinct.size, ref.integer and cur.integer)
    return (
        histogram_counts(ref.sorted, edges) / ref.count,
        histogram_counts(cur.sorted, edges) / cur.count,
    )


def _fit_binned(
    test: Psi | JensenShannon | Hellinger,
    reference: Values,
    kind: FeatureKind,
    threshold: float | None,
) -> FittedBinned:
    _, chosen = check_fit(test, kind, threshold)
    if kind == "numeric":
        sample = numeric_sample(reference, "reference")
        return FittedBinned(test.name, sample, None, is_discrete(sample), chosen, sample.count)
    counts = category_counts(reference, "reference")
    return FittedBinned(test.name, None, counts, True, chosen, sum(counts.values()))


@dataclass(frozen=True, slots=True)
class Psi:
    """Population Stability Index, ``sum((r - c) * ln(r / c))`` over Evidently's bins."""

    name: ClassVar[BinnedTestName] = "psi"
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = _BOTH

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedBinned:
        """Keep the reference for binning.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        return _fit_binned(self, reference, kind, threshold)


@dataclass(frozen=True, slots=True)
class JensenShannon:
    """Jensen-Shannon distance over Evidently's bins (empty bins stay empty)."""

    name: ClassVar[BinnedTestName] = "jensenshannon"
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = _BOTH

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedBinned:
        """Keep the reference for binning.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        return _fit_binned(self, reference, kind, threshold)


@dataclass(frozen=True, slots=True)
class Hellinger:
    """Hellinger distance; a numeric feature gets Sturges bins over both samples'
    distinct values, as in Evidently."""

    name: ClassVar[BinnedTestName] = "hellinger"
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = _BOTH

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedBinned:
        """Keep the reference for binning.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        return _fit_binned(self, reference, kind, threshold)


@dataclass(frozen=True, slots=True)
class Wasserstein:
    """First Wasserstein distance divided by the reference's standard deviation."""

    name: ClassVar[str] = "wasserstein"
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"numeric"})

    def fit(
        self, reference: Values, kind: FeatureKind = "numeric", threshold: float | None = None
    ) -> FittedWasserstein:
        """Sort the reference and take its (population) standard deviation.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        sample = numeric_sample(reference, "reference")
        scale = max(float(np.std(sample.sorted)), MIN_WASSERSTEIN_SCALE)
        return FittedWasserstein(sample, scale, chosen)


@dataclass(frozen=True, slots=True)
class FittedWasserstein:
    """The sorted reference and its spread."""

    reference: NumericSample
    scale: float
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """``W1(reference, current) / scale``.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = numeric_sample(current, "current window")
        ref = self.reference.sorted
        both = np.sort(np.concatenate((ref, cur.sorted)), kind="mergesort")
        ref_cdf = ref.searchsorted(both[:-1], "right") / ref.size
        cur_cdf = cur.sorted.searchsorted(both[:-1], "right") / cur.count
        value = float(np.dot(np.abs(ref_cdf - cur_cdf), np.diff(both))) / self.scale
        return DriftScore(
            Wasserstein.name,
            value,
            None,
            self.threshold,
            value >= self.threshold,
            ref.size,
            cur.count,
        )

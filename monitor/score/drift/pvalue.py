"""Drift tests that give a p-value: Kolmogorov-Smirnov, chi-squared, two-proportion Z.

Each follows Evidently 0.7's test of the same name: the same statistic, the same
p-value and the same rule for "drifted" (KS: ``p <= threshold``; chi-squared and Z:
``p < threshold``), with two deliberate differences, both where Evidently's answer is
not a number one can use: a chi-squared test over a single category gives p = 1 (scipy
gives NaN), and the Z test's p-value is ``2 * sf(|z|)``, which keeps its precision in
the far tail where Evidently's ``2 * (1 - cdf(|z|))`` rounds to 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import stats

from monitor.score.drift.base import (
    DriftScore,
    FeatureKind,
    NumericSample,
    StatisticKind,
    Values,
    category_counts,
    check_fit,
    numeric_sample,
)

__all__ = ["ChiSquare", "KolmogorovSmirnov", "TwoProportionZ"]

_EXACT_KS_MAX_N = 10_000
"""scipy's ``ks_2samp(method="auto")`` computes exact p-values up to this sample size."""

_EXACT_KS_FAILED = "ks_2samp: Exact calculation unsuccessful"


@dataclass(frozen=True, slots=True)
class KolmogorovSmirnov:
    """Two-sample Kolmogorov-Smirnov test, two-sided (``scipy.stats.ks_2samp``)."""

    name: ClassVar[str] = "ks"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"numeric"})

    def fit(
        self, reference: Values, kind: FeatureKind = "numeric", threshold: float | None = None
    ) -> FittedKolmogorovSmirnov:
        """Sort the reference once.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        return FittedKolmogorovSmirnov(numeric_sample(reference, "reference"), chosen)


@dataclass(frozen=True, slots=True)
class FittedKolmogorovSmirnov:
    """The sorted reference of a KS test."""

    reference: NumericSample
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """KS statistic and p-value of ``current`` against the reference.

        Small samples get scipy's exact p-value; above 10,000 values in either sample,
        the statistic is computed here without sorting the reference again and the
        p-value is Smirnov's asymptotic one, as ``ks_2samp`` computes it.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = numeric_sample(current, "current window")
        n1, n2 = self.reference.count, cur.count
        if max(n1, n2) <= _EXACT_KS_MAX_N:
            with warnings.catch_warnings():
                # Where the exact computation fails, scipy warns and falls back to the
                # asymptotic p-value; the fallback is the answer, not a fault to report.
                warnings.filterwarnings("ignore", _EXACT_KS_FAILED, RuntimeWarning)
                result = stats.ks_2samp(self.reference.sorted, cur.sorted)
            d, p = float(result.statistic), float(result.pvalue)
        else:
            # Sorted queries make the searches cache-friendly; the maximum is the same.
            both = np.sort(np.concatenate([self.reference.sorted, cur.sorted]), kind="stable")
            diffs = (
                self.reference.sorted.searchsorted(both, side="right") / n1
                - cur.sorted.searchsorted(both, side="right") / n2
            )
            d = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
            m, n = sorted([float(n1), float(n2)], reverse=True)
            p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
        return DriftScore(KolmogorovSmirnov.name, d, p, self.threshold, p <= self.threshold, n1, n2)


@dataclass(frozen=True, slots=True)
class ChiSquare:
    """Pearson's chi-squared goodness of fit of the window to the reference's frequencies.

    The expected count of each value is its reference count scaled to the window's size,
    over every value either sample holds (``scipy.stats.chisquare``, k - 1 degrees of
    freedom). A value the reference never had makes the statistic infinite and p = 0.
    """

    name: ClassVar[str] = "chisquare"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"categorical", "boolean"})

    def fit(
        self, reference: Values, kind: FeatureKind = "categorical", threshold: float | None = None
    ) -> FittedChiSquare:
        """Count the reference's values.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        return FittedChiSquare(category_counts(reference, "reference"), chosen)


@dataclass(frozen=True, slots=True)
class FittedChiSquare:
    """The reference's value counts for a chi-squared test."""

    counts: Mapping[Hashable, int]
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """Chi-squared statistic and p-value of ``current`` against the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = category_counts(current, "current window")
        n_ref, n_cur = sum(self.counts.values()), sum(cur.values())
        keys = list(self.counts)
        keys.extend(k for k in cur if k not in self.counts)
        expected = np.array([self.counts.get(k, 0) for k in keys], dtype=np.float64)
        expected *= n_cur / n_ref
        observed = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
        if (expected == 0).any():
            statistic, p = float("inf"), 0.0
        else:
            statistic = float(np.sum((observed - expected) ** 2 / expected))
            p = float(stats.chi2.sf(statistic, len(keys) - 1)) if len(keys) > 1 else 1.0
        return DriftScore(
            ChiSquare.name, statistic, p, self.threshold, p < self.threshold, n_ref, n_cur
        )


@dataclass(frozen=True, slots=True)
class TwoProportionZ:
    """Two-proportion Z test with a pooled variance, two-sided.

    The proportion compared is the share of values other than the smallest value either
    sample holds (Evidently's choice; for a boolean feature, the share of ``True``).
    """

    name: ClassVar[str] = "z"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"boolean", "categorical"})

    def fit(
        self, reference: Values, kind: FeatureKind = "boolean", threshold: float | None = None
    ) -> FittedTwoProportionZ:
        """Count the reference's values.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        return FittedTwoProportionZ(category_counts(reference, "reference"), chosen)


@dataclass(frozen=True, slots=True)
class FittedTwoProportionZ:
    """The reference's value counts for a Z test."""

    counts: Mapping[Hashable, int]
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """z and its p-value for ``current`` against the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = category_counts(current, "current window")
        n1, n2 = sum(self.counts.values()), sum(cur.values())
        if len(self.counts) == 1 and self.counts.keys() == cur.keys():
            z, p = 0.0, 1.0
        else:
            first = _smallest({*self.counts, *cur})
            p1 = float(n1 - self.counts.get(first, 0)) / n1
            p2 = float(n2 - cur.get(first, 0)) / n2
            pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
            z = float((p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)))
            p = float(2 * stats.norm.sf(abs(z)))
        return DriftScore(TwoProportionZ.name, z, p, self.threshold, p < self.threshold, n1, n2)


def _smallest(keys: set[Hashable]) -> Hashable:
    try:
        return min(keys)  # type: ignore[type-var]
    except TypeError:  # values of mixed types: order them by their spelling
        return min(keys, key=repr)

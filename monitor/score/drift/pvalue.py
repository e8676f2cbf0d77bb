"""Drift tests that give a p-value: Kolmogorov-Smirnov, chi-squared, two-proportion Z.

Each follows Evidently 0.7's test of the same name: the same statistic, the same
p-value and the same rule for "drifted" (KS: ``p <= threshold``; chi-squared and Z:
``p < threshold``), with two deliberate differences, both where Evidently's answer is
not a number one can use: a chi-squared test over a single category gives p = 1 (scipy
gives NaN), and the Z test's p-value is ``2 * sf(|z|)``, which keeps its precision in
the far tail where Evidently's ``2 * (1 - cdf(|z|))`` rounds to 0.

KS is a :class:`~monitor.score.drift.base.SampleTest` on the sorted values. Chi-squared
and Z both compare value counts: each is one :class:`CountsTest`, with its statistic
(:func:`chi_square`, :func:`two_proportion_z`) computed on count vectors aligned over
the values either sample holds, the same functions the profile-based tests
(:mod:`monitor.score.drift.profiled`) call on histograms.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

import numpy as np
from scipy import stats

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
)
from monitor.score.drift.binning import aligned_counts

__all__ = [
    "ChiSquare",
    "CountsTest",
    "KolmogorovSmirnov",
    "TwoProportionZ",
    "chi_square",
    "ks_asymptotic_p",
    "two_proportion_z",
]

_EXACT_KS_MAX_N = 10_000
"""scipy's ``ks_2samp(method="auto")`` computes exact p-values up to this sample size."""

_EXACT_KS_FAILED = "ks_2samp: Exact calculation unsuccessful"


def _ks(reference: NumericSample, current: NumericSample) -> tuple[float, float]:
    # Small samples get scipy's exact p-value; above 10,000 values in either sample, the
    # statistic is computed here without sorting the reference again and the p-value is
    # Smirnov's asymptotic one, as ``ks_2samp`` computes it.
    n1, n2 = reference.count, current.count
    if max(n1, n2) <= _EXACT_KS_MAX_N:
        with warnings.catch_warnings():
            # Where the exact computation fails, scipy warns and falls back to the
            # asymptotic p-value; the fallback is the answer, not a fault to report.
            warnings.filterwarnings("ignore", _EXACT_KS_FAILED, RuntimeWarning)
            result = stats.ks_2samp(reference.sorted, current.sorted)
        return float(result.statistic), float(result.pvalue)
    # Sorted queries make the searches cache-friendly; the maximum is the same.
    both = np.sort(np.concatenate([reference.sorted, current.sorted]), kind="stable")
    diffs = (
        reference.sorted.searchsorted(both, side="right") / n1
        - current.sorted.searchsorted(both, side="right") / n2
    )
    d = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
    return d, ks_asymptotic_p(d, n1, n2)


KolmogorovSmirnov: Final = SampleTest("ks", 0.05, "p_value", operator.le, _ks)
"""Two-sample Kolmogorov-Smirnov test, two-sided (``scipy.stats.ks_2samp``)."""


def ks_asymptotic_p(d: float, n1: int, n2: int) -> float:
    """scipy's ``ks_2samp(method="asymp")`` two-sided p-value for statistic ``d``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def chi_square(reference: FloatArray, current: FloatArray) -> tuple[float, float]:
    """Pearson's chi-squared statistic and p-value of the current counts against the
    reference's frequencies (``scipy.stats.chisquare``, k - 1 degrees of freedom).

    Args:
        reference: The reference's count of each value, over values either sample holds.
        current: The window's counts of the same values.
    """
    expected = reference * (current.sum() / reference.sum())
    if (expected == 0).any():
        return math.inf, 0.0
    statistic = float(np.sum((current - expected) ** 2 / expected))
    p = float(stats.chi2.sf(statistic, reference.size - 1)) if reference.size > 1 else 1.0
    return statistic, p


def two_proportion_z(reference: FloatArray, current: FloatArray, first: int) -> tuple[float, float]:
    """Pooled two-proportion z and its two-sided p-value, for the share of values other
    than value ``first``.

    Args:
        reference: The reference's count of each value.
        current: The window's counts of the same values.
        first: The index of the smallest value either sample holds.
    """
    if np.count_nonzero(reference) == 1 and np.array_equal(reference > 0, current > 0):
        return 0.0, 1.0
    n1, n2 = float(reference.sum()), float(current.sum())
    p1 = (n1 - reference[first]) / n1
    p2 = (n2 - current[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = float((p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)))
    return z, float(2 * stats.norm.sf(abs(z)))


CountsStatistic: TypeAlias = Callable[
    [Mapping[Hashable, int], Mapping[Hashable, int]], tuple[float, float]
]
"""A statistic and its p-value from the reference's and the window's value counts."""


@dataclass(frozen=True, slots=True)
class CountsTest:
    """A p-value test of a window's value counts against the reference's; drift when
    ``p < threshold``."""

    name: str
    kinds: frozenset[FeatureKind]
    compare: CountsStatistic
    default_threshold: float = 0.05
    drifts_when: Comparison = operator.lt
    statistic: ClassVar[StatisticKind] = "p_value"

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedCounts:
        """Count the reference's values.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        return FittedCounts(self, category_counts(reference, "reference"), chosen)


@dataclass(frozen=True, slots=True)
class FittedCounts:
    """The reference's value counts for a :class:`CountsTest`."""

    test: CountsTest
    counts: Mapping[Hashable, int]
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """The test's statistic and p-value for ``current`` against the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = category_counts(current, "current window")
        statistic, p = self.test.compare(self.counts, cur)
        counts = (sum(self.counts.values()), sum(cur.values()))
        return judged(self.test, statistic, p, self.threshold, counts)


def _chi_square_counts(
    reference: Mapping[Hashable, int], current: Mapping[Hashable, int]
) -> tuple[float, float]:
    _, ref, cur = aligned_counts(reference, current)
    return chi_square(ref, cur)


def _z_counts(
    reference: Mapping[Hashable, int], current: Mapping[Hashable, int]
) -> tuple[float, float]:
    keys, ref, cur = aligned_counts(reference, current)
    return two_proportion_z(ref, cur, keys.index(_smallest(set(keys))))


def _smallest(keys: set[Hashable]) -> Hashable:
    try:
        return min(keys)  # type: ignore[type-var]
    except TypeError:  # values of mixed types: order them by their spelling
        return min(keys, key=repr)


ChiSquare: Final = CountsTest(
    "chisquare", frozenset({"categorical", "boolean"}), _chi_square_counts
)
"""Pearson's chi-squared goodness of fit of the window to the reference's frequencies.

The expected count of each value is its reference count scaled to the window's size,
over every value either sample holds (``scipy.stats.chisquare``, k - 1 degrees of
freedom). A value the reference never had makes the statistic infinite and p = 0.
"""

TwoProportionZ: Final = CountsTest("z", frozenset({"boolean", "categorical"}), _z_counts)
"""Two-proportion Z test with a pooled variance, two-sided.

The proportion compared is the share of values other than the smallest value either
sample holds (Evidently's choice; for a boolean feature, the share of ``True``).
"""

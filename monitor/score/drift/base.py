"""The drift-test protocol, its result, and the cleaning every test shares.

A :class:`DriftTest` is a frozen setting; ``fit(reference, kind)`` returns a
:class:`FittedDriftTest` that holds what the test needs of the reference, and its
``score(current)`` returns a :class:`DriftScore`.

Missing values are dropped before a test sees them, as Evidently does: ``None`` and NaN
everywhere, and also infinities for numeric features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from collectors.contract import FeatureType as FeatureKind

__all__ = [
    "FEW_NUMERIC_VALUES",
    "Comparison",
    "DriftScore",
    "DriftTest",
    "DriftTestInfo",
    "FeatureKind",
    "FittedDriftTest",
    "SampleTest",
    "StatisticKind",
    "Values",
    "judged",
]

StatisticKind = Literal["p_value", "distance"]
"""``p_value``: drift when the p-value is below the threshold; ``distance``: drift when
the distance reaches the threshold."""

FEW_NUMERIC_VALUES = 5
"""A numeric feature with at most this many distinct values is compared as categorical,
value by value, as Evidently does."""

Values: TypeAlias = Sequence[Any] | npt.NDArray[Any]
"""One feature's values over a reference or a window (missing ones allowed)."""

FloatArray: TypeAlias = npt.NDArray[np.float64]

Comparison: TypeAlias = Callable[[float, float], bool]
"""A test's rule for "drifted", applied as ``rule(score.drift_score, threshold)``:
``operator.ge`` for a distance, ``operator.lt`` or ``operator.le`` for a p-value."""


@dataclass(frozen=True, slots=True)
class DriftScore:
    """One test of one feature's current values against its reference."""

    test: str
    """The test's registry name, e.g. ``ks``."""
    statistic: float
    """The test statistic (KS: D; chi-squared: X²; Z: z) or, for a distance, the distance."""
    p_value: float | None
    """The p-value for a p-value test; None for a distance."""
    threshold: float
    drifted: bool
    reference_count: int
    """Non-missing reference values the test used."""
    current_count: int
    """Non-missing current values the test used."""
    error_bound: float = 0.0
    """How far ``statistic`` may be from its value on the raw data: 0 for a test on
    raw values; for one computed from profiles, the bound stated in
    :mod:`monitor.score.drift.profiled` (the exact value lies in
    ``[statistic, statistic + error_bound]`` for KS and Wasserstein, whose profile
    values are lower bounds; :func:`~monitor.score.drift.profiled.exact_range` gives
    the range of the value compared with the threshold)."""

    @property
    def drift_score(self) -> float:
        """What is compared with the threshold: the p-value, or else the distance."""
        return self.statistic if self.p_value is None else self.p_value


class FittedDriftTest(Protocol):
    """A drift test that has learned what it needs from one feature's reference."""

    def score(self, current: Values) -> DriftScore:
        """Test ``current`` against the reference.

        Raises:
            ValueError: ``current`` has no non-missing value, or a value of the wrong type.
        """
        ...


class DriftTestInfo(Protocol):
    """What every drift test says of itself, on raw values or on profiles."""

    @property
    def name(self) -> str:
        """The registry name (Evidently's name for the same test)."""
        ...

    @property
    def default_threshold(self) -> float:
        """The threshold used when none is given (Evidently's default)."""
        ...

    @property
    def statistic(self) -> StatisticKind:
        """Whether the test yields a p-value or a distance."""
        ...

    @property
    def kinds(self) -> frozenset[FeatureKind]:
        """The feature kinds the test applies to."""
        ...

    @property
    def drifts_when(self) -> Comparison:
        """The rule for "drifted", applied as ``rule(drift_score, threshold)``."""
        ...


def judged(
    test: DriftTestInfo,
    statistic: float,
    p_value: float | None,
    threshold: float,
    counts: tuple[int, int],
    error_bound: float = 0.0,
) -> DriftScore:
    """A test's result, drifted by its rule: on the p-value, or else on the statistic.

    Args:
        test: The test that computed it.
        statistic: The statistic (or distance).
        p_value: The p-value; None for a distance.
        threshold: The threshold the rule compares with.
        counts: Non-missing reference and current values the test used.
        error_bound: See :attr:`DriftScore.error_bound`.
    """
    drifted = test.drifts_when(statistic if p_value is None else p_value, threshold)
    return DriftScore(test.name, statistic, p_value, threshold, drifted, *counts, error_bound)


class DriftTest(DriftTestInfo, Protocol):
    """A univariate drift test: frozen settings that fit a reference."""

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedDriftTest:
        """Learn what the test needs from one feature's reference values.

        Raises:
            ValueError: The reference has no non-missing value, a value of the wrong
                type, ``kind`` is not one of :attr:`kinds`, or the threshold is invalid.
        """
        ...


def check_fit(
    test: DriftTestInfo, kind: FeatureKind, threshold: float | None
) -> tuple[FeatureKind, float]:
    """Validate ``fit``'s arguments; return the kind and the threshold to use."""
    if kind not in test.kinds:
        raise ValueError(
            f"the {test.name!r} test applies to {', '.join(sorted(test.kinds))} features, "
            f"not {kind!r}"
        )
    chosen = test.default_threshold if threshold is None else float(threshold)
    if not math.isfinite(chosen) or chosen < 0:
        raise ValueError(f"a drift threshold must be a finite number >= 0, got {chosen!r}")
    return kind, chosen


SampleStatistic: TypeAlias = Callable[
    ["NumericSample", "NumericSample"], tuple[float, float | None]
]
"""A statistic and its p-value (None for a distance) from the reference's and the
window's sorted values."""


@dataclass(frozen=True, slots=True)
class SampleTest:
    """A test of a numeric feature's values against the reference's values, sorted once
    at fit (Kolmogorov-Smirnov, normalised Wasserstein)."""

    name: str
    default_threshold: float
    statistic: StatisticKind
    drifts_when: Comparison
    compare: SampleStatistic
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"numeric"})

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedSample:
        """Sort the reference once.

        Raises:
            ValueError: See :meth:`DriftTest.fit`.
        """
        _, chosen = check_fit(self, kind, threshold)
        return FittedSample(self, numeric_sample(reference, "reference"), chosen)


@dataclass(frozen=True, slots=True)
class FittedSample:
    """The sorted reference of a :class:`SampleTest`."""

    test: SampleTest
    reference: NumericSample
    threshold: float

    def score(self, current: Values) -> DriftScore:
        """The test's statistic for ``current`` against the reference.

        Raises:
            ValueError: See :meth:`FittedDriftTest.score`.
        """
        cur = numeric_sample(current, "current window")
        statistic, p = self.test.compare(self.reference, cur)
        return judged(self.test, statistic, p, self.threshold, (self.reference.count, cur.count))


@dataclass(frozen=True, slots=True)
class NumericSample:
    """A numeric feature's non-missing values, sorted once."""

    sorted: FloatArray
    integer: bool
    """Whether the values came as integers (numpy's histogram bins treat those apart)."""

    @property
    def count(self) -> int:
        """Number of values."""
        return int(self.sorted.size)


def numeric_sample(values: Values, role: str) -> NumericSample:
    """Sort a numeric feature's finite values.

    Raises:
        ValueError: There are no finite values, or some are not numbers.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "biufO":
        raise ValueError(f"the {role} of a numeric feature must hold numbers")
    try:
        floats = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {role} of a numeric feature must hold numbers") from exc
    floats = np.sort(floats[np.isfinite(floats)])
    if floats.size == 0:
        raise ValueError(f"the {role} has no finite value for this feature")
    return NumericSample(floats, arr.dtype.kind in "iu")


def category_counts(values: Values, role: str) -> dict[Hashable, int]:
    """Count each non-missing category.

    Raises:
        ValueError: There is no non-missing value.
    """
    arr = np.asarray(values)
    counts: dict[Hashable, int]
    if arr.dtype.kind in "biuUSf":
        if arr.dtype.kind == "f":
            arr = arr[~np.isnan(arr)]
        keys, n = np.unique(arr, return_counts=True)
        counts = dict(zip(keys.tolist(), n.tolist(), strict=True))
    else:
        counts = dict(Counter(v for v in arr.tolist() if not _missing(v)))
    if not counts:
        raise ValueError(f"the {role} has no non-missing value for this feature")
    return counts


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))

"""The drift tests by name, and Evidently's choice of test for a feature.

Names are Evidently's, so that a ``test`` label reads the same in both tools. Each
name has one entry, :class:`~monitor.score.drift.profiled.ProfileTest`, computed on
profiles (``score``: what the scorer runs on every window) or on raw values (``fit``,
then ``score``: what :mod:`monitor.score.exact` runs where a profile cannot settle the
result, :func:`needs_raw_values`). Every name a setting or a caller gives goes through
:func:`get_drift_test` (or :func:`check_test_name`, which also takes ``auto``), whose
error lists the valid names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from monitor.errors import ConfigError
from monitor.score.drift.base import FEW_NUMERIC_VALUES, DriftScore, FeatureKind
from monitor.score.drift.distance import JensenShannon, Wasserstein
from monitor.score.drift.profiled import EXACT_TOLERANCE, TESTS, ProfileTest, exact_range
from monitor.score.drift.pvalue import ChiSquare, KolmogorovSmirnov, TwoProportionZ

__all__ = [
    "AUTO",
    "DRIFT_TESTS",
    "FEW_NUMERIC_VALUES",
    "SMALL_REFERENCE_ROWS",
    "DriftTestChoice",
    "check_test_name",
    "choose_test",
    "get_drift_test",
    "needs_raw_values",
]

DRIFT_TESTS: Final[dict[str, ProfileTest]] = {test.name: test for test in TESTS}
"""Every drift test, by its name: the one registry, for profiles and raw values alike."""

AUTO: Final = "auto"
"""The setting that lets :func:`choose_test` pick each feature's test."""

SMALL_REFERENCE_ROWS = 1000
"""Up to this many reference values, the automatic choice is a p-value test."""

_FEW_NUMERIC_VALUES = FEW_NUMERIC_VALUES

T = TypeVar("T")


def get_drift_test(name: str) -> ProfileTest:
    """The drift test registered under ``name``.

    Raises:
        ConfigError: No test has that name; the message lists the valid ones.
    """
    return lookup(DRIFT_TESTS, name)


def check_test_name(name: str) -> str:
    """``name`` if it is :data:`AUTO` or a registered test's name.

    Raises:
        ConfigError: It is neither; the message lists the valid names, ``auto`` among them.
    """
    lookup({AUTO: None, **DRIFT_TESTS}, name)
    return name


def needs_raw_values(score: DriftScore, tolerance: float = EXACT_TOLERANCE) -> bool:
    """Whether a profile-based result must be computed again from the raw values: the
    range of exact values it stands for
    (:func:`~monitor.score.drift.profiled.exact_range`) is wider than ``tolerance``, or
    holds values on both sides of the threshold.

    Raises:
        ConfigError: ``score.test`` is no registered test's name.
    """
    low, high = exact_range(score)
    if high - low > tolerance:
        return True
    rule = get_drift_test(score.test).drifts_when
    return rule(low, score.threshold) != rule(high, score.threshold)


def lookup(tests: Mapping[str, T], name: str) -> T:
    """The test registered under ``name`` in ``tests``.

    Raises:
        ConfigError: No test has that name; the message lists the valid ones.
    """
    try:
        return tests[name]
    except KeyError:
        valid = ", ".join(sorted(tests))
        raise ConfigError(f"unknown drift test {name!r}; valid tests: {valid}") from None


@dataclass(frozen=True, slots=True)
class DriftTestChoice:
    """The test to run on a feature, and the kind to fit it with."""

    test: ProfileTest
    kind: FeatureKind
    """The feature's kind, except that a numeric feature with few distinct values is
    fitted as categorical, as Evidently treats it."""


def choose_test(
    kind: FeatureKind, reference_size: int, n_unique: int, override: str | None = None
) -> DriftTestChoice:
    """Evidently 0.7's default test for a feature, unless ``override`` names one.

    Up to 1,000 reference values: KS for a numeric feature, chi-squared for a
    categorical one, Z when there are at most two values (and a numeric feature with
    at most five values counts as categorical). Above 1,000: normalised Wasserstein for a
    numeric feature with more than five values, Jensen-Shannon otherwise.

    Args:
        kind: The feature's kind (a boolean feature is categorical to Evidently).
        reference_size: Non-missing reference values of the feature.
        n_unique: Distinct non-missing values. Evidently counts them over the reference
            and the current window together; a caller that chooses once, at fit time,
            passes the reference's count.
        override: The name of the test configured for this feature, if any.

    Raises:
        ConfigError: ``override`` names no test, or one that does not apply to the kind.
    """
    few = n_unique <= _FEW_NUMERIC_VALUES
    fitted_kind: FeatureKind = "categorical" if kind == "numeric" and few else kind
    if override is not None:
        test = get_drift_test(override)
        for candidate in (kind, fitted_kind):
            if candidate in test.kinds:
                return DriftTestChoice(test, candidate)
        applies = ", ".join(sorted(test.kinds))
        raise ConfigError(f"the {override!r} test applies to {applies} features, not {kind!r}")
    if reference_size <= SMALL_REFERENCE_ROWS:
        if kind == "numeric" and not few:
            name = KolmogorovSmirnov.name
        else:
            name = ChiSquare.name if n_unique > 2 else TwoProportionZ.name
    elif kind == "numeric" and not few:
        name = Wasserstein.name
    else:
        name = JensenShannon.name
    return DriftTestChoice(DRIFT_TESTS[name], fitted_kind)

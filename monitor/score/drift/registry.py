"""The drift tests by name, and Evidently's choice of test for a feature.

Names are Evidently's, so that a ``test`` label reads the same in both tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from monitor.errors import ConfigError
from monitor.score.drift.base import DriftTest, FeatureKind
from monitor.score.drift.distance import Hellinger, JensenShannon, Psi, Wasserstein
from monitor.score.drift.pvalue import ChiSquare, KolmogorovSmirnov, TwoProportionZ

__all__ = [
    "DRIFT_TESTS",
    "FEW_NUMERIC_VALUES",
    "SMALL_REFERENCE_ROWS",
    "DriftTestChoice",
    "choose_test",
    "get_drift_test",
]

DRIFT_TESTS: Final[dict[str, DriftTest]] = {
    test.name: test
    for test in (
        KolmogorovSmirnov,
        ChiSquare,
        TwoProportionZ,
        Psi,
        JensenShannon,
        Wasserstein,
        Hellinger,
    )
}
"""Every drift test, by its name."""

SMALL_REFERENCE_ROWS = 1000
"""Up to this many reference values, the automatic choice is a p-value test."""

FEW_NUMERIC_VALUES = 5
"""A numeric feature with at most this many distinct values is compared as categorical,
value by value, as Evidently does."""
_FEW_NUMERIC_VALUES = FEW_NUMERIC_VALUES

T = TypeVar("T")


def get_drift_test(name: str) -> DriftTest:
    """The drift test registered under ``name``.

    Raises:
        ConfigError: No test has that name; the message lists the valid ones.
    """
    return lookup(DRIFT_TESTS, name)


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

    test: DriftTest
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

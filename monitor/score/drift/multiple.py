"""Multiple-testing control across features: Benjamini-Hochberg.

Testing 100 undrifted features at p < 0.05 flags five of them per window on average;
controlling the false discovery rate at ``q`` instead keeps the expected share of false
alarms among the flagged features at or below ``q`` (for independent or positively
dependent tests), and, when nothing drifted, the chance of any alarm in a window at
or below ``q``.

Where the tests may depend on each other in any way (the pairs of a correlation matrix
share features), Benjamini-Yekutieli (``method="by"``) keeps the same promise at the
cost of power: it scales the adjusted p-values by ``1 + 1/2 + ... + 1/m``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "AdjustedPValue",
    "FdrControl",
    "FdrMethod",
    "adjust_bh",
    "adjust_by",
    "benjamini_hochberg",
]

FdrMethod = Literal["bh", "by"]
"""``bh``: Benjamini-Hochberg (independent or positively dependent tests);
``by``: Benjamini-Yekutieli (any dependence)."""


def adjust_bh(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values, in the order given.

    ``adjusted[i] = min over j with p[j] >= p[i] of (m * p[j] / rank(j))``, capped at 1;
    a test is rejected at FDR ``q`` exactly when its adjusted p-value is at most ``q``.

    Raises:
        ValueError: A p-value is missing or outside ``[0, 1]``, or the input is not 1-D.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p-values must be a 1-D sequence")
    if not np.all((p >= 0) & (p <= 1)):  # also rejects NaN
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def adjust_by(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Yekutieli adjusted p-values, in the order given: the uncapped
    Benjamini-Hochberg values times ``c(m) = 1 + 1/2 + ... + 1/m``, capped at 1.

    Raises:
        ValueError: As :func:`adjust_bh`.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = adjust_bh(p)
    c = float(np.sum(1.0 / np.arange(1, p.size + 1)))
    return np.minimum(adjusted * c, 1.0)


@dataclass(frozen=True, slots=True)
class AdjustedPValue:
    """One feature's p-value before and after the adjustment."""

    name: str
    p_value: float
    adjusted_p_value: float
    rejected: bool
    """Whether the feature is flagged as drifted at the target FDR."""


@dataclass(frozen=True, slots=True)
class FdrControl:
    """The outcome of Benjamini-Hochberg over one window's features."""

    fdr: float
    results: tuple[AdjustedPValue, ...]
    """One per feature, in the order given."""

    @property
    def rejected(self) -> tuple[str, ...]:
        """Names of the features flagged as drifted."""
        return tuple(r.name for r in self.results if r.rejected)


def benjamini_hochberg(
    p_values: Mapping[str, float], fdr: float = 0.05, method: FdrMethod = "bh"
) -> FdrControl:
    """Flag the features whose drift survives false-discovery-rate control at ``fdr``.

    Args:
        p_values: Feature name to its drift test's p-value (distance tests have none and
            are left out by the caller).
        fdr: The target false discovery rate ``q``.
        method: ``bh`` (Benjamini-Hochberg) or ``by`` (Benjamini-Yekutieli, for tests
            that may depend on each other in any way).

    Raises:
        ValueError: ``fdr`` is not in ``(0, 1)``, an unknown method, or a p-value is
            invalid.
    """
    if not 0 < fdr < 1:
        raise ValueError(f"fdr must lie in (0, 1), got {fdr!r}")
    adjust = {"bh": adjust_bh, "by": adjust_by}.get(method)
    if adjust is None:
        raise ValueError(f"unknown FDR method {method!r}; valid methods: bh, by")
    names = list(p_values)
    raw = [float(p_values[n]) for n in names]
    adjusted = adjust(raw).tolist() if names else []
    return FdrControl(
        fdr,
        tuple(
            AdjustedPValue(n, p, a, a <= fdr) for n, p, a in zip(names, raw, adjusted, strict=True)
        ),
    )

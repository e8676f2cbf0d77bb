"""Population Stability Index on bins fitted to the reference.

``fit_psi(reference, kind, bins)`` learns the bins once (quantile edges for numbers,
the seen categories plus an "other" bin for categories) and the reference's share in
each; the fitted object's ``score(current)`` returns PSI::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

over bin shares ``r`` (reference) and ``c`` (current), where an empty bin counts as a
share of 0.0001, as Evidently does, so that PSI stays finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

EMPTY_BIN_SHARE = 1e-4

Kind = Literal["numeric", "categorical", "boolean"]


def psi(reference_shares: npt.ArrayLike, current_shares: npt.ArrayLike) -> float:
    """PSI between two vectors of bin shares (each summing to 1)."""
    r = np.asarray(reference_shares, dtype=float)
    c = np.asarray(current_shares, dtype=float)
    r = np.where(r == 0, EMPTY_BIN_SHARE, r)
    c = np.where(c == 0, EMPTY_BIN_SHARE, c)
    return float(np.sum((c - r) * np.log(c / r)))


@dataclass(frozen=True, slots=True)
class FittedPsi:
    """PSI bins and reference shares for one feature."""

    kind: Kind
    edges: tuple[float, ...]
    """Numeric: inner bin edges; bin i holds values in (edges[i-1], edges[i]]."""
    categories: tuple[str, ...]
    """Categorical and boolean: the reference's categories; one more bin holds others."""
    shares: tuple[float, ...]
    reference_count: int

    def counts(self, values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """How many of ``values`` (missing ones already removed) fall in each bin."""
        if self.kind == "numeric":
            idx = np.searchsorted(np.asarray(self.edges), np.asarray(values, dtype=float))
            return np.bincount(idx, minlength=len(self.edges) + 1)
        position = {c: i for i, c in enumerate(self.categories)}
        other = len(self.categories)
        idx = np.fromiter((position.get(_category(v), other) for v in values), dtype=np.int64)
        return np.bincount(idx, minlength=other + 1)

    def score(self, values: Sequence[Any] | npt.NDArray[Any]) -> float:
        """PSI of ``values`` against the reference; needs at least one value."""
        counts = self.counts(values)
        total = counts.sum()
        if total == 0:
            raise ValueError("PSI needs at least one current value")
        return psi(self.shares, counts / total)

    def as_json(self) -> dict[str, Any]:
        """The stored form of the fitted bins."""
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
            "shares": list(self.shares),
            "reference_count": self.reference_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FittedPsi:
        """Rebuild from :meth:`as_json`."""
        return cls(
            kind=data["kind"],
            edges=tuple(float(e) for e in data["edges"]),
            categories=tuple(str(c) for c in data["categories"]),
            shares=tuple(float(s) for s in data["shares"]),
            reference_count=int(data["reference_count"]),
        )


def fit_psi(reference: Sequence[Any] | npt.NDArray[Any], kind: Kind, bins: int) -> FittedPsi:
    """Fit PSI bins on a feature's reference values (missing values removed).

    Args:
        reference: The reference's non-missing values of the feature.
        kind: The feature's type.
        bins: Number of quantile bins for a numeric feature (fewer where quantiles tie).

    Raises:
        ValueError: The reference has no values for the feature.
    """
    n = len(reference)
    if n == 0:
        raise ValueError("the reference has no values for this feature")
    if kind == "numeric":
        values = np.asarray(reference, dtype=float)
        inner = np.quantile(values, np.arange(1, bins) / bins)
        edges = tuple(float(e) for e in np.unique(inner))
        fitted = FittedPsi(kind, edges, (), (), n)
    else:
        categories = tuple(sorted({_category(v) for v in reference}))
        fitted = FittedPsi(kind, (), categories, (), n)
    counts = fitted.counts(reference)
    shares = tuple(float(s) for s in counts / n)
    return FittedPsi(kind, fitted.edges, fitted.categories, shares, n)


def _category(value: Any) -> str:
    # JSON booleans arrive as bool, CSV ones as strings: one spelling for both.
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)

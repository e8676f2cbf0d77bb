"""Cross-feature correlation drift: which numeric pairs changed their Pearson correlation.

``CorrelationDrift(...).fit(reference)`` keeps the reference's correlation matrix (not
the data); ``score(current)`` compares each pair's correlation with Fisher's z-test::

    z = (atanh(r_ref) - atanh(r_cur)) / sqrt(1 / (n_ref - 3) + 1 / (n_cur - 3))

two-sided, and flags pairs by Benjamini-Hochberg across the pairs, so that a window of
190 pairs does not raise ten false alarms. The number of pairs is bounded by
``max_features``: the first features in the order given (put the important ones first)
are kept, and the result says which features and how many pairs were cut. Rows where a
kept feature is missing are left out of both samples' correlations (listwise deletion).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitor.score.drift.base import FloatArray, Values
from monitor.score.drift.multiple import adjust_bh

__all__ = [
    "CorrelationDrift",
    "CorrelationDriftResult",
    "FittedCorrelationDrift",
    "PairCorrelationDrift",
    "fisher_z",
]

_MAX_ABS_R = 1 - 1e-12
"""Correlations are clipped to this so that a perfectly correlated pair keeps a finite z."""


def fisher_z(
    r_reference: npt.ArrayLike, n_reference: int, r_current: npt.ArrayLike, n_current: int
) -> tuple[FloatArray, FloatArray]:
    """Fisher's z statistic and two-sided p-value for a change in correlation.

    Raises:
        ValueError: A sample has fewer than 4 rows.
    """
    if min(n_reference, n_current) < 4:
        raise ValueError("Fisher's z-test needs at least 4 rows in each sample")
    r1 = np.clip(np.asarray(r_reference, dtype=np.float64), -_MAX_ABS_R, _MAX_ABS_R)
    r2 = np.clip(np.asarray(r_current, dtype=np.float64), -_MAX_ABS_R, _MAX_ABS_R)
    z = (np.arctanh(r1) - np.arctanh(r2)) / np.sqrt(1 / (n_reference - 3) + 1 / (n_current - 3))
    return z, 2 * stats.norm.sf(np.abs(z))


@dataclass(frozen=True, slots=True)
class PairCorrelationDrift:
    """One pair's correlation in the reference and in the window."""

    feature_a: str
    feature_b: str
    reference_r: float
    current_r: float
    """NaN where a feature is constant in the window (the correlation is undefined)."""
    z: float | None
    p_value: float | None
    adjusted_p_value: float | None
    """Benjamini-Hochberg adjusted across the window's pairs; None where undefined."""
    drifted: bool


@dataclass(frozen=True, slots=True)
class CorrelationDriftResult:
    """Correlation drift over one window."""

    pairs: tuple[PairCorrelationDrift, ...]
    fdr: float
    reference_count: int
    current_count: int
    """Window rows with every kept feature present."""
    features_cut: tuple[str, ...]
    """Features left out: beyond ``max_features``, or constant in the reference."""
    pairs_cut: int
    """Pairs of the given features that were not tested."""

    @property
    def drifted_pairs(self) -> tuple[tuple[str, str], ...]:
        """The pairs whose correlation changed, at the target FDR."""
        return tuple((p.feature_a, p.feature_b) for p in self.pairs if p.drifted)


@dataclass(frozen=True, slots=True)
class CorrelationDrift:
    """Settings of the correlation drift test."""

    max_features: int = 20
    """At most this many features (``k (k - 1) / 2`` pairs) are tested."""
    fdr: float = 0.05

    def fit(self, reference: Mapping[str, Values]) -> FittedCorrelationDrift:
        """Compute the reference's correlations between the kept features.

        Args:
            reference: Numeric feature name to its reference values, most important first.

        Raises:
            ValueError: Fewer than two usable features, fewer than 4 complete rows, or
                invalid settings.
        """
        if self.max_features < 2 or not 0 < self.fdr < 1:
            raise ValueError("CorrelationDrift needs max_features >= 2 and 0 < fdr < 1")
        names = list(reference)
        matrix = _complete_rows(reference, names)
        varying = [n for n, col in zip(names, matrix.T, strict=True) if np.ptp(col) > 0]
        kept = varying[: self.max_features]
        if len(kept) < 2:
            raise ValueError("correlation drift needs two features that vary in the reference")
        if len(kept) < len(names):
            matrix = _complete_rows(reference, kept)
        total = len(names) * (len(names) - 1) // 2
        return FittedCorrelationDrift(
            features=tuple(kept),
            reference_r=_pearson(matrix),
            reference_count=matrix.shape[0],
            features_cut=tuple(n for n in names if n not in kept),
            pairs_cut=total - len(kept) * (len(kept) - 1) // 2,
            fdr=self.fdr,
        )


@dataclass(frozen=True, slots=True)
class FittedCorrelationDrift:
    """The reference's correlation matrix over the kept features."""

    features: tuple[str, ...]
    reference_r: FloatArray
    reference_count: int
    features_cut: tuple[str, ...]
    pairs_cut: int
    fdr: float

    def score(self, current: Mapping[str, Values]) -> CorrelationDriftResult:
        """Test every kept pair's correlation in ``current`` against the reference's.

        Raises:
            ValueError: A kept feature is absent, or fewer than 4 complete rows.
        """
        missing = [n for n in self.features if n not in current]
        if missing:
            raise ValueError(f"the window lacks features {missing}")
        matrix = _complete_rows(current, list(self.features))
        current_r = _pearson(matrix)
        a, b = np.triu_indices(len(self.features), k=1)
        z, p = fisher_z(
            self.reference_r[a, b], self.reference_count, current_r[a, b], matrix.shape[0]
        )
        defined = np.isfinite(z)
        adjusted = np.full(z.shape, np.nan)
        adjusted[defined] = adjust_bh(p[defined])
        pairs = tuple(
            PairCorrelationDrift(
                self.features[i],
                self.features[j],
                float(self.reference_r[i, j]),
                float(current_r[i, j]),
                float(z[k]) if defined[k] else None,
                float(p[k]) if defined[k] else None,
                float(adjusted[k]) if defined[k] else None,
                bool(defined[k] and adjusted[k] <= self.fdr),
            )
            for k, (i, j) in enumerate(zip(a.tolist(), b.tolist(), strict=True))
        )
        return CorrelationDriftResult(
            pairs,
            self.fdr,
            self.reference_count,
            matrix.shape[0],
            self.features_cut,
            self.pairs_cut,
        )


def _complete_rows(data: Mapping[str, Values], names: list[str]) -> FloatArray:
    columns = [np.asarray(data[n], dtype=np.float64) for n in names]
    if len({c.shape for c in columns}) > 1 or columns[0].ndim != 1:
        raise ValueError("every feature needs one value per row")
    matrix = np.column_stack(columns)
    matrix = matrix[np.isfinite(matrix).all(axis=1)]
    if matrix.shape[0] < 4:
        raise ValueError("correlation drift needs at least 4 rows with every feature present")
    return matrix


def _pearson(matrix: FloatArray) -> FloatArray:
    centred = matrix - matrix.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column gives NaN
        r: FloatArray = np.clip((centred.T @ centred) / np.outer(norms, norms), -1.0, 1.0)
    return r

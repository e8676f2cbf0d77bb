"""Cross-feature correlation drift: which numeric pairs changed their correlation.

``CorrelationDrift(...).fit(reference)`` keeps the reference's correlation matrix (not
the data); ``score(current)`` compares each pair's correlation with Fisher's z-test::

    z = (atanh(r_ref) - atanh(r_cur)) / sqrt(c / (n_ref - 3) + c / (n_cur - 3))

two-sided, with ``c = 1`` for Pearson's r and ``c = 1.06`` for Spearman's rank
correlation (Fieller, Hartley and Pearson, 1957), which is less moved by outliers and
heavy tails. A pair is flagged when its p-value survives Benjamini-Hochberg (or, with
``fdr_method="by"``, Benjamini-Yekutieli) across the window's pairs at ``fdr`` (so that
190 pairs do not raise ten false alarms) **and** its
correlation moved by at least ``min_difference`` (an effect size, so that a window of a
million rows does not flag a change from 0.50 to 0.51).

The number of pairs is bounded by ``max_features``: the first features in the order
given that vary in the reference are kept (pass the important ones first, or exactly the
configured list), ``k (k - 1) / 2`` pairs; the result says which features and how many
pairs were cut. The order given is the choice rather than, say, the features of highest
variance, because variance depends on each feature's unit and says nothing about its
importance. Rows where a kept feature is missing are left out of both samples'
correlations (listwise deletion). :class:`CorrelationMoments` holds the mergeable sums
behind Pearson's r, so a window can be scored from moments merged at ingest
(:meth:`FittedCorrelationDrift.score_moments`); Spearman's ranks do not merge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitor.score.drift.base import FloatArray, Values
from monitor.score.drift.multiple import FdrMethod, adjust_bh, adjust_by

__all__ = [
    "CorrelationDrift",
    "CorrelationDriftResult",
    "CorrelationMethod",
    "CorrelationMoments",
    "FittedCorrelationDrift",
    "PairCorrelationDrift",
    "fisher_z",
]

_MAX_ABS_R = 1 - 1e-12
"""Correlations are clipped to this so that a perfectly correlated pair keeps a finite z."""

CorrelationMethod = Literal["pearson", "spearman"]

_VARIANCE_FACTOR: dict[CorrelationMethod, float] = {"pearson": 1.0, "spearman": 1.06}
"""``c`` in ``var(atanh r) = c / (n - 3)``."""


def fisher_z(
    r_reference: npt.ArrayLike,
    n_reference: int,
    r_current: npt.ArrayLike,
    n_current: int,
    variance_factor: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Fisher's z statistic and two-sided p-value for a change in correlation.

    Args:
        r_reference: The reference's correlation(s).
        n_reference: Rows behind them.
        r_current: The window's correlation(s).
        n_current: Rows behind them.
        variance_factor: ``c`` in ``var(atanh r) = c / (n - 3)``: 1 for Pearson's r,
            1.06 for Spearman's.

    Raises:
        ValueError: A sample has fewer than 4 rows.
    """
    if min(n_reference, n_current) < 4:
        raise ValueError("Fisher's z-test needs at least 4 rows in each sample")
    r1 = np.clip(np.asarray(r_reference, dtype=np.float64), -_MAX_ABS_R, _MAX_ABS_R)
    r2 = np.clip(np.asarray(r_current, dtype=np.float64), -_MAX_ABS_R, _MAX_ABS_R)
    spread = np.sqrt(variance_factor / (n_reference - 3) + variance_factor / (n_current - 3))
    z = (np.arctanh(r1) - np.arctanh(r2)) / spread
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
    """Benjamini-Hochberg (or -Yekutieli) adjusted across the window's pairs; None where
    undefined."""
    drifted: bool
    """``adjusted_p_value <= fdr`` and ``|current_r - reference_r| >= min_difference``."""

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document; an undefined correlation is null)."""
        return {
            "feature_a": self.feature_a,
            "feature_b": self.feature_b,
            "reference_r": None if math.isnan(self.reference_r) else self.reference_r,
            "current_r": None if math.isnan(self.current_r) else self.current_r,
            "z": self.z,
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "drifted": self.drifted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairCorrelationDrift:
        """Rebuild from :meth:`as_json`."""

        def number(key: str) -> float | None:
            value = data[key]
            return None if value is None else float(value)

        def r(key: str) -> float:
            value = number(key)
            return math.nan if value is None else value

        return cls(
            feature_a=str(data["feature_a"]),
            feature_b=str(data["feature_b"]),
            reference_r=r("reference_r"),
            current_r=r("current_r"),
            z=number("z"),
            p_value=number("p_value"),
            adjusted_p_value=number("adjusted_p_value"),
            drifted=bool(data["drifted"]),
        )


@dataclass(frozen=True, slots=True)
class CorrelationDriftResult:
    """Correlation drift over one window."""

    pairs: tuple[PairCorrelationDrift, ...]
    method: CorrelationMethod
    fdr: float
    min_difference: float
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
    min_difference: float = 0.1
    """Smallest change of a pair's correlation that counts as drift."""
    method: CorrelationMethod = "pearson"
    fdr_method: FdrMethod = "bh"
    """``by`` (Benjamini-Yekutieli) holds the FDR whatever the dependence between pairs
    that share a feature; ``bh`` is more powerful and held it in the tests."""

    def fit(self, reference: Mapping[str, Values]) -> FittedCorrelationDrift:
        """Compute the reference's correlations between the kept features.

        Args:
            reference: Numeric feature name to its reference values, most important first.

        Raises:
            ValueError: Fewer than two usable features, fewer than 4 complete rows, or
                invalid settings.
        """
        if self.max_features < 2 or not 0 < self.fdr < 1 or not 0 <= self.min_difference <= 2:
            raise ValueError(
                "CorrelationDrift needs max_features >= 2, 0 < fdr < 1, 0 <= min_difference <= 2"
            )
        if self.method not in _VARIANCE_FACTOR:
            raise ValueError(f"method must be one of {sorted(_VARIANCE_FACTOR)}")
        if self.fdr_method not in ("bh", "by"):
            raise ValueError("fdr_method must be bh or by")
        names = list(reference)
        kept: list[str] = []
        for name in names:  # each feature judged on its own values: a cut one cannot fail fit
            column = np.asarray(reference[name], dtype=np.float64)
            finite = column[np.isfinite(column)]
            if len(kept) < self.max_features and finite.size and np.ptp(finite) > 0:
                kept.append(name)
        if len(kept) < 2:
            raise ValueError("correlation drift needs two features that vary in the reference")
        matrix = _complete_rows(reference, kept)
        total = len(names) * (len(names) - 1) // 2
        return FittedCorrelationDrift(
            features=tuple(kept),
            reference_r=_correlation(matrix, self.method),
            reference_count=matrix.shape[0],
            features_cut=tuple(n for n in names if n not in kept),
            pairs_cut=total - len(kept) * (len(kept) - 1) // 2,
            fdr=self.fdr,
            min_difference=self.min_difference,
            method=self.method,
            fdr_method=self.fdr_method,
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
    min_difference: float = 0.1
    method: CorrelationMethod = "pearson"
    fdr_method: FdrMethod = "bh"

    def score(self, current: Mapping[str, Values]) -> CorrelationDriftResult:
        """Test every kept pair's correlation in ``current`` against the reference's.

        Raises:
            ValueError: A kept feature is absent, or fewer than 4 complete rows.
        """
        missing = [n for n in self.features if n not in current]
        if missing:
            raise ValueError(f"the window lacks features {missing}")
        matrix = _complete_rows(current, list(self.features))
        return self._compare(_correlation(matrix, self.method), matrix.shape[0])

    def score_moments(self, current: CorrelationMoments) -> CorrelationDriftResult:
        """As :meth:`score`, from a window's (merged) :class:`CorrelationMoments`.

        Raises:
            ValueError: The method is not ``pearson`` (ranks do not merge), a kept
                feature is absent from the moments, or they hold fewer than 4 rows.
        """
        if self.method != "pearson":
            raise ValueError("only Pearson correlations can be scored from moments")
        missing = [n for n in self.features if n not in current.features]
        if missing:
            raise ValueError(f"the window lacks features {missing}")
        if current.count < 4:
            raise ValueError("correlation drift needs at least 4 rows with every feature present")
        index = [current.features.index(n) for n in self.features]
        return self._compare(current.correlation()[np.ix_(index, index)], current.count)

    def _compare(self, current_r: FloatArray, current_count: int) -> CorrelationDriftResult:
        a, b = np.triu_indices(len(self.features), k=1)
        z, p = fisher_z(
            self.reference_r[a, b],
            self.reference_count,
            current_r[a, b],
            current_count,
            _VARIANCE_FACTOR[self.method],
        )
        moved = np.abs(current_r[a, b] - self.reference_r[a, b]) >= self.min_difference
        defined = np.isfinite(z)
        adjusted = np.full(z.shape, np.nan)
        adjust = adjust_by if self.fdr_method == "by" else adjust_bh
        adjusted[defined] = adjust(p[defined])
        pairs = tuple(
            PairCorrelationDrift(
                self.features[i],
                self.features[j],
                float(self.reference_r[i, j]),
                float(current_r[i, j]),
                float(z[k]) if defined[k] else None,
                float(p[k]) if defined[k] else None,
                float(adjusted[k]) if defined[k] else None,
                bool(defined[k] and adjusted[k] <= self.fdr and moved[k]),
            )
            for k, (i, j) in enumerate(zip(a.tolist(), b.tolist(), strict=True))
        )
        return CorrelationDriftResult(
            pairs,
            self.method,
            self.fdr,
            self.min_difference,
            self.reference_count,
            current_count,
            self.features_cut,
            self.pairs_cut,
        )


@dataclass(frozen=True, slots=True, eq=False)
class CorrelationMoments:
    """Mergeable sums behind the Pearson correlations of some rows.

    Only rows with every feature present count (listwise deletion, as :meth:`score`
    does). Partitions merge by Chan et al.'s pairwise update of the means and
    co-moments, so a window's moments can be built from per-batch ones at ingest.
    """

    features: tuple[str, ...]
    count: int
    mean: FloatArray
    comoment: FloatArray
    """``sum((x - mean)(x - mean)^T)`` over the rows."""

    @classmethod
    def zero(cls, features: tuple[str, ...]) -> CorrelationMoments:
        """The moments of no rows."""
        k = len(features)
        return cls(features, 0, np.zeros(k), np.zeros((k, k)))

    @classmethod
    def of(cls, data: Mapping[str, Values], features: tuple[str, ...]) -> CorrelationMoments:
        """The moments of ``data``'s complete rows over ``features``.

        Raises:
            ValueError: A feature is absent or the columns differ in length.
        """
        missing = [n for n in features if n not in data]
        if missing:
            raise ValueError(f"the data lacks features {missing}")
        columns = [np.asarray(data[n], dtype=np.float64) for n in features]
        if len({c.shape for c in columns}) > 1 or columns[0].ndim != 1:
            raise ValueError("every feature needs one value per row")
        matrix = np.column_stack(columns)
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        if matrix.shape[0] == 0:
            return cls.zero(features)
        mean = matrix.mean(axis=0)
        centred = matrix - mean
        return cls(features, matrix.shape[0], mean, centred.T @ centred)

    def merge(self, other: CorrelationMoments) -> CorrelationMoments:
        """The moments of both sets of rows.

        Raises:
            ValueError: The moments are over different features.
        """
        if other.features != self.features:
            raise ValueError("moments over different features do not merge")
        if not other.count or not self.count:
            return other if not self.count else self
        n = self.count + other.count
        delta = other.mean - self.mean
        return CorrelationMoments(
            self.features,
            n,
            self.mean + delta * (other.count / n),
            self.comoment
            + other.comoment
            + np.outer(delta, delta) * (self.count * other.count / n),
        )

    def correlation(self) -> FloatArray:
        """Pearson's r between every two features (NaN where a feature is constant)."""
        norms = np.sqrt(np.diag(self.comoment))
        with np.errstate(invalid="ignore", divide="ignore"):
            r: FloatArray = np.clip(self.comoment / np.outer(norms, norms), -1.0, 1.0)
        return r


def _complete_rows(data: Mapping[str, Values], names: list[str]) -> FloatArray:
    columns = [np.asarray(data[n], dtype=np.float64) for n in names]
    if len({c.shape for c in columns}) > 1 or columns[0].ndim != 1:
        raise ValueError("every feature needs one value per row")
    matrix = np.column_stack(columns)
    matrix = matrix[np.isfinite(matrix).all(axis=1)]
    if matrix.shape[0] < 4:
        raise ValueError("correlation drift needs at least 4 rows with every feature present")
    return matrix


def _correlation(matrix: FloatArray, method: CorrelationMethod) -> FloatArray:
    if method == "spearman":
        matrix = stats.rankdata(matrix, axis=0)
    return _pearson(matrix)


def _pearson(matrix: FloatArray) -> FloatArray:
    centred = matrix - matrix.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column gives NaN
        r: FloatArray = np.clip((centred.T @ centred) / np.outer(norms, norms), -1.0, 1.0)
    return r

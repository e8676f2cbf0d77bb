"""Data quality of one window against the reference: missing, out of range, new
categories, type errors.

Stage: score. In: the model's description, the reference's values per feature (once,
at fit) and a window's feature values (rows as the store returns them, or columns).
Out: a frozen :class:`DataQualityResult` with one :class:`FeatureQuality` per feature.

``DataQuality(...).fit(model, reference)`` keeps what the checks need of the reference:
the range ``[min, max]`` of each numeric feature's finite values and the set of each
categorical feature's categories. ``score(rows)`` then counts, per feature:

- **missing**: the feature is absent from the row, ``None``, or NaN. Share over the
  window's rows.
- **type errors**: a present value of the wrong type for the declared feature type:
  numeric takes ``int`` and ``float`` (not ``bool``, not a string, even one that
  spells a number); boolean takes ``bool`` and the numbers 0 and 1; categorical takes
  ``str``, ``int``, ``bool`` and integral floats (a fractional float there is a numeric
  value sent to the wrong feature). Share over the window's rows.
- **out of range** (numeric): a valid value below the reference's minimum or above its
  maximum (infinities included). Share over the valid numeric values.
- **new categories** (categorical): valid values whose category the reference never
  had, compared by the profiles' one spelling (:func:`monitor.core.profile.category`:
  ``3``, ``3.0`` and ``"3"`` are one category, booleans are ``true``/``false``). Share over
  the valid values, the number of distinct new categories, and the most frequent of them
  (at most ``max_listed``, for the API and reports; raw values never become metric
  labels).

Counts merge: :meth:`FeatureQualityCounts.merge` adds them exactly; the new categories'
counts are kept for at most ``max_tracked`` distinct categories per feature, so once that
many are tracked, further ones are counted in the total but not named.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from collectors.contract import FeatureType, ModelDescription
from monitor.core.profile import category as category_key

__all__ = [
    "DEFAULT_MAX_LISTED",
    "DEFAULT_MAX_REFERENCE_CATEGORIES",
    "DEFAULT_MAX_TRACKED",
    "DataQuality",
    "DataQualityResult",
    "FeatureQuality",
    "FeatureQualityCounts",
    "FittedDataQuality",
    "NewCategory",
    "category_key",
]

DEFAULT_MAX_LISTED: Final = 10
"""New categories named per feature in a result."""
DEFAULT_MAX_TRACKED: Final = 1_000
"""Distinct new categories counted by name per feature."""
DEFAULT_MAX_REFERENCE_CATEGORIES: Final = 10_000
"""Most categories kept of a reference feature; with more, new categories are not judged."""

_MISSING: Final = object()


def _is_missing(value: object) -> bool:
    return value is None or value is _MISSING or (isinstance(value, float) and math.isnan(value))


def _valid(kind: FeatureType, value: object) -> bool:
    if kind == "numeric":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1))
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str | int)


@dataclass(frozen=True, slots=True)
class NewCategory:
    """A category the reference never had, and how often the window holds it."""

    category: str
    count: int


@dataclass(frozen=True, slots=True)
class FeatureQualityCounts:
    """Mergeable counts of one feature's quality over some rows."""

    rows: int = 0
    missing: int = 0
    type_errors: int = 0
    valid: int = 0
    """Present values of the right type."""
    out_of_range: int = 0
    new_category_values: int = 0
    new_categories: Mapping[str, int] = field(default_factory=dict)
    """Per new category, its count (at most ``max_tracked`` categories)."""
    untracked_new_categories: bool = False
    """Whether some new categories were counted but not named."""

    def merge(
        self, other: FeatureQualityCounts, max_tracked: int = DEFAULT_MAX_TRACKED
    ) -> FeatureQualityCounts:
        """The counts of both sets of rows together."""
        tracked = Counter(self.new_categories)
        untracked = self.untracked_new_categories or other.untracked_new_categories
        for category, count in other.new_categories.items():
            if category in tracked or len(tracked) < max_tracked:
                tracked[category] += count
            else:
                untracked = True
        return FeatureQualityCounts(
            self.rows + other.rows,
            self.missing + other.missing,
            self.type_errors + other.type_errors,
            self.valid + other.valid,
            self.out_of_range + other.out_of_range,
            self.new_category_values + other.new_category_values,
            dict(tracked),
            untracked,
        )


@dataclass(frozen=True, slots=True)
class FeatureQuality:
    """One feature's data quality over one window."""

    feature: str
    kind: FeatureType
    rows: int
    missing: int
    missing_share: float | None
    """``missing / rows``; None without rows."""
    type_errors: int
    type_error_share: float | None
    """``type_errors / rows``; None without rows."""
    valid: int
    out_of_range: int | None
    """Numeric features; None for others."""
    out_of_range_share: float | None
    """``out_of_range / valid``; None for other kinds or without valid values."""
    new_category_values: int | None
    """Categorical features (with a complete reference set); None for others."""
    new_category_share: float | None
    """``new_category_values / valid``; None where not judged or without valid values."""
    new_category_count: int | None
    """Distinct new categories (a lower bound if some went untracked)."""
    new_categories: tuple[NewCategory, ...]
    """The most frequent new categories, most frequent first, at most ``max_listed``."""

    @classmethod
    def from_counts(
        cls,
        feature: str,
        kind: FeatureType,
        counts: FeatureQualityCounts,
        *,
        judged: bool,
        max_listed: int = DEFAULT_MAX_LISTED,
    ) -> FeatureQuality:
        """The result of (possibly merged) counts.

        Args:
            feature: The feature's name.
            kind: Its declared type.
            counts: Its counts over the window.
            judged: Categorical features: whether the reference's category set is complete.
            max_listed: Most new categories named.
        """
        numeric = kind == "numeric"
        categorical = kind == "categorical" and judged
        ranked = sorted(counts.new_categories.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(
            feature=feature,
            kind=kind,
            rows=counts.rows,
            missing=counts.missing,
            missing_share=counts.missing / counts.rows if counts.rows else None,
            type_errors=counts.type_errors,
            type_error_share=counts.type_errors / counts.rows if counts.rows else None,
            valid=counts.valid,
            out_of_range=counts.out_of_range if numeric else None,
            out_of_range_share=counts.out_of_range / counts.valid
            if numeric and counts.valid
            else None,
            new_category_values=counts.new_category_values if categorical else None,
            new_category_share=counts.new_category_values / counts.valid
            if categorical and counts.valid
            else None,
            new_category_count=len(counts.new_categories) if categorical else None,
            new_categories=tuple(NewCategory(c, n) for c, n in ranked[:max_listed])
            if categorical
            else (),
        )


@dataclass(frozen=True, slots=True)
class DataQualityResult:
    """Data quality of every feature over one window."""

    rows: int
    features: tuple[FeatureQuality, ...]
    """One per feature of the model, in its description's order."""

    def feature(self, name: str) -> FeatureQuality:
        """The result of the feature called ``name``.

        Raises:
            KeyError: The model has no such feature.
        """
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class DataQuality:
    """Settings of the data-quality checks."""

    max_listed: int = DEFAULT_MAX_LISTED
    max_tracked: int = DEFAULT_MAX_TRACKED
    max_reference_categories: int = DEFAULT_MAX_REFERENCE_CATEGORIES

    def fit(
        self, model: ModelDescription, reference: Mapping[str, Sequence[Any]]
    ) -> FittedDataQuality:
        """Learn each feature's range or categories from the reference.

        A feature absent from the reference, or without a valid value in it, gets no
        range (nothing counts as out of range) and no category set (new categories are
        not judged).

        Raises:
            ValueError: A limit is below 1.
        """
        if min(self.max_listed, self.max_tracked, self.max_reference_categories) < 1:
            raise ValueError("the data-quality limits must be at least 1")
        ranges: dict[str, tuple[float, float]] = {}
        categories: dict[str, frozenset[str]] = {}
        for spec in model.features:
            values = [v for v in reference.get(spec.name, ()) if not _is_missing(v)]
            values = [v for v in values if _valid(spec.type, v)]
            if spec.type == "numeric":
                finite = np.asarray(values, dtype=np.float64)
                finite = finite[np.isfinite(finite)]
                if finite.size:
                    ranges[spec.name] = (float(finite.min()), float(finite.max()))
            elif spec.type == "categorical" and values:
                seen = {category_key(v) for v in values}
                if len(seen) <= self.max_reference_categories:
                    categories[spec.name] = frozenset(seen)
        return FittedDataQuality(
            tuple((s.name, s.type) for s in model.features), ranges, categories, self
        )


@dataclass(frozen=True, slots=True)
class FittedDataQuality:
    """What the checks keep of the reference."""

    features: tuple[tuple[str, FeatureType], ...]
    ranges: Mapping[str, tuple[float, float]]
    """Numeric feature to its reference ``(min, max)``."""
    categories: Mapping[str, frozenset[str]]
    """Categorical feature to its reference categories (by :func:`category_key`)."""
    settings: DataQuality

    def counts(self, name: str, kind: FeatureType, values: Sequence[Any]) -> FeatureQualityCounts:
        """Count one feature's quality over a window's values (``None`` where absent)."""
        types = set(map(type, values))
        accepted: list[tuple[Any, int]] = []
        if kind == "numeric" and types <= {float, int, type(None)}:
            # The common case, vectorised: numbers and None only (numpy reads None as NaN).
            numbers = np.array(values, dtype=np.float64)
            present = ~np.isnan(numbers)
            missing, type_errors = int(numbers.size - np.count_nonzero(present)), 0
            numbers = numbers[present]
            valid = int(numbers.size)
        else:
            # Each distinct (type, value) once: 1, 1.0 and True are equal keys in a dict,
            # but not the same value here.
            distinct = Counter(zip(map(type, values), values, strict=True))
            missing = type_errors = valid = 0
            for (_, v), n in distinct.items():
                if _is_missing(v):
                    missing += n
                elif _valid(kind, v):
                    valid += n
                    accepted.append((v, n))
                else:
                    type_errors += n
            numbers = np.empty(0)
            if kind == "numeric" and accepted:
                numbers = np.repeat(
                    np.array([v for v, _ in accepted], dtype=np.float64), [n for _, n in accepted]
                )
        out_of_range = new_values = 0
        new: Counter[str] = Counter()
        untracked = False
        if kind == "numeric" and numbers.size and name in self.ranges:
            low, high = self.ranges[name]
            out_of_range = int(np.count_nonzero((numbers < low) | (numbers > high)))
        elif kind == "categorical" and name in self.categories:
            known = self.categories[name]
            for v, n in accepted:
                key = category_key(v)
                if key not in known:
                    new_values += n
                    if key in new or len(new) < self.settings.max_tracked:
                        new[key] += n
                    else:
                        untracked = True
        return FeatureQualityCounts(
            len(values),
            missing,
            type_errors,
            valid,
            out_of_range,
            new_values,
            dict(new),
            untracked,
        )

    def score(self, rows: Sequence[Mapping[str, Any]]) -> DataQualityResult:
        """Data quality of a window given as rows (feature name to value)."""
        return self.score_columns(
            {name: [row.get(name) for row in rows] for name, _ in self.features}, len(rows)
        )

    def score_columns(self, columns: Mapping[str, Sequence[Any]], rows: int) -> DataQualityResult:
        """Data quality of a window given as columns; an absent column is all missing.

        Raises:
            ValueError: A column's length is not ``rows``.
        """
        results = []
        for name, kind in self.features:
            values = columns.get(name)
            if values is None:
                values = [None] * rows
            if len(values) != rows:
                raise ValueError(f"feature {name!r} has {len(values)} values for {rows} rows")
            results.append(self.result(name, kind, self.counts(name, kind, values)))
        return DataQualityResult(rows, tuple(results))

    def result(self, name: str, kind: FeatureType, counts: FeatureQualityCounts) -> FeatureQuality:
        """The result of one feature's (possibly merged) counts."""
        return FeatureQuality.from_counts(
            name,
            kind,
            counts,
            judged=name in self.categories,
            max_listed=self.settings.max_listed,
        )

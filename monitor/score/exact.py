"""Drift from raw values where a profile cannot settle it.

Stage: score. In: the profile-based :class:`~monitor.score.drift.base.DriftScore` of
each feature (or output), and a :class:`RawValues` source that reads the reference's
and the window's values. Out: the same scores, with every one whose profile leaves its
verdict open or its value unsettled to :data:`~monitor.score.drift.profiled.EXACT_TOLERANCE`
(:func:`~monitor.score.drift.registry.needs_raw_values`) computed again on the raw values
by the same registered test (:func:`~monitor.score.drift.registry.get_drift_test`, its
raw-value form): the numbers Evidently 0.7 gives on the same data.

The reference's values come from its profile where the profile holds them all (a
numeric reference with at most :data:`~monitor.core.profile.FINE_BINS` distinct
values), else from the stored Parquet through :class:`ReferenceColumns`, read once per
revision and column and kept while the revision is the newest; the window's from its
stored rows. Categorical values are compared as the profiles spell them
(:func:`spelled`).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.profile import ReferenceProfile, category
from monitor.score.drift.base import DriftScore, FeatureKind, FloatArray
from monitor.score.drift.profiled import EXACT_TOLERANCE, counted_by_value, reference_values
from monitor.score.drift.registry import choose_test, get_drift_test, needs_raw_values
from monitor.store import Store

__all__ = ["RawValues", "ReferenceColumns", "settle", "spelled"]

logger = logging.getLogger("sidewatch.score")


@dataclass(frozen=True, slots=True)
class RawValues:
    """Where the raw values of a window's features (or outputs) are read.

    Args:
        reference: Names to their reference values (numbers, or a categorical
            feature's values as :func:`spelled` gives them; a name it cannot read is
            left out).
        window: Names to their values over every row of the window (None where a row
            has none).
    """

    reference: Callable[[Sequence[str]], Mapping[str, npt.NDArray[Any]]]
    window: Callable[[Sequence[str]], Mapping[str, Sequence[object]]]


def settle(
    reference: ReferenceProfile,
    scores: Mapping[str, DriftScore],
    raw: RawValues,
    *,
    p_value_tolerance: float = EXACT_TOLERANCE,
    rechoose: Collection[str] = (),
) -> dict[str, DriftScore]:
    """``scores`` with every one that its profile cannot settle computed on raw values.

    Args:
        reference: The reference profile the scores were computed on.
        scores: Name to its profile-based score.
        raw: Where the raw values are read.
        p_value_tolerance: Widest range of exact p-values a profile-based p-value may
            stand for (0 where the p-values are then adjusted together, whose verdicts
            a small difference can move).
        rechoose: Names whose test was chosen automatically from the reference alone
            and that Evidently might choose otherwise, counting distinct values over
            both samples (:func:`~monitor.score.drift.profiled.choice_may_change`):
            their test is chosen again on the raw values, then computed.
    """
    pending = [
        name
        for name, s in scores.items()
        if name in rechoose
        or needs_raw_values(s, p_value_tolerance if s.p_value is not None else EXACT_TOLERANCE)
    ]
    if not pending:
        return dict(scores)
    found: dict[str, npt.NDArray[Any]] = {}
    unread: list[str] = []
    for name in pending:
        rebuilt = reference_values(reference.features[name])
        if rebuilt is None:
            unread.append(name)
        else:
            found[name] = rebuilt
    if unread:
        found.update(raw.reference(unread))
    window = raw.window([n for n in pending if n in found])
    settled = dict(scores)
    for name in pending:
        if name not in found or name not in window:
            logger.warning(
                "drift of %r is the profile's estimate: the reference's values could not be read",
                name,
            )
            continue
        s = scores[name]
        feature = reference.features[name]
        numeric = feature.kind == "numeric"
        current = _numbers(window[name]) if numeric else spelled(window[name])
        try:
            raw_test, threshold = get_drift_test(s.test), s.threshold
            # A numeric feature with few values is compared as categories, as chosen.
            kind: FeatureKind = (
                "categorical"
                if counted_by_value(feature) or feature.kind not in raw_test.kinds
                else feature.kind
            )
            if name in rechoose:
                distinct = _distinct(found[name], current, numeric)
                choice = choose_test(feature.kind, feature.profile.count, distinct)
                if choice.test.name != s.test:
                    raw_test, threshold = choice.test, choice.test.default_threshold
                kind = choice.kind
            settled[name] = raw_test.fit(found[name], kind, threshold).score(current)
        except ValueError:
            logger.exception("drift of %r could not be computed from its values", name)
    return settled


def _distinct(reference: npt.NDArray[Any], current: npt.NDArray[Any], numeric: bool) -> int:
    """Distinct non-missing values over both samples, as Evidently counts them."""
    if numeric:
        both = np.concatenate((reference, current)).astype(np.float64)
        return int(np.unique(both[np.isfinite(both)]).size)
    return len(set(reference.tolist()) | set(current.tolist()))


def spelled(values: Iterable[object]) -> npt.NDArray[Any]:
    """Categorical values as the profiles spell them (:func:`~monitor.core.profile.category`),
    missing ones left out."""
    return np.array([category(v) for v in values if v is not None and not _nan(v)], dtype=object)


def _nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def _numbers(values: Sequence[object]) -> FloatArray:
    """Numbers (and booleans) as floats, anything else as NaN (the tests drop NaN as
    missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    try:  # all numbers, None for missing: one conversion in C
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(
            [float(v) if isinstance(v, int | float) else np.nan for v in values],
            dtype=np.float64,
        )


class ReferenceColumns:
    """Columns of stored references, read from their Parquet once each and kept (only
    the columns some test needed) until the version's reference changes.

    Args:
        store: Where the references are stored.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._kept: dict[tuple[str, str], tuple[int, dict[str, npt.NDArray[Any]]]] = {}
        self._absent: dict[tuple[str, str], tuple[int, set[str]]] = {}
        """Columns the revision's Parquet lacks (or holds as no numbers): not read again."""

    def read(
        self,
        model: str,
        version: str,
        revision: int,
        columns: Mapping[str, str],
        categorical: Collection[str] = (),
    ) -> dict[str, npt.NDArray[Any]]:
        """Each name's reference column (name to column): as floats, NaN where missing;
        for a column named in ``categorical``, its values as the profiles spell them
        (:func:`spelled`), missing ones left out.

        A column the reference lacks, or a revision no longer the newest, is left out.
        """
        key = (model, version)
        kept_revision, kept = self._kept.get(key, (revision, {}))
        absent_revision, absent = self._absent.get(key, (revision, set()))
        if kept_revision != revision:
            kept = {}
        if absent_revision != revision:
            absent = set()
        spell = {columns[name] for name in categorical if name in columns}
        wanted = sorted({c for c in columns.values() if c not in kept and c not in absent})
        if wanted:
            found = self._store.reference_data(model, version)
            if found is not None and found[0].revision == revision:
                import pandas as pd

                data = io.BytesIO(found[1])
                present = _names(data)
                readable = [c for c in wanted if c in present]
                absent.update(c for c in wanted if c not in present)
                if readable:
                    frame = pd.read_parquet(data, columns=readable, engine="pyarrow")
                    for column in readable:
                        if column in spell:
                            kept[column] = spelled(frame[column].tolist())
                            continue
                        try:
                            kept[column] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
                        except (TypeError, ValueError):
                            logger.warning("reference column %r is not numeric", column)
                            absent.add(column)
        self._kept[key] = (revision, kept)
        self._absent[key] = (revision, absent)
        return {name: kept[c] for name, c in columns.items() if c in kept}


def _names(data: io.BytesIO) -> set[str]:
    import pyarrow.parquet as pq

    data.seek(0)
    names = set(pq.read_schema(data).names)
    data.seek(0)
    return names

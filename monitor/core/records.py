"""Window results as the store keeps them: a typed row whose scores are JSON documents.

Stage: core. In: a scored window, turned into a record by
:meth:`monitor.score.results.WindowResult.as_record`. Out: the same record from the
store, turned back by :meth:`monitor.score.results.WindowResult.from_record`. The store
reads and writes the columns and never looks inside ``drift`` or ``scores``, so it
imports nothing from scoring; the documents' shapes belong to the records that write
them (:class:`~monitor.score.results.FeatureDrift`,
:class:`~monitor.score.scores.WindowScores`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.windows import WindowKind

__all__ = ["WindowRecord"]


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One stored window result: a row of ``window_results``.

    The fields are :class:`~monitor.score.results.WindowResult`'s, but ``drift`` is the
    per-feature documents keyed by feature name and ``scores`` the scores document.
    """

    model: str
    model_version: str
    window_start: float
    window_end: float
    definition: str
    predictions: int
    labelled: int
    accuracy: float | None
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    latency_p99_seconds: float | None
    reference_revision: int | None
    drift: Mapping[str, Mapping[str, Any]]
    """Feature name to its drift document."""
    scored_at: float
    drift_share: float | None
    dataset_drifted: bool | None
    segment: str
    window_kind: WindowKind
    scores: Mapping[str, Any] | None
    """The scores document (accuracy, quality, output drift, ...); None in a row
    stored before the scores existed."""
    block: int | None

"""Per-prediction results as the store keeps them: one part's document about one event.

Stage: core. In: what a window part keeps about single predictions (an anomaly flag
and its reasons, an explanation), as a JSON document the part alone reads. Out: the
same records from the store, by event id or by window. The store never looks inside
``payload``, so a new part needs no table, no column and no store method of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PredictionResultRecord"]


@dataclass(frozen=True, slots=True)
class PredictionResultRecord:
    """A part's result about one prediction: a row of ``prediction_results``.

    ``(model, event_id, part)`` identifies it: storing the same key again replaces it
    (a part that scores a prediction again keeps only its newest result).
    """

    model: str
    model_version: str
    event_id: str
    part: str
    """The name of the window part that produced it."""
    ts: float
    """The prediction's event time: windows select by it, retention deletes by it."""
    payload: Mapping[str, Any]
    """The part's document (JSON-serialisable); the store keeps it as it is."""
    created_at: float | None = None
    """When the store kept it (epoch seconds); None on a record not stored yet."""

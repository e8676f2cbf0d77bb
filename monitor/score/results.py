"""Results of scoring: frozen records that the store keeps and the exporter reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFINITION = "window-v1;psi-v1;accuracy-v1"
"""Names and versions of the metric definitions that produce a :class:`WindowResult`.

Bump the matching part when a computation changes, so that stored results say which
definition made them.
"""


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift over one window."""

    feature: str
    test: str
    """The test used, e.g. ``psi``."""
    value: float
    """The test's statistic (PSI: a distance, 0 when the distributions match)."""
    threshold: float
    drifted: bool
    current_count: int
    """Non-missing values of the feature in the window."""

    def as_json(self) -> dict[str, Any]:
        """The stored form (the feature name is the key around it)."""
        return {
            "test": self.test,
            "value": self.value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "current_count": self.current_count,
        }

    @classmethod
    def from_json(cls, feature: str, data: dict[str, Any]) -> FeatureDrift:
        """Rebuild from :meth:`as_json`."""
        return cls(
            feature=feature,
            test=str(data["test"]),
            value=float(data["value"]),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            current_count=int(data["current_count"]),
        )


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Everything scored for one model version over one window ``[start, end)``."""

    model: str
    model_version: str
    window_start: float
    window_end: float
    definition: str
    predictions: int
    labelled: int
    """Predictions in the window that have a label by now."""
    accuracy: float | None
    """Share of labelled predictions whose class was right (classification only)."""
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    latency_p99_seconds: float | None
    reference_revision: int | None
    """The reference revision drift was measured against; None without a reference."""
    drift: tuple[FeatureDrift, ...]
    scored_at: float

    @property
    def label_coverage(self) -> float | None:
        """Share of the window's predictions that have a label."""
        return self.labelled / self.predictions if self.predictions else None

"""Results of scoring: frozen records that the store keeps and the exporter reads.

Stage: score. In: what the scorer computes for a window. Out: :class:`WindowResult`
(and, per base window, its split values' :class:`SplitResults`), which the loop stores as
a :class:`~monitor.core.records.WindowRecord` (:meth:`WindowResult.as_record`) and the
API, the report and the exporter read back (:meth:`WindowResult.from_record`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.core.records import WindowRecord
from monitor.core.windows import SplitKind, WindowKind
from monitor.score.drift.registry import DRIFT_TESTS
from monitor.score.parts import result_models
from monitor.score.scores import WindowScores

__all__ = ["DEFINITION", "FeatureDrift", "SplitResults", "WindowResult"]

DEFINITION = (
    "window-v1;drift-profile-v2;accuracy-v2;quality-v1;output-drift-v2;correlation-v1;"
    "multivariate-v1"
)
"""Names and versions of the metric definitions that produce a :class:`WindowResult`.

Bump the matching part when a computation changes, so that stored results say which
definition made them.
"""


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift over one window."""

    feature: str
    test: str
    """The test used, by its registry name (``ks``, ``chisquare``, ``z``, ``psi``,
    ``jensenshannon``, ``wasserstein``, ``hellinger``)."""
    value: float
    """What is compared with the threshold, as Evidently's ``drift_score``: the p-value
    of a p-value test (drift when small), the distance of a distance test (drift when
    large)."""
    threshold: float
    drifted: bool
    """The verdict; for p-value tests, after Benjamini-Hochberg across the window's
    p-value tests when that control is on."""
    current_count: int
    """Non-missing values of the feature in the window."""
    statistic: float | None = None
    """The test statistic (KS: D; chi-squared: X²; Z: z; a distance: the distance)."""
    adjusted_p_value: float | None = None
    """Benjamini-Hochberg adjusted p-value (p-value tests, with the control on)."""
    error_bound: float = 0.0
    """How far ``statistic`` may be from its value on the raw events (see
    :mod:`monitor.score.drift.profiled`): 0 where it was computed from them. A result
    from profiles is kept only where its range of exact values is within 1e-3 and on
    one side of the threshold."""

    @property
    def is_p_value(self) -> bool:
        """Whether ``value`` is a p-value (drift when below the threshold)."""
        test = DRIFT_TESTS.get(self.test)
        return test is not None and test.statistic == "p_value"

    @property
    def strength(self) -> float:
        """How far past (above 1) or short of (below 1) its threshold the value is."""
        if self.is_p_value:
            return self.threshold / max(self.value, 1e-300)
        return self.value / self.threshold if self.threshold > 0 else float("inf")

    def as_json(self) -> dict[str, Any]:
        """The stored form (the feature name is the key around it)."""
        return {
            "test": self.test,
            "value": self.value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "current_count": self.current_count,
            "statistic": self.statistic,
            "adjusted_p_value": self.adjusted_p_value,
            "error_bound": self.error_bound,
        }

    @classmethod
    def from_json(cls, feature: str, data: Mapping[str, Any]) -> FeatureDrift:
        """Rebuild from :meth:`as_json`."""
        statistic = data.get("statistic")
        adjusted = data.get("adjusted_p_value")
        return cls(
            feature=feature,
            test=str(data["test"]),
            value=float(data["value"]),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            current_count=int(data["current_count"]),
            statistic=None if statistic is None else float(statistic),
            adjusted_p_value=None if adjusted is None else float(adjusted),
            error_bound=float(data.get("error_bound", 0.0)),
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
    drift_share: float | None = None
    """Share of the scored features that drifted; None when none was scored."""
    dataset_drifted: bool | None = None
    """Whether ``drift_share`` reached the dataset-level threshold (Evidently's rule)."""
    segment: str = ""
    """``key=value`` of the segment the window covers; empty: every event."""
    window_kind: WindowKind = "time"
    """``time``: a tumbling time window; ``count``: a block of N predictions."""
    scores: WindowScores = WindowScores()
    """Accuracy metrics, data quality, prediction and label drift, correlation and
    multivariate drift, the served classes and scores (see :mod:`monitor.score.scores`)."""
    block: int | None = None
    """Count windows: the block's number in the version's ingest order (0 first)."""

    @property
    def label_coverage(self) -> float | None:
        """Share of the window's predictions that have a label."""
        return self.labelled / self.predictions if self.predictions else None

    def as_record(self) -> WindowRecord:
        """The stored form: the drift and the scores as JSON documents."""
        return WindowRecord(
            model=self.model,
            model_version=self.model_version,
            window_start=self.window_start,
            window_end=self.window_end,
            definition=self.definition,
            predictions=self.predictions,
            labelled=self.labelled,
            accuracy=self.accuracy,
            latency_p50_seconds=self.latency_p50_seconds,
            latency_p95_seconds=self.latency_p95_seconds,
            latency_p99_seconds=self.latency_p99_seconds,
            reference_revision=self.reference_revision,
            drift={d.feature: d.as_json() for d in self.drift},
            scored_at=self.scored_at,
            drift_share=self.drift_share,
            dataset_drifted=self.dataset_drifted,
            segment=self.segment,
            window_kind=self.window_kind,
            scores=self.scores.as_json(),
            block=self.block,
        )

    @classmethod
    def from_record(cls, record: WindowRecord) -> WindowResult:
        """Rebuild from :meth:`as_record` (as the store returns it)."""
        return cls(
            model=record.model,
            model_version=record.model_version,
            window_start=record.window_start,
            window_end=record.window_end,
            definition=record.definition,
            predictions=record.predictions,
            labelled=record.labelled,
            accuracy=record.accuracy,
            latency_p50_seconds=record.latency_p50_seconds,
            latency_p95_seconds=record.latency_p95_seconds,
            latency_p99_seconds=record.latency_p99_seconds,
            reference_revision=record.reference_revision,
            drift=tuple(FeatureDrift.from_json(f, d) for f, d in record.drift.items()),
            scored_at=record.scored_at,
            drift_share=record.drift_share,
            dataset_drifted=record.dataset_drifted,
            segment=record.segment,
            window_kind=record.window_kind,
            scores=WindowScores.from_json(record.scores, result_models()),
            block=record.block,
        )


@dataclass(frozen=True, slots=True)
class SplitResults:
    """The split results (segment values, variants, stages, sensitive groups) of one
    base window of one model version."""

    window_start: float
    results: tuple[WindowResult, ...]
    """One per scored split value: segments in key order, then variants, stages, and
    groups in the order of the model's sensitive attributes; within each key, most
    predictions first. A result's ``segment`` is its split's label
    (:func:`monitor.core.windows.parse_split` reads it)."""
    cut: Mapping[SplitKind, int]
    """Per split kind: values in the window left unscored by the per-key cap. Segments
    are counted whenever segment keys are set; another kind only where the window holds
    values of it (a model without variants exports no variant series)."""
    groups: Mapping[str, str] = field(default_factory=dict)
    """Per group result's label: the ``group`` it is exported as, its value where the
    model allows it as a label, else its number (``g3``)."""

"""What the API answers: the ``*Public`` models (requests use ``collectors.contract``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from collectors.contract import ModelDescription


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class ModelPublic(ModelDescription):
    """A registered model with its known versions."""

    versions: list[str]


class VersionPublic(_Public):
    """A model version."""

    model: str
    version: str


class ReferencePublic(_Public):
    """A stored reference revision."""

    model: str
    version: str
    revision: int
    rows: int
    source_format: str
    features_profiled: list[str]
    created_at: float


class IngestResult(_Public):
    """What became of an ingest batch."""

    received: int
    stored: int
    duplicates: int
    """Events already stored (a redelivery); they were not stored again."""


class FeatureDriftPublic(_Public):
    """One feature's drift over one window."""

    feature: str
    test: str
    value: float
    """The p-value of ks, chisquare and z; the distance of the other tests."""
    threshold: float
    drifted: bool
    current_count: int
    statistic: float | None = None
    """The test statistic; None where it is infinite (chi-squared with a new value)."""
    adjusted_p_value: float | None = None
    """Benjamini-Hochberg adjusted p-value across the window's p-value tests."""
    error_bound: float = 0.0
    """How far the statistic may be from its value on the raw events."""


class FeatureDriftWindowPublic(FeatureDriftPublic):
    """One feature's drift result in one window."""

    window_start: float
    window_end: float
    definition: str
    reference_revision: int | None


class WindowPublic(_Public):
    """The scores of one window."""

    model: str
    model_version: str
    window_start: float
    window_end: float
    definition: str
    predictions: int
    labelled: int
    label_coverage: float | None
    accuracy: float | None
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    latency_p99_seconds: float | None
    reference_revision: int | None
    drift: list[FeatureDriftPublic]
    scored_at: float
    drift_share: float | None = None
    """Share of the scored features that drifted."""
    dataset_drifted: bool | None = None
    """Whether that share reached ``SIDEWATCH_DRIFT_SHARE``."""
    segment: str = ""
    """``key=value`` of the segment the window covers; empty: every event."""
    window_kind: Literal["time", "count"] = "time"
    """``time``: a tumbling time window; ``count``: a block of N predictions."""
    block: int | None = None
    """Count windows: the block's number in the version's ingest order (0 first)."""


class Problem(_Public):
    """One thing wrong with a request: where, and what was expected."""

    loc: str
    msg: str


class ErrorBody(_Public):
    """The body of every 4xx answer."""

    detail: str
    problems: list[Problem] = []

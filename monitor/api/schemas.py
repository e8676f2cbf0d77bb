"""What the API answers: the ``*Public`` models (requests use ``collectors.contract``)."""

from __future__ import annotations

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
    threshold: float
    drifted: bool
    current_count: int


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


class Problem(_Public):
    """One thing wrong with a request: where, and what was expected."""

    loc: str
    msg: str


class ErrorBody(_Public):
    """The body of every 4xx answer."""

    detail: str
    problems: list[Problem] = []

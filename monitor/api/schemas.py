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


class GroupPublic(_Public):
    """A numbered group of a sensitive attribute (``GET /v1/models/{name}/groups``)."""

    attribute: str
    value: str
    number: int
    label: str
    """How ``/metrics`` labels it where the values may not be labels: ``g{number}``."""


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


RejectReason = Literal["invalid", "unknown_model", "forbidden"]
"""Why ingest refused one event: it breaks the contract or its model's features
(``invalid``), its model is not registered (``unknown_model``), or the caller's token
may not write its model (``forbidden``). The last two are states an operator fixes:
the collectors keep such events in quarantine, to replay once it is fixed."""


class ProblemPublic(_Public):
    """One thing wrong with a request, by location; values are never echoed."""

    loc: str
    msg: str


class RejectedEvent(_Public):
    """One event of a batch that was not stored, and why."""

    index: int
    """Its place in the batch's ``events`` (or ``labels``) list."""
    event_id: str | None
    """Its id, where it had a readable one."""
    reason: RejectReason
    problems: list[ProblemPublic]


class IngestResult(_Public):
    """What became of each event of an ingest batch.

    The valid events of a batch are stored even when others are not: each event is
    stored, a duplicate, or listed in ``rejected`` with its reason.
    """

    received: int
    stored: int
    duplicates: int
    """Events already stored (a redelivery); they were not stored again."""
    rejected: list[RejectedEvent] = []
    """Events not stored, by index, with the reason (at most one entry per event)."""
    unmatched: int = 0
    """Labels stored whose prediction is not stored (yet): they join it when it arrives,
    and count nowhere until then."""


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


class OutputDriftPublic(_Public):
    """Drift of one of the model's outputs (or of its labels) over one window."""

    output: str
    """``class``, ``score``, ``value``, ``probability_<class>`` or ``label``."""
    test: str
    value: float
    """The p-value of ks, chisquare and z; the distance of the other tests."""
    threshold: float
    drifted: bool
    current_count: int
    statistic: float | None = None
    adjusted_p_value: float | None = None
    error_bound: float = 0.0


class NotScoredPublic(_Public):
    """A part of a window's scores that was left out, and why."""

    part: str
    reason: str


class WindowPublic(_Public):
    """The scores of one window.

    The registered window parts' results follow these fields, one field each (named by
    the part's ``public_name``, its schema its result model):
    :func:`monitor.api.results.window_model` builds the answer's model from the registry
    when the app is built.
    """

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
    """The split the window covers: ``key=value`` for a segment value, ``@variant=...``,
    ``@stage=...`` or ``@group:attribute=value``; empty: every event."""
    window_kind: Literal["time", "count"] = "time"
    """``time``: a tumbling time window; ``count``: a block of N predictions."""
    block: int | None = None
    """Count windows: the block's number in the version's ingest order (0 first)."""
    prediction_drift: list[OutputDriftPublic] | None = None
    label_drift: OutputDriftPublic | None = None
    not_scored: list[NotScoredPublic] = []
    """Every part left out (None above), and why."""


class Problem(_Public):
    """One thing wrong with a request: where, and what was expected."""

    loc: str
    msg: str


class ErrorBody(_Public):
    """The body of every 4xx answer."""

    detail: str
    problems: list[Problem] = []

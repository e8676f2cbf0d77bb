"""Table models: the only place that knows how results and events are laid out in SQL.

The API speaks the ``*Create`` / ``*Public`` models of ``monitor/api/schemas.py``; these
classes never leave the store. Timestamps are epoch seconds (UTC) so that window
arithmetic is plain numbers on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

Json = JSON().with_variant(JSONB(), "postgresql")


def _keyed(name: str, *columns: str) -> Index:
    """An index over rows that have a correlation key only (most have none)."""
    where = text("correlation_key IS NOT NULL")
    return Index(name, *columns, sqlite_where=where, postgresql_where=where)


def _json(nullable: bool = False) -> Any:
    return Field(sa_column=Column(Json, nullable=nullable))


class ModelRow(SQLModel, table=True):
    """A registered model and its description."""

    __tablename__ = "models"

    name: str = Field(primary_key=True, max_length=128)
    task: str = Field(max_length=16)
    features: list[dict[str, str]] = _json()
    positive_class: Any = _json(nullable=True)
    sensitive_attributes: list[str] = _json()
    group_labels_allowed: bool = Field(
        default=False, sa_column_kwargs={"server_default": text("false")}
    )
    """Whether sensitive groups' values may be metric labels (else they are numbered)."""
    description: str = ""
    prediction_column: str = Field(
        default="prediction", max_length=128, sa_column_kwargs={"server_default": "prediction"}
    )
    score_column: str = Field(
        default="score", max_length=128, sa_column_kwargs={"server_default": "score"}
    )
    target_column: str = Field(
        default="target", max_length=128, sa_column_kwargs={"server_default": "target"}
    )
    """The reference's columns of served classes or values, scores, and labels."""
    created_at: float


class ModelVersionRow(SQLModel, table=True):
    """A version of a model; created on registration or on its first event."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(foreign_key="models.name", max_length=128)
    version: str = Field(max_length=64)
    created_at: float


class ReferenceRow(SQLModel, table=True):
    """A reference dataset for a model version; each upload is a new revision."""

    __tablename__ = "reference_datasets"
    __table_args__ = (UniqueConstraint("model", "version", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(foreign_key="models.name", max_length=128)
    version: str = Field(max_length=64)
    revision: int
    rows: int
    source_format: str = Field(max_length=16)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The dataset as Parquet, whatever format it was uploaded in."""
    profile: dict[str, Any] = _json()
    """What scoring needs from the reference (fitted bins), computed once at upload."""
    created_at: float


class PredictionRow(SQLModel, table=True):
    """One captured prediction; its event id is unique within its model (tenants
    choose ids independently, and a replay under a renamed model is new data)."""

    __tablename__ = "predictions"
    __table_args__ = (
        PrimaryKeyConstraint("event_id", "model", name="pk_predictions"),
        Index("ix_predictions_window", "model", "model_version", "ts"),
        _keyed("ix_predictions_correlation", "model", "correlation_key"),
    )

    event_id: str = Field(primary_key=True, max_length=128)
    model: str = Field(primary_key=True, max_length=128)
    model_version: str = Field(max_length=64)
    ts: float
    received_at: float
    features: dict[str, Any] = _json()
    outputs: dict[str, Any] = _json()
    latency_seconds: float | None = None
    trace_id: str | None = Field(default=None, max_length=32)
    parent_span_id: str | None = Field(default=None, max_length=16)
    variant: str | None = Field(default=None, max_length=64)
    stage: str | None = Field(default=None, max_length=64)
    segment: dict[str, str] = _json()
    correlation_key: str | None = Field(default=None, max_length=128)


class LabelRow(SQLModel, table=True):
    """Ground truth for a prediction of the same model, joined by event id or
    correlation key; its own id is unique within its model."""

    __tablename__ = "labels"
    __table_args__ = (
        PrimaryKeyConstraint("event_id", "model", name="pk_labels"),
        Index("ix_labels_prediction", "model", "prediction_id"),
        _keyed("ix_labels_correlation", "model", "correlation_key"),
    )

    event_id: str = Field(primary_key=True, max_length=128)
    model: str = Field(primary_key=True, max_length=128)
    prediction_id: str | None = Field(default=None, max_length=128)
    correlation_key: str | None = Field(default=None, max_length=128)
    value: Any = _json()
    ts: float
    received_at: float


class WindowResultRow(SQLModel, table=True):
    """The scores of one model version over one window, with the definition used."""

    __tablename__ = "window_results"
    __table_args__ = (
        UniqueConstraint(
            "model",
            "model_version",
            "segment",
            "window_kind",
            "window_start",
            "window_end",
            "block",
            name="uq_window_results_window",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=128)
    model_version: str = Field(max_length=64)
    segment: str = Field(default="", max_length=256)
    """``key=value`` of the segment the window covers; empty: every event."""
    window_kind: str = Field(default="time", max_length=8)
    """``time`` (a tumbling time window) or ``count`` (a block of N predictions)."""
    window_start: float
    window_end: float
    block: int = Field(default=-1, sa_type=BigInteger, sa_column_kwargs={"server_default": "-1"})
    """Count windows: the block's number in ingest order (two blocks can span the same
    event times); -1 for time windows."""
    definition: str = Field(max_length=256)
    """Name and version of the metric definitions that produced the row."""
    predictions: int
    labelled: int
    accuracy: float | None = None
    latency_p50_seconds: float | None = None
    latency_p95_seconds: float | None = None
    latency_p99_seconds: float | None = None
    reference_revision: int | None = None
    drift: dict[str, Any] = _json()
    """Per feature: the test, its value, the threshold and the verdict."""
    drift_share: float | None = None
    """Share of the scored features that drifted; None when none was scored."""
    dataset_drifted: bool | None = None
    """Whether that share reached the dataset threshold."""
    scored_at: float
    scores: dict[str, Any] | None = _json(nullable=True)
    """Everything else scored (accuracy metrics, data quality, prediction and label
    drift, correlation and multivariate drift), as :class:`WindowResult` stores it."""


class SplitGroupRow(SQLModel, table=True):
    """The number of one value of a sensitive attribute (``group="g3"`` in ``/metrics``
    where the model does not allow the value as a label), given once, when a window of
    that group is first scored, and kept: a group keeps its number across windows."""

    __tablename__ = "split_groups"
    __table_args__ = (
        UniqueConstraint("model", "attribute", "number", name="uq_split_groups_number"),
    )

    model: str = Field(primary_key=True, max_length=128)
    attribute: str = Field(primary_key=True, max_length=128)
    value: str = Field(primary_key=True, max_length=1024)
    number: int
    created_at: float


class IngestOrderRow(SQLModel, table=True):
    """A prediction's place in its version's ingest order, written once by the scoring
    loop; count window ``k`` of ``N`` predictions is places ``[k * N, (k + 1) * N)``.

    A table of its own rather than a column of ``predictions``, so that ingest writes
    nothing more: places are appended by the loop, and only with count windows on.
    """

    __tablename__ = "ingest_order"
    __table_args__ = (UniqueConstraint("event_id", "model", name="uq_ingest_order_event"),)

    model: str = Field(primary_key=True, max_length=128)
    model_version: str = Field(primary_key=True, max_length=64)
    position: int = Field(primary_key=True, sa_type=BigInteger)
    event_id: str = Field(max_length=128)


class FeatureProfileRow(SQLModel, table=True):
    """A feature's mergeable profile over one window, updated with every ingest batch.

    ``bins_revision`` is the reference revision whose bins the histogram counts on (0:
    none, the histogram is empty); a profile whose revision is not the newest is
    rebuilt from the window's rows when it is scored.
    """

    __tablename__ = "feature_profiles"

    model: str = Field(primary_key=True, max_length=128)
    model_version: str = Field(primary_key=True, max_length=64)
    window_seconds: int = Field(primary_key=True)
    window_start: float = Field(primary_key=True)
    segment: str = Field(default="", primary_key=True, max_length=256)
    """Empty: every event of the window."""
    feature: str = Field(primary_key=True, max_length=128)
    bins_revision: int
    profile: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """:meth:`~monitor.core.profile.FeatureProfile.to_bytes`: a JSON header and the
    arrays as little-endian bytes."""
    updated_at: float


class PredictionResultRow(SQLModel, table=True):
    """What a window part keeps about one prediction (an anomaly flag and its reasons,
    an explanation): one row per prediction and part, its document opaque to the store.

    Keyed as predictions are (event ids are unique within a model), led by the event id;
    ``ix_prediction_results_window`` reads one part's results of a version by event
    time (a window, paged by ``(ts, event_id)``), ``ix_prediction_results_ts`` finds
    what retention deletes.
    """

    __tablename__ = "prediction_results"
    __table_args__ = (
        PrimaryKeyConstraint("event_id", "model", "part", name="pk_prediction_results"),
        Index("ix_prediction_results_window", "model", "model_version", "part", "ts", "event_id"),
        Index("ix_prediction_results_ts", "ts"),
    )

    event_id: str = Field(primary_key=True, max_length=128)
    model: str = Field(primary_key=True, max_length=128)
    part: str = Field(primary_key=True, max_length=64)
    """The name of the window part that kept it."""
    model_version: str = Field(max_length=64)
    ts: float
    """The prediction's event time: windows select by it, retention deletes by it."""
    payload: dict[str, Any] = _json()
    created_at: float

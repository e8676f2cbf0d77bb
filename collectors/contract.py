"""The event contract between collectors and the monitor, version 1.

Both sides import this module: the SDK and the sidecar build events that match it,
and the monitor's ingest validates incoming batches against it. Three documents:

- :class:`PredictionEvent`: one prediction as the model served it (inputs, outputs,
  latency, trace context, variant, pipeline stage, segment);
- :class:`LabelEvent`: ground truth that arrives later, joined to a prediction by the
  prediction's event id or by a correlation key;
- :class:`ModelDescription`: what the monitor needs to know about a model (task,
  features and their types, positive class, sensitive attributes, and which columns of
  its reference hold the served outputs and the labels).

Every string and collection has a size limit, so a hostile or broken client cannot
make the monitor hold unbounded data. A change that breaks old clients bumps
:data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
"""Version of the event contract; batches carry it in ``schema_version``."""

MAX_BATCH_EVENTS = 10_000
"""Most events (or labels) in one ingest batch."""

MAX_FEATURES = 1_000
"""Most features per event, and per model."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
VersionName = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
FeatureName = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
NO_NUL = r"^[^\x00]*$"
"""Text values hold no U+0000: PostgreSQL's JSONB and text refuse it, and SQLite's C
strings cut a value short at it, so an event carrying one could not be stored faithfully."""
ShortText = Annotated[str, Field(max_length=1024, pattern=NO_NUL)]
ColumnName = Annotated[str, Field(min_length=1, max_length=128)]
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
FeatureValue = float | Int64 | bool | ShortText | None
ClassName = Annotated[str, Field(max_length=256, pattern=NO_NUL)]
ClassValue = Int64 | Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
SpanId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]

Task = Literal["binary", "multiclass", "regression"]
FeatureType = Literal["numeric", "categorical", "boolean"]


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Outputs(_Document):
    """What the model returned for one row; set the fields that apply to its task."""

    predicted_class: ClassValue | None = None
    """The class served (classification)."""
    score: float | None = None
    """The served score, e.g. the positive class's probability (binary)."""
    probabilities: dict[ClassName, float] | None = Field(default=None, max_length=1_000)
    """Probability per class (multiclass)."""
    value: float | None = None
    """The predicted value (regression)."""


class PredictionEvent(_Document):
    """One prediction, captured beside the model."""

    event_id: EventId
    """Unique id; the monitor stores an event once however often it is delivered."""
    model: ModelName
    model_version: VersionName
    timestamp: AwareDatetime
    """When the model served the prediction (ISO 8601 with a zone, or epoch seconds)."""
    features: dict[FeatureName, FeatureValue] = Field(max_length=MAX_FEATURES)
    outputs: Outputs
    latency_seconds: float | None = Field(default=None, ge=0, le=3600)
    trace_id: TraceId | None = None
    """W3C trace id: links the stages of a pipeline."""
    parent_span_id: SpanId | None = None
    variant: Annotated[str, Field(max_length=64, pattern=ID_PATTERN)] | None = None
    """``shadow`` for a prediction captured but not served, or the A/B arm."""
    stage: Annotated[str, Field(max_length=64, pattern=ID_PATTERN)] | None = None
    """The pipeline stage that made the prediction (``retrieval``, ``ranker``...);
    a pipeline's stages share the trace id."""
    segment: dict[FeatureName, Annotated[str, Field(max_length=128, pattern=NO_NUL)]] = Field(
        default_factory=dict, max_length=16
    )
    """Attributes to slice results by (region, channel...)."""
    correlation_key: EventId | None = None
    """A business key (an order id...) that a later label may use instead of event_id."""


class LabelEvent(_Document):
    """Ground truth for one prediction, which may arrive long after it."""

    event_id: EventId
    """The label's own id (labels are stored once, too)."""
    model: ModelName
    prediction_id: EventId | None = None
    """The event id of the prediction this label is for."""
    correlation_key: EventId | None = None
    """Or the prediction's correlation key."""
    value: float | Int64 | bool | Annotated[str, Field(max_length=256, pattern=NO_NUL)]
    timestamp: AwareDatetime

    @model_validator(mode="after")
    def _one_join_key(self) -> LabelEvent:
        if (self.prediction_id is None) == (self.correlation_key is None):
            raise ValueError("set exactly one of prediction_id and correlation_key")
        return self


class PredictionBatch(_Document):
    """The body of ``POST /v1/ingest/predictions``."""

    schema_version: Literal[1] = 1
    events: list[PredictionEvent] = Field(max_length=MAX_BATCH_EVENTS)


class LabelBatch(_Document):
    """The body of ``POST /v1/ingest/labels``."""

    schema_version: Literal[1] = 1
    labels: list[LabelEvent] = Field(max_length=MAX_BATCH_EVENTS)


class FeatureSpec(_Document):
    """One input feature of a model."""

    name: FeatureName
    type: FeatureType


class ModelDescription(_Document):
    """What the monitor must know about a model before it accepts its events."""

    name: ModelName
    task: Task
    features: list[FeatureSpec] = Field(min_length=1, max_length=MAX_FEATURES)
    positive_class: ClassValue | None = None
    """The class that counts as positive (binary tasks)."""
    sensitive_attributes: list[FeatureName] = Field(default_factory=list, max_length=64)
    """Features that fairness is measured over; each must be one of ``features``."""
    group_labels_allowed: bool = False
    """Whether the values of the sensitive attributes may appear as metric labels
    (``group="female"``). Off: ``/metrics`` numbers the groups (``group="g3"``), and
    the numbering is read with the admin token."""
    description: Annotated[str, Field(max_length=4096)] = ""
    prediction_column: ColumnName = "prediction"
    """The reference's column of served outputs: the class (classification) or the value
    (regression). Without it, the drift of the served class or value is not scored."""
    score_column: ColumnName = "score"
    """The reference's column of served scores: binary, the positive class's score or
    probability; multiclass, the served class's probability, and ``{score_column}_{class}``
    each class's probability. Without it, the score's drift is not scored."""
    target_column: ColumnName = "target"
    """The reference's column of true labels. Without it, label drift is not scored."""

    @model_validator(mode="after")
    def _consistent(self) -> ModelDescription:
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names must be unique; repeated: {duplicated}")
        if self.task == "binary" and self.positive_class is None:
            raise ValueError("a binary model needs positive_class")
        # Fairness is measured over a feature's values. Segment keys are free-form per
        # event, so a name that is no feature could be a typo that measures nothing.
        unknown = sorted(set(self.sensitive_attributes) - set(names))
        if unknown:
            raise ValueError(
                f"sensitive_attributes must be declared features; not features: {unknown} "
                "(add each to features, or remove it from sensitive_attributes)"
            )
        return self

"""What the store's table families share: table handles, JSON codecs, window filters.

Stage: store (private). In: the table models of :mod:`monitor.store.tables`. Out: the
SQLAlchemy tables and the helpers that every family module uses.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, Table, or_
from sqlmodel import SQLModel

from monitor.core.windows import SplitKind, Window
from monitor.store.tables import (
    FeatureProfileRow,
    IngestOrderRow,
    LabelRow,
    ModelRow,
    ModelVersionRow,
    PredictionResultRow,
    PredictionRow,
    ReferenceRow,
    SplitGroupRow,
    WindowResultRow,
)


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


MODELS = _table(ModelRow)
VERSIONS = _table(ModelVersionRow)
REFERENCES = _table(ReferenceRow)
PREDICTIONS = _table(PredictionRow)
LABELS = _table(LabelRow)
WINDOWS = _table(WindowResultRow)
PROFILES = _table(FeatureProfileRow)
ORDER = _table(IngestOrderRow)
PREDICTION_RESULTS = _table(PredictionResultRow)
SPLIT_GROUPS = _table(SplitGroupRow)


_S = TypeVar("_S", bound=Select[Any])


def dumps(value: Any) -> str:
    """``value`` as JSON text."""
    return orjson.dumps(value).decode()


def loads(value: Any) -> Any:
    """A JSON column's value, parsed if the driver returned text."""
    # SQLite gives a column declared JSON numeric affinity: the JSON text of a bare
    # number comes back as that number.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def in_window(stmt: _S, window: Window) -> _S:
    """``stmt`` (a select from ``predictions``) narrowed to the window's rows."""
    p = PREDICTIONS.c
    if window.kind == "count":
        # The block's places first (primary key range), then each row by its id.
        o = ORDER.c
        first, stop = window.positions
        return stmt.join(ORDER, (o.model == p.model) & (o.event_id == p.event_id)).where(
            o.model == window.model,
            o.model_version == window.version,
            o.position >= first,
            o.position < stop,
        )
    stmt = stmt.where(
        p.model == window.model,
        p.model_version == window.version,
        p.ts >= window.start,
        p.ts < window.end,
    )
    if window.split is not None:
        # The window index bounds the scan to the window's rows.
        split = window.split
        stmt = stmt.where(split_value(split.kind, split.key) == split.value)
    return stmt


def split_value(kind: SplitKind, key: str = "") -> ColumnElement[Any]:
    """A prediction's value of a split, as text (NULL where it has none).

    A segment's is ``CAST(JSON_EXTRACT(segment, '$."key"') AS VARCHAR)`` on SQLite,
    ``segment ->> 'key'`` on PostgreSQL (SQLAlchemy's ``as_string``); a group's is the
    feature's value in ``features`` read alike, so a number ``3`` reads ``'3'`` on both
    backends (a boolean does not: ``1`` on SQLite, ``true`` on PostgreSQL).
    """
    p = PREDICTIONS.c
    if kind == "segment":
        segment: ColumnElement[Any] = p.segment[key].as_string()
        return segment
    if kind == "variant":
        return p.variant
    if kind == "stage":
        return p.stage
    group: ColumnElement[Any] = p.features[key].as_string()
    return group


def label_join() -> Any:
    """A label joins a prediction of its own model (the model its writer was allowed
    to write) by event id or by correlation key; never another model's."""
    p, lab = PREDICTIONS.c, LABELS.c
    return (lab.model == p.model) & or_(
        lab.prediction_id == p.event_id,
        lab.correlation_key == p.correlation_key,
    )

"""Events: predictions, labels, and the predictions' places in ingest order.

Stage: store (private). In: validated prediction and label rows (with their profile
deltas, merged in the same transaction), unplaced predictions. Out: a window's rows,
samples, latencies and labelled predictions; the joins between labels and predictions.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson
from sqlalchemy import JSON, and_, func, or_, select

from monitor.core.latency import LatencyHistogram
from monitor.core.windows import SplitKind, Window
from monitor.store._common import (
    LABELS,
    ORDER,
    PREDICTIONS,
    dumps,
    in_window,
    label_join,
    split_value,
)
from monitor.store._engine import StoreBase
from monitor.store._profiles import ProfileDeltas, merge_profiles
from monitor.store.tables import LabelRow, PredictionRow

_LATENCY_CHUNK = 2_000
"""Rows of latencies read at a time."""
_ID_CHUNK = 5_000
"""Most ids in one ``IN (...)`` list (SQLite allows 32,766 parameters)."""
_PLACE_CHUNK = 10_000
"""Most predictions placed in ingest order per write transaction."""
_MAX_SPANS = 64
"""Most separate time ranges searched for unplaced predictions in one query."""


EventKey = tuple[str, str]
"""``(model, event_id)``: what identifies a prediction or a label. Event ids are
unique within a model only (tenants choose them independently)."""


class Labelled(NamedTuple):
    """A prediction that a label joins to."""

    model: str
    model_version: str
    ts: float
    position: int | None
    """Its place in ingest order (count windows), None if not placed yet."""


class Labelless(NamedTuple):
    """A stored label that joins no stored prediction."""

    event_id: str
    model: str


class _SomeStored(Exception):
    """A batch held ids already stored: its optimistic insert is rolled back."""


class EventTables(StoreBase):
    """Predictions, labels and ingest order (count windows)."""

    # -- events and labels -------------------------------------------------------------

    def insert_predictions(
        self,
        rows: Sequence[dict[str, Any]],
        profiles: Callable[[list[dict[str, Any]]], ProfileDeltas] | None = None,
    ) -> set[EventKey]:
        """Insert prediction rows, skipping those whose model already stored their id.

        Args:
            rows: Prediction rows.
            profiles: Given the rows that are new, their feature profiles; these are
                merged into the stored window profiles in the same transaction.

        Returns:
            ``(model, event_id)`` of the rows that were new (the others were
            duplicates).
        """
        return self._insert_new(PredictionRow, rows, profiles)

    def insert_labels(self, rows: Sequence[dict[str, Any]]) -> set[EventKey]:
        """Insert label rows, skipping those whose model already stored their id.

        Returns:
            ``(model, event_id)`` of the labels that were new.
        """
        return self._insert_new(LabelRow, rows)

    def _insert_new(
        self,
        table: Any,
        rows: Sequence[dict[str, Any]],
        profiles: Callable[[list[dict[str, Any]]], ProfileDeltas] | None = None,
    ) -> set[EventKey]:
        # The hot path of ingest: plain DB-API executemany with JSON encoded here, which
        # costs a fifth of SQLAlchemy's per-row parameter processing. Inside the write
        # transaction, ids found before the insert are the duplicates; ON CONFLICT keeps
        # a concurrent writer of the same id (PostgreSQL) from storing it twice.
        if not rows:
            return set()
        columns = table.__table__.columns
        names = [c.name for c in columns]
        values = operator.itemgetter(*names)
        encoded = [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]
        mark = "?" if self.dialect == "sqlite" else "%s"
        insert_sql = (
            f"INSERT INTO {table.__tablename__} ({', '.join(names)}) "
            f"VALUES ({', '.join([mark] * len(names))}) ON CONFLICT (model, event_id) DO NOTHING"
        )
        params = []
        for row in rows:
            param = list(values(row))
            for i in encoded:
                param[i] = dumps(param[i])
            params.append(tuple(param))
        if self.dialect == "sqlite":
            # Most batches hold no stored id: insert them all and count what SQLite
            # stored (an executemany's rowcount sums its changes; a row ON CONFLICT
            # skipped is none), which saves looking up every id first. A batch with a
            # duplicate is rolled back and stored again the careful way.
            try:
                with self._write() as conn:
                    stored = conn.exec_driver_sql(insert_sql, params).rowcount
                    if stored != len(rows):
                        raise _SomeStored
                    if profiles is not None:
                        merge_profiles(conn, self.dialect, profiles(list(rows)))
                return {(r["model"], r["event_id"]) for r in rows}
            except _SomeStored:
                pass
        ids = sorted({r["event_id"] for r in rows})
        with self._write() as conn:
            existing: set[EventKey] = set()
            for i in range(0, len(ids), _ID_CHUNK):
                chunk = ids[i : i + _ID_CHUNK]
                # By id alone, the key's leading column: a condition on the model too
                # let PostgreSQL pick a scan of the model's rows (14,000 -> 900 rows/s
                # at 50,000 rows before its statistics caught up). Other models' rows
                # of the same ids are few and ignored below.
                found = conn.exec_driver_sql(
                    f"SELECT model, event_id FROM {table.__tablename__} "
                    f"WHERE event_id IN ({', '.join([mark] * len(chunk))})",
                    tuple(chunk),
                )
                existing.update((m, e) for m, e in found)
            keep = [i for i, r in enumerate(rows) if (r["model"], r["event_id"]) not in existing]
            new = [rows[i] for i in keep]
            if new:
                conn.exec_driver_sql(insert_sql, [params[i] for i in keep])
                if profiles is not None:
                    merge_profiles(conn, self.dialect, profiles(new))
        return {(r["model"], r["event_id"]) for r in new}

    def split_counts(self, window: Window, kind: SplitKind, key: str = "") -> dict[str, int]:
        """Predictions of a (whole-version) window per value of a split: of segment
        ``key``, the variants, the stages, or the groups of sensitive attribute ``key``;
        predictions without a value are not counted."""
        value = split_value(kind, key)
        stmt = in_window(select(value, func.count()), window)
        stmt = stmt.where(value.is_not(None)).group_by(value)
        with self.engine.connect() as conn:
            return {str(v): int(n) for v, n in conn.execute(stmt)}

    # -- ingest order (count windows) --------------------------------------------------

    def place_predictions(
        self, model: str, version: str, spans: Sequence[tuple[float, float]] | None
    ) -> tuple[int, int]:
        """Give the version's unplaced predictions their places in ingest order.

        Places are handed out once, in ``(received_at, event_id)`` order of the rows
        found unplaced, after every place already given; a row committed later (a late
        event, a slow concurrent batch) joins the block being filled and never moves a
        placed one.

        Args:
            spans: Event-time ranges ``[start, end)`` that hold the new rows (the
                windows ingest marked); None searches every row of the version.

        Returns:
            How many predictions of the version were placed before, and after.
        """
        p, o = PREDICTIONS.c, ORDER.c
        stmt = (
            select(p.event_id)
            .outerjoin(ORDER, (o.model == p.model) & (o.event_id == p.event_id))
            .where(p.model == model, p.model_version == version, o.event_id.is_(None))
            .order_by(p.received_at, p.event_id)
        )
        if spans is not None:
            merged = _merge_spans(spans)
            if len(merged) > _MAX_SPANS:
                merged = [(merged[0][0], merged[-1][1])]
            stmt = stmt.where(or_(*(and_(p.ts >= a, p.ts < b) for a, b in merged)))
        before = after = self.placed_count(model, version)
        with self.engine.connect().execution_options(stream_results=True) as read:
            for chunk in read.execute(stmt).scalars().partitions(_PLACE_CHUNK):
                after = self._place(model, version, list(chunk))
        return before, after

    def _place(self, model: str, version: str, ids: list[str]) -> int:
        # Plain DB-API statements, as ingest's: SQLAlchemy's parameter processing cost
        # three times the insert itself here.
        mark = "?" if self.dialect == "sqlite" else "%s"
        with self._write() as conn:
            if self.dialect == "postgresql":  # one placer per version at a time
                conn.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (orjson.dumps(["ingest_order", model, version]).decode(),),
                )
            placed: set[str] = set()
            for i in range(0, len(ids), _ID_CHUNK):
                chunk = ids[i : i + _ID_CHUNK]
                # By id alone (the unique key's leading column), as in _insert_new.
                found = conn.exec_driver_sql(
                    f"SELECT model, event_id FROM ingest_order WHERE event_id IN "
                    f"({', '.join([mark] * len(chunk))})",
                    tuple(chunk),
                )
                placed.update(e for m, e in found if m == model)
            top = conn.exec_driver_sql(
                f"SELECT max(position) FROM ingest_order WHERE model = {mark} "
                f"AND model_version = {mark}",
                (model, version),
            ).scalar()
            first = 0 if top is None else int(top) + 1
            new = [event_id for event_id in ids if event_id not in placed]
            if new:
                conn.exec_driver_sql(
                    "INSERT INTO ingest_order (model, model_version, position, event_id) "
                    f"VALUES ({mark}, {mark}, {mark}, {mark})",
                    [(model, version, first + i, e) for i, e in enumerate(new)],
                )
        return first + len(new)

    def placed_count(self, model: str, version: str) -> int:
        """How many of the version's predictions have a place in ingest order."""
        o = ORDER.c
        stmt = select(func.max(o.position)).where(o.model == model, o.model_version == version)
        with self.engine.connect() as conn:
            top = conn.execute(stmt).scalar()
        return 0 if top is None else int(top) + 1

    def block_span(
        self, model: str, version: str, first: int, stop: int
    ) -> tuple[int, float, float]:
        """Rows and first and last event times of the predictions placed in ``[first, stop)``."""
        p, o = PREDICTIONS.c, ORDER.c
        stmt = (
            select(func.count(), func.min(p.ts), func.max(p.ts))
            .select_from(ORDER)
            .join(PREDICTIONS, (p.model == o.model) & (p.event_id == o.event_id))
            .where(
                o.model == model,
                o.model_version == version,
                o.position >= first,
                o.position < stop,
            )
        )
        with self.engine.connect() as conn:
            count, low, high = conn.execute(stmt).one()
        return int(count), float(low or 0.0), float(high or 0.0)

    def window_latencies(self, window: Window) -> tuple[int, LatencyHistogram]:
        """How many predictions the window holds, and a histogram of their reported
        latencies (see :mod:`monitor.core.latency` for its precision).

        The rows are read in chunks (a server-side cursor on PostgreSQL), so memory
        does not grow with the window.
        """
        p = PREDICTIONS.c
        stmt = in_window(select(p.latency_seconds), window)
        histogram = LatencyHistogram.zero()
        count = 0
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=_LATENCY_CHUNK).execute(stmt)
            for chunk in result.partitions(_LATENCY_CHUNK):
                count += len(chunk)
                values = np.fromiter(
                    (np.nan if lat is None else lat for (lat,) in chunk), float, len(chunk)
                )
                histogram.update(values)
        return count, histogram

    def count_predictions(self, model: str | None = None) -> int:
        """How many predictions are stored, for one model or all."""
        stmt = select(func.count()).select_from(PREDICTIONS)
        if model is not None:
            stmt = stmt.where(PREDICTIONS.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def predictions_in_window(
        self, window: Window
    ) -> list[tuple[dict[str, Any], dict[str, Any], float | None]]:
        """``(features, outputs, latency_seconds)`` of the window's predictions."""
        p = PREDICTIONS.c
        stmt = in_window(select(p.features, p.outputs, p.latency_seconds), window)
        with self.engine.connect() as conn:
            return [(f, o, lat) for f, o, lat in conn.execute(stmt)]

    def window_feature_values(self, window: Window, names: Sequence[str]) -> dict[str, list[Any]]:
        """The named features' values over every row of the window (None where a row has
        none), one list per feature in the same row order (PostgreSQL reads only those
        values; SQLite parses each row's document, every bit of each number kept).

        How drift is computed exactly where a window's profile cannot settle it.
        """
        if not names:
            return {}
        features = PREDICTIONS.c.features
        found: list[list[Any]] = [[] for _ in names]
        if self.dialect == "sqlite":
            # SQLite renders an extracted number with 15 digits (JSON_QUOTE): read the
            # whole document, parsed exactly, as ingest's profiles read it.
            stmt = in_window(select(features), window)
            get = [operator.methodcaller("get", name) for name in names]
            with self.engine.connect() as conn:
                for (row,) in conn.execute(stmt):
                    for column, value in zip(found, get, strict=True):
                        column.append(value(row))
            return dict(zip(names, found, strict=True))
        stmt = in_window(select(*(features[name] for name in names)), window)
        with self.engine.connect().execution_options(stream_results=True) as conn:
            for row in conn.execute(stmt):
                for column, value in zip(found, row, strict=True):
                    column.append(value)
        return dict(zip(names, found, strict=True))

    def window_outputs(self, window: Window, chunk_rows: int = 10_000) -> Iterator[list[Any]]:
        """The outputs of every row of the window, in chunks of at most ``chunk_rows``
        (streamed: a long window is never held whole)."""
        stmt = in_window(select(PREDICTIONS.c.outputs), window)
        with self.engine.connect().execution_options(stream_results=True) as conn:
            for chunk in conn.execute(stmt).scalars().partitions(chunk_rows):
                yield list(chunk)

    def labelled_in_window(self, window: Window) -> list[tuple[dict[str, Any], Any]]:
        """``(outputs, label value)`` for the window's predictions that have a label.

        A label joins a prediction of its own model, by the prediction's event id or
        by its correlation key; where a prediction has several labels, the newest counts.
        """
        p, lab = PREDICTIONS.c, LABELS.c
        stmt = in_window(select(p.event_id, p.outputs, lab.value), window)
        stmt = stmt.join(LABELS, label_join()).order_by(lab.ts)
        with self.engine.connect() as conn:
            latest = {eid: (outputs, value) for eid, outputs, value in conn.execute(stmt)}
        return list(latest.values())

    def predictions_labelled_by(self, labels: Iterable[EventKey]) -> list[Labelled]:
        """The predictions that the given labels (``(model, label id)``) join to, with
        their places in ingest order (so that the count windows holding them are
        scored again). A label joins predictions of its own model only."""
        keys = set(labels)
        ids = sorted({label_id for _, label_id in keys})
        p, lab, o = PREDICTIONS.c, LABELS.c, ORDER.c
        found: list[Labelled] = []
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _ID_CHUNK):
                # By label id alone (the key's leading column), as in _insert_new; the
                # join keeps each label to its own model's predictions.
                stmt = (
                    select(lab.event_id, p.model, p.model_version, p.ts, o.position)
                    .join(LABELS, label_join())
                    .outerjoin(ORDER, (o.model == p.model) & (o.event_id == p.event_id))
                    .where(lab.event_id.in_(ids[i : i + _ID_CHUNK]))
                )
                for label_id, *row in conn.execute(stmt):
                    if (row[0], label_id) in keys:
                        found.append(Labelled(*row))
        return found

    def labels_without_prediction(self, labels: Iterable[EventKey]) -> list[Labelless]:
        """The given labels (``(model, label id)``) that join no stored prediction of
        their model (yet)."""
        keys = set(labels)
        ids = sorted({label_id for _, label_id in keys})
        p, lab = PREDICTIONS.c, LABELS.c
        joined = select(p.event_id).where(label_join())
        found: list[Labelless] = []
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _ID_CHUNK):
                stmt = select(lab.event_id, lab.model).where(
                    lab.event_id.in_(ids[i : i + _ID_CHUNK]), ~joined.exists()
                )
                found += [Labelless(*row) for row in conn.execute(stmt) if (row[1], row[0]) in keys]
        return found

    def newest_prediction_time(self, model: str, version: str) -> float | None:
        """Event time of a version's newest stored prediction, or None if it has none."""
        p = PREDICTIONS.c
        stmt = select(func.max(p.ts)).where(p.model == model, p.model_version == version)
        with self.engine.connect() as conn:
            newest = conn.execute(stmt).scalar()
        return float(newest) if newest is not None else None

    def sample_predictions(
        self, model: str, version: str, start: float, end: float, limit: int
    ) -> tuple[int, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """A uniform random sample of the predictions in ``[start, end)``.

        Returns:
            How many predictions the window holds, and ``(features, outputs)`` of at
            most ``limit`` of them, drawn without replacement.
        """
        return self.sample_window(Window(model, version, start, end), limit)

    def sample_window(
        self, window: Window, limit: int
    ) -> tuple[int, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """A uniform random sample of a window's predictions.

        Returns:
            How many predictions the window holds, and ``(features, outputs)`` of at
            most ``limit`` of them, drawn without replacement (all of them, in no
            particular order, when it holds at most ``limit``).
        """
        p = PREDICTIONS.c
        count = in_window(select(func.count()).select_from(PREDICTIONS), window)
        stmt = in_window(select(p.features, p.outputs), window)
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            if total > limit:
                # random() is SQLite's and PostgreSQL's both; the sort is over the
                # window's rows only (the window index bounds the scan).
                stmt = stmt.order_by(func.random()).limit(limit)
            rows = [(f, o) for f, o in conn.execute(stmt)]
        return total, rows

    def windows_with_predictions(self, since: float) -> list[tuple[str, str, float]]:
        """``(model, version, newest ts)`` of versions with predictions at or after ``since``."""
        p = PREDICTIONS.c
        stmt = (
            select(p.model, p.model_version, func.max(p.ts))
            .where(p.ts >= since)
            .group_by(p.model, p.model_version)
        )
        with self.engine.connect() as conn:
            return [(m, v, ts) for m, v, ts in conn.execute(stmt)]


def _merge_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged

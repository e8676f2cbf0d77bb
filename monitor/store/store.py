"""The store's one class: every SQL statement the monitor runs is here."""

from __future__ import annotations

import contextlib
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import orjson
from sqlalchemy import (
    JSON,
    Engine,
    Select,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from collectors.contract import FeatureSpec, ModelDescription
from monitor.core.latency import LatencyHistogram
from monitor.core.profile import FeatureBins, FeatureProfile, Kind, ProfileKey, profile_rows
from monitor.core.records import WindowRecord
from monitor.core.windows import Window, WindowKind
from monitor.errors import ConfigError, ConflictError, NotFoundError
from monitor.store.tables import (
    FeatureProfileRow,
    IngestOrderRow,
    LabelRow,
    ModelRow,
    ModelVersionRow,
    PredictionRow,
    ReferenceRow,
    WindowResultRow,
)

logger = logging.getLogger("sidewatch.store")


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


_MODELS = _table(ModelRow)
_VERSIONS = _table(ModelVersionRow)
_REFERENCES = _table(ReferenceRow)
_PREDICTIONS = _table(PredictionRow)
_LABELS = _table(LabelRow)
_WINDOWS = _table(WindowResultRow)
_PROFILES = _table(FeatureProfileRow)
_ORDER = _table(IngestOrderRow)

STALE_BINS = -1
"""``bins_revision`` of a profile that merged histograms on different bins: its window
is profiled again from its rows when scored."""

ProfileDeltas = Mapping[ProfileKey, tuple[int, FeatureProfile]]
"""Profiles of newly stored rows, by key, with the reference revision of their bins."""

_MIGRATIONS = Path(__file__).parent / "migrations"
_WAL_BACKSTOP_PAGES = 25_000
_SQLITE_CACHE_KIB = 16 * 1024
"""Each SQLite connection's page cache."""
_LATENCY_CHUNK = 2_000
"""Rows of latencies read at a time."""
_ID_CHUNK = 5_000
"""Most ids in one ``IN (...)`` list (SQLite allows 32,766 parameters)."""
_PLACE_CHUNK = 10_000
"""Most predictions placed in ingest order per write transaction."""
_MAX_SPANS = 64
"""Most separate time ranges searched for unplaced predictions in one query."""


_S = TypeVar("_S", bound=Select[Any])


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


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """A stored reference dataset, without its data."""

    model: str
    version: str
    revision: int
    rows: int
    source_format: str
    profile: dict[str, Any]
    created_at: float


class _SomeStored(Exception):
    """A batch held ids already stored: its optimistic insert is rolled back."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: Any) -> Any:
    # SQLite gives a column declared JSON numeric affinity: the JSON text of a bare
    # number comes back as that number.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


class Store:
    """SQL storage for one monitor.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path.db`` or
            ``postgresql+psycopg://user@host/db``).

    Raises:
        ConfigError: The URL names a database that Sidewatch does not support.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"database_url must be sqlite or postgresql, got {self.dialect!r}")
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": _loads}
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # The connection used last is handed out next: each SQLite connection keeps
            # its own page cache (up to 64 MiB), so rotating through the whole pool
            # filled every one of them and the monitor's memory grew for minutes. (An
            # in-memory database has one connection per thread: no pool to rotate.)
            kwargs["pool_use_lifo"] = True
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        # SQLite has one writer: serialise writes here rather than fail on SQLITE_BUSY.
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._write_lock, self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def start_checkpoints(self, interval_seconds: float = 1.0) -> None:
        """On SQLite, checkpoint the WAL from a background thread every interval.

        A commit then only appends to the WAL; copying pages into the database file
        (and its fsync) happens here, where it does not delay ingest.
        """
        if self.dialect != "sqlite" or self._checkpointer is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                except SQLAlchemyError:
                    logger.exception("WAL checkpoint failed; SQLite's own will take over")

        self._checkpointer = threading.Thread(target=run, name="sidewatch-checkpoint", daemon=True)
        self._checkpointer.start()

    def close(self) -> None:
        """Stop the background checkpoints and close every pooled connection."""
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(10)
        self.engine.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    # -- models and versions -----------------------------------------------------------

    def put_model(self, description: ModelDescription) -> bool:
        """Register a model; registering the same description again changes nothing.

        Returns:
            True if the model was created, False if it already existed unchanged.

        Raises:
            ConflictError: A model of that name exists with another description.
        """
        row = {
            "name": description.name,
            "task": description.task,
            "features": [f.model_dump() for f in description.features],
            "positive_class": description.positive_class,
            "sensitive_attributes": list(description.sensitive_attributes),
            "description": description.description,
            "prediction_column": description.prediction_column,
            "score_column": description.score_column,
            "target_column": description.target_column,
            "created_at": time.time(),
        }
        with self._write() as conn:
            existing = conn.execute(select(_MODELS).where(_MODELS.c.name == description.name))
            found = existing.mappings().first()
            if found is None:
                conn.execute(insert(_MODELS), [row])
                return True
        if _describe(found) != description:
            raise ConflictError(
                f"model {description.name!r} is registered with another description; "
                "register the changed model under a new name"
            )
        return False

    def get_model(self, name: str) -> ModelDescription:
        """The description of a registered model.

        Raises:
            NotFoundError: No model has that name.
        """
        with self.engine.connect() as conn:
            found = conn.execute(select(_MODELS).where(_MODELS.c.name == name)).mappings().first()
        if found is None:
            raise NotFoundError(f"model {name!r} is not registered; register it first")
        return _describe(found)

    def list_models(self) -> list[ModelDescription]:
        """Every registered model, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_MODELS).order_by(_MODELS.c.name)).mappings().all()
        return [_describe(r) for r in rows]

    def ensure_versions(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Create the ``(model, version)`` pairs that do not exist yet."""
        rows = [{"model": m, "version": v, "created_at": time.time()} for m, v in set(pairs)]
        if not rows:
            return
        stmt = self._insert(_VERSIONS).on_conflict_do_nothing(index_elements=["model", "version"])
        with self._write() as conn:
            conn.execute(stmt, rows)

    def list_versions(self, model: str | None = None) -> list[tuple[str, str]]:
        """``(model, version)`` pairs, oldest first, for one model or all."""
        v = _VERSIONS.c
        stmt = select(v.model, v.version).order_by(v.id)
        if model is not None:
            stmt = stmt.where(v.model == model)
        with self.engine.connect() as conn:
            return [(m, v) for m, v in conn.execute(stmt)]

    # -- reference datasets ------------------------------------------------------------

    def add_reference(
        self,
        model: str,
        version: str,
        *,
        rows: int,
        source_format: str,
        data: bytes,
        profile: dict[str, Any],
    ) -> ReferenceInfo:
        """Store a new revision of a version's reference dataset."""
        self.ensure_versions([(model, version)])
        with self._write() as conn:
            latest = conn.execute(
                select(func.max(_REFERENCES.c.revision)).where(
                    _REFERENCES.c.model == model, _REFERENCES.c.version == version
                )
            ).scalar()
            info = ReferenceInfo(
                model, version, (latest or 0) + 1, rows, source_format, profile, time.time()
            )
            conn.execute(
                insert(_REFERENCES),
                [
                    {
                        "model": model,
                        "version": version,
                        "revision": info.revision,
                        "rows": rows,
                        "source_format": source_format,
                        "data": data,
                        "profile": profile,
                        "created_at": info.created_at,
                    }
                ],
            )
        return info

    def latest_reference(self, model: str, version: str) -> ReferenceInfo | None:
        """The newest reference revision of a version, or None if none was uploaded."""
        r = _REFERENCES.c
        stmt = (
            select(r.model, r.version, r.revision, r.rows, r.source_format, r.profile, r.created_at)
            .where(r.model == model, r.version == version)
            .order_by(r.revision.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(stmt).first()
        return ReferenceInfo(*found) if found is not None else None

    def reference_data(self, model: str, version: str) -> tuple[ReferenceInfo, bytes] | None:
        """The newest reference revision of a version with its Parquet bytes, or None."""
        r = _REFERENCES.c
        stmt = (
            select(
                r.model,
                r.version,
                r.revision,
                r.rows,
                r.source_format,
                r.profile,
                r.created_at,
                r.data,
            )
            .where(r.model == model, r.version == version)
            .order_by(r.revision.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(stmt).first()
        if found is None:
            return None
        return ReferenceInfo(*found[:-1]), bytes(found[-1])

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
                param[i] = _dumps(param[i])
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
                        self._merge_profiles(conn, profiles(list(rows)))
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
                    self._merge_profiles(conn, profiles(new))
        return {(r["model"], r["event_id"]) for r in new}

    # -- feature profiles --------------------------------------------------------------

    def _lock_windows(
        self, conn: Connection, windows: Iterable[tuple[str, str, int, float]]
    ) -> None:
        # SQLite: the store's write lock already serialises writers. PostgreSQL: a
        # transaction-scoped advisory lock per window, taken in one order, so that two
        # writers never merge into the same profile at once (no lost update, no deadlock).
        if self.dialect != "postgresql":
            return
        for window in sorted(set(windows)):
            conn.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (orjson.dumps(window).decode(),)
            )

    def _merge_profiles(self, conn: Connection, deltas: ProfileDeltas) -> None:
        if not deltas:
            return
        windows = {(k.model, k.model_version, k.window_seconds, k.window_start) for k in deltas}
        self._lock_windows(conn, windows)
        mark = "?" if self.dialect == "sqlite" else "%s"
        stored: dict[ProfileKey, tuple[int, bytes]] = {}
        for model, version, seconds, start in sorted(windows):
            found = conn.exec_driver_sql(
                "SELECT segment, feature, bins_revision, profile FROM feature_profiles "
                f"WHERE model = {mark} AND model_version = {mark} AND window_seconds = {mark} "
                f"AND window_start = {mark}",
                (model, version, seconds, start),
            )
            for segment, feature, revision, blob in found:
                key = ProfileKey(model, version, seconds, start, segment, feature)
                stored[key] = (revision, blob)
        now = time.time()
        params = []
        for key, (revision, profile) in deltas.items():
            old = stored.get(key)
            if old is not None:
                if old[0] == revision:
                    profile = FeatureProfile.from_bytes(old[1]).merge(profile)
                else:
                    revision = STALE_BINS
            params.append((*key, revision, profile.to_bytes(), now))
        self._upsert_profiles(conn, params)

    def _upsert_profiles(self, conn: Connection, params: list[tuple[Any, ...]]) -> None:
        mark = "?" if self.dialect == "sqlite" else "%s"
        keys = "model, model_version, window_seconds, window_start, segment, feature"
        conn.exec_driver_sql(
            f"INSERT INTO feature_profiles ({keys}, bins_revision, profile, updated_at) "
            f"VALUES ({', '.join([mark] * 9)}) ON CONFLICT ({keys}) DO UPDATE SET "
            "bins_revision = excluded.bins_revision, profile = excluded.profile, "
            "updated_at = excluded.updated_at",
            params,
        )

    def window_profiles(
        self, model: str, version: str, window_seconds: int, start: float, segment: str = ""
    ) -> dict[str, tuple[int, FeatureProfile]]:
        """The stored profiles of one window: feature to (bins revision, profile)."""
        f = _PROFILES.c
        stmt = select(f.feature, f.bins_revision, f.profile).where(
            f.model == model,
            f.model_version == version,
            f.window_seconds == window_seconds,
            f.window_start == start,
            f.segment == segment,
        )
        with self.engine.connect() as conn:
            return {
                feature: (revision, FeatureProfile.from_bytes(blob))
                for feature, revision, blob in conn.execute(stmt)
            }

    def window_profiles_between(
        self, model: str, version: str, window_seconds: int, start: float, end: float
    ) -> Iterator[tuple[float, dict[str, tuple[int, FeatureProfile]]]]:
        """The stored whole-version profiles of the windows starting in ``[start, end)``.

        Yields ``(window start, {feature: (bins revision, profile)})``, one window at a
        time and oldest first, so that a long span is merged without holding it all.
        """
        f = _PROFILES.c
        stmt = (
            select(f.window_start, f.feature, f.bins_revision, f.profile)
            .where(
                f.model == model,
                f.model_version == version,
                f.window_seconds == window_seconds,
                f.window_start >= start,
                f.window_start < end,
                f.segment == "",
            )
            .order_by(f.window_start)
        )
        with self.engine.connect().execution_options(stream_results=True) as conn:
            current: float | None = None
            found: dict[str, tuple[int, FeatureProfile]] = {}
            for window_start, feature, revision, blob in conn.execute(stmt):
                if window_start != current:
                    if current is not None:
                        yield current, found
                    current, found = window_start, {}
                found[feature] = (revision, FeatureProfile.from_bytes(blob))
            if current is not None:
                yield current, found

    def profile_window(
        self, window: Window, kinds: dict[str, Kind], bins: dict[str, FeatureBins] | None
    ) -> dict[str, FeatureProfile]:
        """Each feature's profile of the window's rows, on ``bins`` (nothing is stored).

        How segment and count windows get their profiles: built when scored.
        """
        with self.engine.connect() as conn:
            return profile_rows(self._window_features(conn, window), kinds, bins)

    def rebuild_window_profiles(
        self,
        window: Window,
        kinds: dict[str, Kind],
        bins: dict[str, FeatureBins] | None,
        revision: int,
    ) -> dict[str, FeatureProfile]:
        """Profile a whole-version time window again from its rows, on ``bins``, and
        store that (when it has rows).

        Used when the stored profiles are missing or on another reference's bins.
        """
        seconds = int(window.seconds)
        key = (window.model, window.version, seconds, window.start)
        probe = self._in_window(select(_PREDICTIONS.c.event_id), window).limit(1)
        with self.engine.connect() as conn:
            if conn.execute(probe).first() is None:  # no rows: no write, nothing stored
                return profile_rows([], kinds, bins)
        with self._write() as conn:
            self._lock_windows(conn, [key])
            features = self._window_features(conn, window)
            profiles = profile_rows(features, kinds, bins)
            now = time.time()
            params = [
                (*key, "", name, revision, prof.to_bytes(), now) for name, prof in profiles.items()
            ]
            if params:
                self._upsert_profiles(conn, params)
        return profiles

    def _window_features(self, conn: Connection, window: Window) -> list[dict[str, Any]]:
        stmt = self._in_window(select(_PREDICTIONS.c.features), window)
        return [f for (f,) in conn.execute(stmt)]

    def _in_window(self, stmt: _S, window: Window) -> _S:
        """``stmt`` (a select from ``predictions``) narrowed to the window's rows."""
        p = _PREDICTIONS.c
        if window.kind == "count":
            # The block's places first (primary key range), then each row by its id.
            o = _ORDER.c
            first, stop = window.positions
            return stmt.join(_ORDER, (o.model == p.model) & (o.event_id == p.event_id)).where(
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
        if window.segment is not None:
            key, value = window.segment
            # JSON_EXTRACT(segment, '$."key"') on SQLite, segment ->> 'key' on PostgreSQL;
            # the window index bounds the scan to the window's rows.
            stmt = stmt.where(p.segment[key].as_string() == value)
        return stmt

    def segment_counts(self, window: Window, key: str) -> dict[str, int]:
        """Predictions of a (whole-version) window per value of segment ``key``."""
        p = _PREDICTIONS.c
        value = p.segment[key].as_string()
        stmt = self._in_window(select(value, func.count()), window)
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
        p, o = _PREDICTIONS.c, _ORDER.c
        stmt = (
            select(p.event_id)
            .outerjoin(_ORDER, (o.model == p.model) & (o.event_id == p.event_id))
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
        o = _ORDER.c
        stmt = select(func.max(o.position)).where(o.model == model, o.model_version == version)
        with self.engine.connect() as conn:
            top = conn.execute(stmt).scalar()
        return 0 if top is None else int(top) + 1

    def block_span(
        self, model: str, version: str, first: int, stop: int
    ) -> tuple[int, float, float]:
        """Rows and first and last event times of the predictions placed in ``[first, stop)``."""
        p, o = _PREDICTIONS.c, _ORDER.c
        stmt = (
            select(func.count(), func.min(p.ts), func.max(p.ts))
            .select_from(_ORDER)
            .join(_PREDICTIONS, (p.model == o.model) & (p.event_id == o.event_id))
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

    def save_window_profiles(
        self,
        model: str,
        version: str,
        window_seconds: int,
        start: float,
        revision: int,
        profiles: Mapping[str, FeatureProfile],
    ) -> None:
        """Store a window's profiles, replacing those stored (a backfill, a batch job)."""
        now = time.time()
        params = [
            (model, version, window_seconds, start, "", name, revision, p.to_bytes(), now)
            for name, p in profiles.items()
        ]
        with self._write() as conn:
            self._lock_windows(conn, [(model, version, window_seconds, start)])
            if params:
                self._upsert_profiles(conn, params)

    def window_latencies(self, window: Window) -> tuple[int, LatencyHistogram]:
        """How many predictions the window holds, and a histogram of their reported
        latencies (see :mod:`monitor.core.latency` for its precision).

        The rows are read in chunks (a server-side cursor on PostgreSQL), so memory
        does not grow with the window.
        """
        p = _PREDICTIONS.c
        stmt = self._in_window(select(p.latency_seconds), window)
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

    def latest_reference_revision(self, model: str, version: str) -> int | None:
        """The newest reference revision of a version, or None if none was uploaded."""
        r = _REFERENCES.c
        stmt = select(func.max(r.revision)).where(r.model == model, r.version == version)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).scalar()
        return int(found) if found is not None else None

    def count_predictions(self, model: str | None = None) -> int:
        """How many predictions are stored, for one model or all."""
        stmt = select(func.count()).select_from(_PREDICTIONS)
        if model is not None:
            stmt = stmt.where(_PREDICTIONS.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def predictions_in_window(
        self, window: Window
    ) -> list[tuple[dict[str, Any], dict[str, Any], float | None]]:
        """``(features, outputs, latency_seconds)`` of the window's predictions."""
        p = _PREDICTIONS.c
        stmt = self._in_window(select(p.features, p.outputs, p.latency_seconds), window)
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
        features = _PREDICTIONS.c.features
        found: list[list[Any]] = [[] for _ in names]
        if self.dialect == "sqlite":
            # SQLite renders an extracted number with 15 digits (JSON_QUOTE): read the
            # whole document, parsed exactly, as ingest's profiles read it.
            stmt = self._in_window(select(features), window)
            get = [operator.methodcaller("get", name) for name in names]
            with self.engine.connect() as conn:
                for (row,) in conn.execute(stmt):
                    for column, value in zip(found, get, strict=True):
                        column.append(value(row))
            return dict(zip(names, found, strict=True))
        stmt = self._in_window(select(*(features[name] for name in names)), window)
        with self.engine.connect().execution_options(stream_results=True) as conn:
            for row in conn.execute(stmt):
                for column, value in zip(found, row, strict=True):
                    column.append(value)
        return dict(zip(names, found, strict=True))

    def window_outputs(self, window: Window, chunk_rows: int = 10_000) -> Iterator[list[Any]]:
        """The outputs of every row of the window, in chunks of at most ``chunk_rows``
        (streamed: a long window is never held whole)."""
        stmt = self._in_window(select(_PREDICTIONS.c.outputs), window)
        with self.engine.connect().execution_options(stream_results=True) as conn:
            for chunk in conn.execute(stmt).scalars().partitions(chunk_rows):
                yield list(chunk)

    def labelled_in_window(self, window: Window) -> list[tuple[dict[str, Any], Any]]:
        """``(outputs, label value)`` for the window's predictions that have a label.

        A label joins a prediction of its own model, by the prediction's event id or
        by its correlation key; where a prediction has several labels, the newest counts.
        """
        p, lab = _PREDICTIONS.c, _LABELS.c
        stmt = self._in_window(select(p.event_id, p.outputs, lab.value), window)
        stmt = stmt.join(_LABELS, _label_join()).order_by(lab.ts)
        with self.engine.connect() as conn:
            latest = {eid: (outputs, value) for eid, outputs, value in conn.execute(stmt)}
        return list(latest.values())

    def predictions_labelled_by(self, labels: Iterable[EventKey]) -> list[Labelled]:
        """The predictions that the given labels (``(model, label id)``) join to, with
        their places in ingest order (so that the count windows holding them are
        scored again). A label joins predictions of its own model only."""
        keys = set(labels)
        ids = sorted({label_id for _, label_id in keys})
        p, lab, o = _PREDICTIONS.c, _LABELS.c, _ORDER.c
        found: list[Labelled] = []
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _ID_CHUNK):
                # By label id alone (the key's leading column), as in _insert_new; the
                # join keeps each label to its own model's predictions.
                stmt = (
                    select(lab.event_id, p.model, p.model_version, p.ts, o.position)
                    .join(_LABELS, _label_join())
                    .outerjoin(_ORDER, (o.model == p.model) & (o.event_id == p.event_id))
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
        p, lab = _PREDICTIONS.c, _LABELS.c
        joined = select(p.event_id).where(_label_join())
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
        p = _PREDICTIONS.c
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
        p = _PREDICTIONS.c
        count = self._in_window(select(func.count()).select_from(_PREDICTIONS), window)
        stmt = self._in_window(select(p.features, p.outputs), window)
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
        p = _PREDICTIONS.c
        stmt = (
            select(p.model, p.model_version, func.max(p.ts))
            .where(p.ts >= since)
            .group_by(p.model, p.model_version)
        )
        with self.engine.connect() as conn:
            return [(m, v, ts) for m, v, ts in conn.execute(stmt)]

    # -- window results ----------------------------------------------------------------

    def save_window_result(self, result: WindowRecord) -> None:
        """Store a window's scores, replacing an earlier scoring of the same window."""
        w = _WINDOWS
        row = {
            "model": result.model,
            "model_version": result.model_version,
            "segment": result.segment,
            "window_kind": result.window_kind,
            "window_start": result.window_start,
            "window_end": result.window_end,
            "block": -1 if result.block is None else result.block,
            "definition": result.definition,
            "predictions": result.predictions,
            "labelled": result.labelled,
            "accuracy": result.accuracy,
            "latency_p50_seconds": result.latency_p50_seconds,
            "latency_p95_seconds": result.latency_p95_seconds,
            "latency_p99_seconds": result.latency_p99_seconds,
            "reference_revision": result.reference_revision,
            "drift": result.drift,
            "drift_share": result.drift_share,
            "dataset_drifted": result.dataset_drifted,
            "scored_at": result.scored_at,
            "scores": result.scores,
        }
        keys = [
            "model",
            "model_version",
            "segment",
            "window_kind",
            "window_start",
            "window_end",
            "block",
        ]
        stmt = self._insert(w)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in row if k not in keys}
        )
        with self._write() as conn:
            conn.execute(stmt, [row])

    def segment_results(self, window: Window) -> list[WindowRecord]:
        """The stored segment results of a (whole-version) time window, any segment."""
        w = _WINDOWS.c
        stmt = select(_WINDOWS).where(
            w.model == window.model,
            w.model_version == window.version,
            w.window_kind == "time",
            w.window_start == window.start,
            w.window_end == window.end,
            w.segment != "",
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_window_result(r) for r in rows]

    def drop_segment_results(self, window: Window, keep: Iterable[str]) -> int:
        """Delete a time window's segment results but those of ``keep`` (``key=value``).

        A value that falls out of the per-key cap when its window is scored again would
        otherwise keep its older result.

        Returns:
            How many results were deleted.
        """
        w = _WINDOWS.c
        stmt = delete(_WINDOWS).where(
            w.model == window.model,
            w.model_version == window.version,
            w.window_kind == "time",
            w.window_start == window.start,
            w.window_end == window.end,
            w.segment != "",
            w.segment.not_in(list(keep)),
        )
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount)

    def window_results(
        self,
        model: str,
        version: str,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        segment: str = "",
        window_kind: WindowKind = "time",
        window_seconds: float | None = None,
        block_size: int | None = None,
        before: float | None = None,
    ) -> list[WindowRecord]:
        """A version's window results of one segment and kind, newest first; window
        starts in ``[since, until]``.

        Args:
            window_seconds: Time windows of this length only (None: every length).
            block_size: Count windows of this many predictions only (None: all).
            before: Window starts strictly before this only (the next page after a
                page whose oldest window started there).
        """
        w = _WINDOWS
        stmt = select(w).where(
            w.c.model == model,
            w.c.model_version == version,
            w.c.segment == segment,
            w.c.window_kind == window_kind,
        )
        if window_seconds is not None:
            # Window bounds are whole seconds well inside a float's exact integers.
            stmt = stmt.where(w.c.window_end - w.c.window_start == float(window_seconds))
        if block_size is not None:
            stmt = stmt.where(w.c.predictions == block_size)
        if since is not None:
            stmt = stmt.where(w.c.window_start >= since)
        if until is not None:
            stmt = stmt.where(w.c.window_start <= until)
        if before is not None:
            stmt = stmt.where(w.c.window_start < before)
        stmt = stmt.order_by(w.c.window_start.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_window_result(r) for r in rows]


def _label_join() -> Any:
    """A label joins a prediction of its own model (the model its writer was allowed
    to write) by event id or by correlation key; never another model's."""
    p, lab = _PREDICTIONS.c, _LABELS.c
    return (lab.model == p.model) & or_(
        lab.prediction_id == p.event_id,
        lab.correlation_key == p.correlation_key,
    )


def _merge_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # 16 MiB holds a batch's dirty pages (random event-id keys touch many); each pooled
    # connection has its own cache, so a larger one (64 MiB) grew the monitor's memory
    # for minutes under load as scoring scans filled one cache after another.
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    # Checkpoints run in the store's background thread, off the ingest path; this is
    # only the backstop should that thread fall behind (about 100 MB of WAL).
    cursor.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_IGNORED_WARNED: set[str] = set()
"""Models whose stored sensitive attributes that are no feature were logged once."""


def _describe(row: Any) -> ModelDescription:
    features = [FeatureSpec(**f) for f in row["features"]]
    declared = {f.name for f in features}
    sensitive = [a for a in row["sensitive_attributes"] if a in declared]
    if len(sensitive) < len(row["sensitive_attributes"]) and row["name"] not in _IGNORED_WARNED:
        # Registered before descriptions were checked for this: still load the model.
        _IGNORED_WARNED.add(row["name"])
        logger.warning(
            "model %r: sensitive attributes that are no feature are ignored: %s",
            row["name"],
            sorted(set(row["sensitive_attributes"]) - declared),
        )
    return ModelDescription(
        name=row["name"],
        task=row["task"],
        features=features,
        positive_class=row["positive_class"],
        sensitive_attributes=sensitive,
        description=row["description"],
        prediction_column=row["prediction_column"],
        score_column=row["score_column"],
        target_column=row["target_column"],
    )


def _window_result(row: Any) -> WindowRecord:
    return WindowRecord(
        model=row["model"],
        model_version=row["model_version"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        definition=row["definition"],
        predictions=row["predictions"],
        labelled=row["labelled"],
        accuracy=row["accuracy"],
        latency_p50_seconds=row["latency_p50_seconds"],
        latency_p95_seconds=row["latency_p95_seconds"],
        latency_p99_seconds=row["latency_p99_seconds"],
        reference_revision=row["reference_revision"],
        drift=row["drift"],
        drift_share=row["drift_share"],
        dataset_drifted=row["dataset_drifted"],
        scored_at=row["scored_at"],
        segment=row["segment"],
        window_kind=row["window_kind"],
        scores=row["scores"],
        block=None if row["block"] < 0 else row["block"],
    )

"""The store's connection: engine, dialect, migrations, the write lock, WAL checkpoints.

Stage: store (private). In: a database URL. Out: :class:`StoreBase`, which each table
family's class (``_models``, ``_events``, ``_profiles``, ``_windows``,
``_prediction_results``) extends and :class:`~monitor.store.store.Store` combines.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import ConfigError
from monitor.store._common import dumps, loads

logger = logging.getLogger("sidewatch.store")

_MIGRATIONS = Path(__file__).parent / "migrations"
_WAL_BACKSTOP_PAGES = 25_000
_SQLITE_CACHE_KIB = 16 * 1024
"""Each SQLite connection's page cache."""


class StoreBase:
    """The connection every table family works through: engine, dialect, write lock.

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
        kwargs: dict[str, Any] = {"json_serializer": dumps, "json_deserializer": loads}
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

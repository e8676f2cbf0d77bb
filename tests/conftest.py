"""Shared fixtures: stores on SQLite and PostgreSQL, a test app, a live monitor."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from collectors.contract import ModelDescription
from monitor.api import create_app
from monitor.settings import MonitorSettings
from monitor.store import Store

PG_ADMIN_URL = os.environ.get("SIDEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

ADMIN = "admin-token-0123456789"
INGEST_CREDIT = "ingest-credit-0123456789"


def credit_model(name: str = "credit") -> ModelDescription:
    """A small binary model with one feature of each type."""
    return ModelDescription.model_validate(
        {
            "name": name,
            "task": "binary",
            "positive_class": 1,
            "features": [
                {"name": "income", "type": "numeric"},
                {"name": "age", "type": "numeric"},
                {"name": "region", "type": "categorical"},
                {"name": "has_card", "type": "boolean"},
            ],
            "sensitive_attributes": ["age"],
        }
    )


def credit_event(i: int, **changes: Any) -> dict[str, Any]:
    """A valid prediction event for :func:`credit_model`."""
    event: dict[str, Any] = {
        "event_id": f"ev-{i}",
        "model": "credit",
        "model_version": "v1",
        "timestamp": 1_700_000_000 + i,
        "features": {"income": 1000.0 + i, "age": 30 + i % 40, "region": "north", "has_card": True},
        "outputs": {"predicted_class": i % 2, "score": 0.5},
        "latency_seconds": 0.01,
    }
    event.update(changes)
    return event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The local PostgreSQL server's admin URL; fails (not skips) when it is down."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL


def _new_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"sidewatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sidewatch.db'}"
        return
    admin_url = request.getfixturevalue("pg_server")
    name, url = _new_pg_database(admin_url)
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        _drop_pg_database(admin_url, name)


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A real, small file system (tmpfs) mounted at ``directory`` for a test; the tests
    run as root (CI does), which mounting needs."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                   check=True)  # fmt: skip
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB file system of its own, to fill up."""
    with tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


@pytest.fixture
def pg_database_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    name, url = _new_pg_database(pg_server)
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        _drop_pg_database(pg_server, name)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sidewatch.db'}"


def make_client(url: str, **settings: Any) -> TestClient:
    """A test client on a monitor app (enter it to run start-up)."""
    app = create_app(MonitorSettings(database_url=url, **settings))
    return TestClient(app)


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """An open (no token) monitor with the credit model registered, on each backend."""
    with make_client(database_url) as client:
        assert client.put("/v1/models/credit", json=credit_model().model_dump()).status_code == 201
        yield client


@pytest.fixture
def secured_api(sqlite_url: str) -> Iterator[TestClient]:
    """A monitor with an admin token and an ingest token bound to ``credit``."""
    with make_client(
        sqlite_url, admin_token=ADMIN, ingest_tokens={INGEST_CREDIT: ["credit"]}
    ) as client:
        for name in ("credit", "other"):
            response = client.put(
                f"/v1/models/{name}",
                json=credit_model(name).model_dump(),
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert response.status_code == 201, response.text
        yield client


class LiveMonitor:
    """A real monitor served by uvicorn in a thread, on a free port."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self.app = create_app(settings)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.settings.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the monitor did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(30)


@pytest.fixture
def live_monitor(sqlite_url: str) -> Iterator[LiveMonitor]:
    """A started monitor with the credit model registered."""
    monitor = LiveMonitor(MonitorSettings(database_url=sqlite_url, port=free_port()))
    monitor.start()
    store = monitor.app.state.store
    store.put_model(credit_model())
    yield monitor
    monitor.stop()

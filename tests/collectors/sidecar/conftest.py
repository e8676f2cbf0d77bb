"""Fixtures of the sidecar's tests: an echo upstream, a live monitor, a sidecar process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.contract import ModelDescription
from monitor.settings import MonitorSettings
from tests.collectors.sidecar.helpers import SidecarProcess, start_on_free_port, stop
from tests.conftest import LiveMonitor, free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[str]:
    """The echo app (echo_app.py) served by uvicorn; its base URL."""
    process, port = start_on_free_port(
        lambda port: [Path(sys.executable).parent / "uvicorn", "echo_app:app", "--app-dir", HERE,
                      "--port", str(port), "--log-level", "warning", "--limit-concurrency",
                      "100"],
        lambda port: f"http://127.0.0.1:{port}/", stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def echo_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMonitor]:
    """A live monitor with model ``m1`` (one numeric feature ``a``) registered."""
    work = tmp_path_factory.mktemp("monitor")
    monitor = LiveMonitor(MonitorSettings(database_url=f"sqlite:///{work}/m.db", port=free_port()))
    monitor.start()
    monitor.app.state.store.put_model(ModelDescription.model_validate({
        "name": "m1", "task": "binary", "positive_class": 1,
        "features": [{"name": "a", "type": "numeric"}]}))  # fmt: skip
    yield monitor
    monitor.stop()


@pytest.fixture
def echo_sidecar(
    echo_upstream: str, echo_monitor: LiveMonitor, tmp_path: Path
) -> Iterator[SidecarProcess]:
    """A sidecar in front of the echo upstream, capturing for model m1 version v1."""
    car = SidecarProcess(echo_upstream, echo_monitor.url, tmp_path / "spool",
                         args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
    yield car
    car.stop()

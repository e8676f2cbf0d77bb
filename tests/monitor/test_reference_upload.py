"""A large reference upload is streamed: the monitor's memory stays a small multiple
of the file's size."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import free_port

FEATURES = [f"f{i:02d}" for i in range(20)]
MiB = 1024 * 1024


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for process {pid}")


@pytest.fixture
def monitor_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A monitor in its own process (its peak memory is its own), on SQLite."""
    port = free_port()
    env = os.environ | {
        "SIDEWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'sidewatch.db'}",
        "SIDEWATCH_PORT": str(port),
        "SIDEWATCH_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "monitor did not start"
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def test_a_large_csv_costs_a_small_multiple_of_its_size(monitor_process, tmp_path) -> None:
    url, pid = monitor_process
    rng = np.random.default_rng(0)
    n = 100_000
    frame = pd.DataFrame({f: rng.normal(size=n) for f in FEATURES})
    frame["region"] = rng.choice(["north", "south", "east", "west"], n)
    frame["prediction"] = rng.integers(0, 2, n)
    frame["score"] = rng.random(n)
    path = tmp_path / "reference.csv"
    frame.to_csv(path, index=False)
    size = path.stat().st_size / MiB
    model = {
        "name": "big",
        "task": "binary",
        "positive_class": 1,
        "features": [{"name": f, "type": "numeric"} for f in FEATURES]
        + [{"name": "region", "type": "categorical"}],
    }

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while block := f.read(MiB):
                yield block

    with httpx.Client(base_url=url, timeout=300) as client:
        client.put("/v1/models/big", json=model).raise_for_status()
        before = _status_mib(pid, "VmRSS")
        response = client.put(
            "/v1/models/big/versions/1/reference",
            content=chunks(),
            headers={"Content-Type": "text/csv"},
        )
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == n
    grew = _status_mib(pid, "VmHWM") - before
    # Measured: 4.1x the file's size when the body was read whole, 2.8x streamed.
    assert grew < 3.3 * size, f"peak grew {grew:.0f} MiB for a {size:.0f} MiB file"

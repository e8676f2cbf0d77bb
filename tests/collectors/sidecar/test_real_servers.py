"""Real model servers behind the sidecar: Seldon MLServer (Open Inference Protocol v2,
mlserver-sklearn) and MLflow's scoring server, both installed from PyPI in their own
environment (``make servers``). Every response through the sidecar must be identical to
the direct one, and every prediction must reach the monitor with its features and
outputs.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.contract import ModelDescription
from monitor.settings import MonitorSettings
from tests.collectors.sidecar.helpers import (
    ROOT,
    SERVERS_BIN,
    SHIP_TIMEOUT,
    SidecarProcess,
    stop,
    wait_ready,
)
from tests.conftest import LiveMonitor, free_port

FEATURES = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness"]
ROWS = [
    [17.99, 10.38, 122.8, 1001.0, 0.1184],
    [13.54, 14.36, 87.46, 566.3, 0.09779],
    [9.504, 12.44, 60.34, 273.9, 0.1024],
    [20.57, 17.77, 132.9, 1326.0, 0.08474],
    [11.42, 20.38, 77.58, 386.1, 0.1425],
]


def post(url: str, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:  # fmt: skip
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type} | (headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (SERVERS_BIN / "mlserver").exists():
        pytest.fail("the model servers' environment is missing: run `make servers`")
    work = tmp_path_factory.mktemp("servers")
    http, grpc, metrics, mlflow_port = (free_port() for _ in range(4))
    subprocess.run([SERVERS_BIN / "python", ROOT / "tests/servers/train.py", work, str(http),
                    str(grpc), str(metrics)], check=True, capture_output=True)  # fmt: skip
    env = os.environ | {"PATH": f"{SERVERS_BIN}:{os.environ['PATH']}"}
    processes = [
        subprocess.Popen([SERVERS_BIN / "mlserver", "start", work / "mlserver"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([SERVERS_BIN / "mlflow", "models", "serve", "-m", work / "mlflow",
                          "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    monitor = LiveMonitor(MonitorSettings(database_url=f"sqlite:///{work}/m.db", port=free_port()))
    monitor.start()
    monitor.app.state.store.put_model(ModelDescription.model_validate({
        "name": "bc", "task": "binary", "positive_class": 1,
        "features": [{"name": f, "type": "numeric"} for f in FEATURES]}))  # fmt: skip
    names = {"SIDEWATCH_SIDECAR_FEATURE_NAMES": json.dumps(FEATURES)}
    sidecars = [
        SidecarProcess(f"http://127.0.0.1:{http}", monitor.url, work / "spool-oip", env=names),
        SidecarProcess(f"http://127.0.0.1:{mlflow_port}", monitor.url, work / "spool-mlflow",
                       env=names, args=["--model", "bc", "--version", "mlflow-1"]),
    ]  # fmt: skip
    try:
        for car in sidecars:
            car.start()
        wait_ready(f"http://127.0.0.1:{http}/v2/models/bc/ready", 240, processes[0])
        wait_ready(f"http://127.0.0.1:{mlflow_port}/ping", 240, processes[1])
        yield {"oip": f"http://127.0.0.1:{http}", "mlflow": f"http://127.0.0.1:{mlflow_port}",
               "oip_sidecar": sidecars[0], "mlflow_sidecar": sidecars[1],
               "db": work / "m.db"}  # fmt: skip
    finally:
        for car in sidecars:
            car.stop()
        for process in processes:
            stop(process)
        monitor.stop()


def stored(db: Path, version: str, expected: int, timeout: float = SHIP_TIMEOUT) -> dict[str, Any]:
    """correlation key → (features, outputs) once ``expected`` events are stored."""
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT correlation_key, features, outputs FROM predictions "
                                "WHERE model_version = ?", (version,)).fetchall()  # fmt: skip
        if len(rows) >= expected:
            break
        time.sleep(0.2)
    return {key: (json.loads(f), json.loads(o)) for key, f, o in rows}


def test_mlserver_responses_are_identical_and_every_row_is_stored(stack: dict[str, Any]) -> None:
    path = "/v2/models/bc/infer"
    requests = {
        "matrix": {"id": "oip-matrix", "inputs": [
            {"name": "predict", "shape": [3, 5], "datatype": "FP64", "data": ROWS[:3]}]},
        "flat-one-row": {"id": "oip-one", "inputs": [
            {"name": "predict", "shape": [1, 5], "datatype": "FP64", "data": ROWS[3]}]},
        "named-columns": {"id": "oip-named", "parameters": {"content_type": "pd"}, "inputs": [
            {"name": f, "shape": [2], "datatype": "FP64", "data": [ROWS[3][j], ROWS[4][j]]}
            for j, f in enumerate(FEATURES)]},
    }  # fmt: skip
    expected: dict[str, tuple[dict[str, float], int]] = {}
    for body in requests.values():
        raw = orjson.dumps(body)
        direct = post(stack["oip"] + path, raw)
        through = post(stack["oip_sidecar"].url + path, raw)
        assert through == direct
        assert direct[0] == 200
        answer = orjson.loads(direct[1])
        classes = answer["outputs"][0]["data"]
        if body["inputs"][0]["name"] == "predict":
            rows = [ROWS[:3], [ROWS[3]]][body["id"] == "oip-one"]
        else:
            rows = [ROWS[3], ROWS[4]]
        for i, (row, klass) in enumerate(zip(rows, classes, strict=True)):
            key = body["id"] if len(rows) == 1 else f"{body['id']}:{i}"
            expected[key] = (dict(zip(FEATURES, row, strict=True)), klass)
    got = stored(stack["db"], "v1", len(expected))
    assert {k: (f, o) for k, (f, o) in got.items()} == {
        k: (f, {"predicted_class": c}) for k, (f, c) in expected.items()
    }
    assert len(set(expected.values().__iter__().__next__()[0])) == 5
    assert stack["oip_sidecar"].metric("sidewatch_sidecar_requests_total",
                                       model="bc", code="2xx") == 3  # fmt: skip


def test_mlflow_responses_are_identical_and_every_row_is_stored(stack: dict[str, Any]) -> None:
    def records(rows: list[list[float]]) -> list[dict[str, float]]:
        return [dict(zip(FEATURES, r, strict=True)) for r in rows]

    csv = ",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS[:2]) + "\n"
    requests: dict[str, tuple[bytes, str, list[list[float]]]] = {
        "split": (orjson.dumps({"dataframe_split": {"columns": FEATURES, "data": ROWS[:3]}}),
                  "application/json", ROWS[:3]),
        "records": (orjson.dumps({"dataframe_records": records(ROWS[1:3])}),
                    "application/json", ROWS[1:3]),
        "instances": (orjson.dumps({"instances": ROWS[2:5]}), "application/json", ROWS[2:5]),
        "inputs": (orjson.dumps({"inputs": ROWS[:2]}), "application/json", ROWS[:2]),
        "csv": (csv.encode(), "text/csv", ROWS[:2]),
    }  # fmt: skip
    expected = {}
    for name, (body, content_type, rows) in requests.items():
        headers = {"X-Request-Id": f"mlf-{name}"}
        direct = post(stack["mlflow"] + "/invocations", body, content_type, headers)
        through = post(stack["mlflow_sidecar"].url + "/invocations", body, content_type, headers)
        assert through == direct, name
        assert direct[0] == 200, (name, direct)
        classes = orjson.loads(direct[1])["predictions"]
        for i, (row, klass) in enumerate(zip(rows, classes, strict=True)):
            key = f"mlf-{name}" if len(rows) == 1 else f"mlf-{name}:{i}"
            expected[key] = (dict(zip(FEATURES, row, strict=True)), {"predicted_class": klass})
    assert stored(stack["db"], "mlflow-1", len(expected)) == expected


def test_a_gzip_request_is_relayed_and_captured(stack: dict[str, Any]) -> None:
    body = gzip.compress(orjson.dumps({"dataframe_split": {"columns": FEATURES,
                                                           "data": ROWS[4:5]}}))  # fmt: skip
    headers = {"Content-Encoding": "gzip", "X-Request-Id": "mlf-gzip"}
    direct = post(stack["mlflow"] + "/invocations", body, headers=headers)
    through = post(stack["mlflow_sidecar"].url + "/invocations", body, headers=headers)
    assert through == direct
    if direct[0] == 200:  # MLflow inflates gzip bodies: the event must be stored
        klass = orjson.loads(direct[1])["predictions"][0]
        got = stored(stack["db"], "mlflow-1", 1)
        assert got.get("mlf-gzip") == (dict(zip(FEATURES, ROWS[4], strict=True)),
                                       {"predicted_class": klass})  # fmt: skip

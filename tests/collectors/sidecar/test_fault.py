"""Nothing the sidecar accepted is lost or stored twice, through kill -9 of both sides.

Requests flow through a real sidecar process to a real model server while the monitor
is killed with SIGKILL three times and the sidecar once. Every request the caller got
an answer for was captured: its prediction must be stored exactly once.
"""

from __future__ import annotations

import http.client
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson

from tests.collectors.sidecar.helpers import ROOT, SidecarProcess, stop, wait_ready
from tests.collectors.test_forward import start_monitor
from tests.conftest import free_port

N = 4_000
SIDECAR_KILL_AT = 800
MONITOR_KILLS_AT = (1_600, 2_400, 3_200)


def register(port: int) -> None:
    description = {
        "name": "bench",
        "task": "binary",
        "positive_class": 1,
        "features": [{"name": f"x_{j}", "type": "numeric"} for j in range(4)],
    }
    urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/bench",
            method="PUT",
            data=orjson.dumps(description),
            headers={"Content-Type": "application/json"},
        )
    ).close()


def test_no_loss_and_no_duplicates_through_kill_9_of_monitor_and_sidecar(tmp_path: Path) -> None:
    db, spool, monitor_port, model_port = tmp_path / "m.db", tmp_path / "spool", *(
        free_port() for _ in range(2))  # fmt: skip
    uvicorn = Path(sys.executable).parent / "uvicorn"
    model = subprocess.Popen([uvicorn, "fast_model:app", "--app-dir", ROOT / "bench", "--port",
                              str(model_port), "--log-level", "warning"],
                             stderr=subprocess.DEVNULL)  # fmt: skip
    monitor = start_monitor(db, monitor_port)
    register(monitor_port)
    car = SidecarProcess(f"http://127.0.0.1:{model_port}", f"http://127.0.0.1:{monitor_port}",
                         spool).start()  # fmt: skip
    wait_ready(f"http://127.0.0.1:{model_port}/", 60, model)
    restarts: list[threading.Thread] = []
    holder = {"monitor": monitor}

    def restart_monitor() -> None:
        time.sleep(1.0)  # traffic goes on while the monitor is down
        holder["monitor"] = start_monitor(db, monitor_port)

    conn = http.client.HTTPConnection("127.0.0.1", car.port, timeout=10)
    answered = reconnects = 0
    try:
        for i in range(N):
            if i == SIDECAR_KILL_AT:
                car.kill()
                car.start()  # same ports, same spool
            if i in MONITOR_KILLS_AT:
                for t in restarts:
                    t.join()
                holder["monitor"].send_signal(signal.SIGKILL)
                holder["monitor"].wait()
                restarts.append(threading.Thread(target=restart_monitor))
                restarts[-1].start()
            body = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                             "data": [i / N, 1.0, -0.5, 2.0]}]})  # fmt: skip
            while True:  # the caller retries a request the dead sidecar never answered
                try:
                    conn.request(
                        "POST",
                        "/v2/models/bench/infer",
                        body,
                        {"Content-Type": "application/json", "X-Request-Id": f"r-{i}"},
                    )
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
                    answered += 1
                    break
                except (OSError, http.client.HTTPException):
                    reconnects += 1
                    conn.close()
                    time.sleep(0.05)
                    conn = http.client.HTTPConnection("127.0.0.1", car.port, timeout=10)
        for t in restarts:
            t.join()
        deadline = time.monotonic() + 90
        rows: list[tuple[str]] = []
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as c:
                rows = c.execute("SELECT correlation_key FROM predictions").fetchall()
            if len(rows) >= N:
                break
            time.sleep(0.5)
        # Once the spool is empty every record was acknowledged and none can be sent
        # again: a duplicate would be stored by now.
        while car.metric("sidewatch_sidecar_spool_bytes") > 0:
            assert time.monotonic() < deadline, "the shipper never caught up"
            time.sleep(0.5)
        with sqlite3.connect(db) as c:
            rows = c.execute("SELECT correlation_key FROM predictions").fetchall()
        keys = [k for (k,) in rows]
        lost = len({f"r-{i}" for i in range(N)} - set(keys))
        duplicates = len(keys) - len(set(keys))
        failures = car.metric("sidewatch_sidecar_ship_failures_total")
        redelivered = car.metric("sidewatch_sidecar_redelivered_events_total")
        print(f"\nanswered={answered} lost={lost} duplicates_stored={duplicates} "
              f"ship_failures_retried={failures:.0f} redelivered_events={redelivered:.0f} "
              f"caller_reconnects={reconnects} monitor_kills={len(MONITOR_KILLS_AT)} "
              "sidecar_kills=1")  # fmt: skip
        assert answered == N
        assert lost == 0
        assert duplicates == 0
        assert failures > 0, "the monitor was down: deliveries must have been retried"
    finally:
        conn.close()
        car.stop()
        stop(holder["monitor"])
        stop(model)

"""Conservation of the whole path, in the spirit of Vector's: nothing answered is lost.

Callers send requests through a real sidecar to a real model server (Seldon MLServer),
and the same application records the same traffic through the SDK; the monitor runs
on PostgreSQL. While traffic flows, in turn: the model is not registered yet, the
monitor is killed with SIGKILL, the monitor is down for 60 s (meanwhile a backlog of
20-row requests builds up and a byte of the spool is corrupted), the spool's disk
(a small tmpfs the test mounts) fills up and is freed, the tokens are rotated without
telling the collectors and then fixed, and an event carries a U+0000. At the end every
request the model answered is stored exactly once, or held in quarantine with its
reason; the quarantined events replayed after the fix are stored.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import psycopg
import pytest

from collectors import Client, ClientSettings
from collectors.quarantine import Quarantine
from monitor.cli import main as sidewatch
from tests.collectors.sidecar.helpers import (
    ROOT,
    SERVERS_BIN,
    SidecarProcess,
    start_on_free_port,
    stop,
    wait_ready,
)
from tests.collectors.test_spool import fill
from tests.conftest import free_port

pytestmark = pytest.mark.postgres

FEATURES = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness"]
ADMIN = "admin-token-0123456789abcdef"
SIDECAR_TOKEN = "sidecar-token-0123456789abc"
SDK_TOKEN = "sdk-token-0123456789abcdefgh"
BACKLOG_REQUESTS, BACKLOG_ROWS = 600, 20
DOWN_SECONDS = 60.0


class Monitor:
    """``sidewatch serve`` on PostgreSQL, as a process that can be killed and restarted."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, tokens: dict[str, list[str]]) -> None:
        env = os.environ | {
            "SIDEWATCH_DATABASE_URL": self.database_url,
            "SIDEWATCH_PORT": str(self.port),
            "SIDEWATCH_ADMIN_TOKEN": ADMIN,
            "SIDEWATCH_INGEST_TOKENS": json.dumps(tokens),
            "SIDEWATCH_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "monitor.cli", "serve"]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_ready(f"{self.url}/readyz", 120, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def register(self) -> None:
        description = {"name": "bc", "task": "binary", "positive_class": 1,
                       "features": [{"name": f, "type": "numeric"} for f in FEATURES]}  # fmt: skip
        request = urllib.request.Request(
            f"{self.url}/v1/models/bc", method="PUT", data=orjson.dumps(description),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=30).close()


class Traffic(threading.Thread):
    """Callers: one request at a time through the sidecar, each also recorded by the SDK."""

    def __init__(self, sidecar_url: str, client: Client) -> None:
        super().__init__(daemon=True)
        self.url = sidecar_url.removeprefix("http://")
        self.client = client
        self.answered: list[str] = []
        """Correlation keys of every row the model answered through the sidecar."""
        self.recorded: list[str] = []
        """Correlation keys of every event the SDK accepted."""
        self.rows = 1
        self.done = threading.Event()
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        host, port = self.url.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = 0
        while not self.stopping.is_set():
            rows = self.rows
            data = [[10.0 + (i % 17) + r, 15.0, 90.0, 600.0 + r, 0.1] for r in range(rows)]
            body = orjson.dumps({"inputs": [{"name": "predict", "shape": [rows, 5],
                                             "datatype": "FP64", "data": data}]})  # fmt: skip
            key = f"r-{i}"
            conn.request("POST", "/v2/models/bc/infer", body,
                         {"Content-Type": "application/json", "X-Request-Id": key})  # fmt: skip
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            self.answered += [key] if rows == 1 else [f"{key}:{r}" for r in range(rows)]
            sdk_key = f"s-{i}"
            if self.client.record(dict(zip(FEATURES, data[0], strict=True)), predicted_class=1,
                                  correlation_key=sdk_key) is not None:  # fmt: skip
                self.recorded.append(sdk_key)
            self.sent += 1
            i += 1
            if rows == 1:
                time.sleep(0.03)
        conn.close()
        self.done.set()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stored_keys(database_url: str) -> list[str]:
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        return [k for (k,) in conn.execute("SELECT correlation_key FROM predictions")]


def test_every_answered_request_is_stored_once_or_quarantined(
    pg_database_url: str, tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (SERVERS_BIN / "mlserver").exists():
        pytest.fail("the model servers' environment is missing: run `make servers`")
    grpc, metrics = free_port(), free_port()

    def mlserver(port: int) -> list[str | Path]:
        train = [SERVERS_BIN / "python", ROOT / "tests/servers/train.py", tmp_path]
        subprocess.run([*train, str(port), str(grpc), str(metrics)], check=True,
                       capture_output=True)  # fmt: skip
        return [SERVERS_BIN / "mlserver", "start", tmp_path / "mlserver"]

    model, model_port = start_on_free_port(
        mlserver, lambda port: f"http://127.0.0.1:{port}/v2/models/bc/ready", timeout=240,
        env=os.environ | {"PATH": f"{SERVERS_BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tokens = {SIDECAR_TOKEN: ["bc"], SDK_TOKEN: ["bc"]}
    monitor = Monitor(pg_database_url)
    monitor.start(tokens)
    spool = small_disk / "spool"
    car = SidecarProcess(
        f"http://127.0.0.1:{model_port}", monitor.url, spool,
        env={"SIDEWATCH_TOKEN": SIDECAR_TOKEN, "SIDEWATCH_RETRY_MAX_SECONDS": "1",
             "SIDEWATCH_SIDECAR_FEATURE_NAMES": json.dumps(FEATURES)},
    ).start()  # fmt: skip
    client = Client(ClientSettings(
        monitor_url=monitor.url, token=SDK_TOKEN, model="bc", model_version="v1",
        quarantine_dir=tmp_path / "sdk-quarantine", retry_max_seconds=1.0,
        flush_interval_seconds=0.2,
    ))  # fmt: skip
    traffic = Traffic(car.url, client)
    log: list[str] = []
    try:
        traffic.start()
        # 1. The model is not registered yet: its events are quarantined, not dropped.
        wait_for(lambda: traffic.sent >= 40, 60, "traffic")
        time.sleep(2)
        monitor.register()
        log.append(f"registered after {traffic.sent} requests")
        # 2. kill -9 of the monitor, back 2 s later.
        monitor.kill()
        time.sleep(2)
        monitor.start(tokens)
        # 3. The monitor down for 60 s: a backlog of 20-row requests, a corrupt byte.
        monitor.stop()
        down = time.monotonic()
        backlog_from = traffic.sent
        traffic.rows = BACKLOG_ROWS
        wait_for(lambda: traffic.sent >= backlog_from + BACKLOG_REQUESTS, 120, "the backlog")
        traffic.rows = 1
        time.sleep(2)
        flipped = corrupt_a_recent_record(spool, traffic.answered[-30].split(":")[0])
        log.append(f"corrupted a byte near {flipped}")
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down)))
        monitor.start(tokens)
        # 4. The spool's disk fills up, then is freed.
        filler = fill(small_disk)
        time.sleep(3)
        filler.unlink()
        # 5. Tokens rotated without telling the collectors, then fixed.
        monitor.stop()
        monitor.start({"rotated-token-0123456789ab": ["bc"]})
        time.sleep(5)
        monitor.stop()
        monitor.start(tokens)
        # 6. A U+0000 in an event.
        nul = client.record(dict.fromkeys(FEATURES, 1.0), predicted_class=1,
                            segment={"channel": "we\x00b"}, correlation_key="s-nul")  # fmt: skip
        assert nul is not None
        time.sleep(2)
        traffic.stopping.set()
        assert traffic.done.wait(60)
        # Everything settles: the spool is empty, the SDK's queue too.
        assert client.flush(120)
        wait_for(lambda: car.metric("sidewatch_sidecar_spool_bytes") == 0
                 and car.metric("sidewatch_sidecar_spool_held_bytes") == 0,
                 180, "the spool")  # fmt: skip
        sidecar_quarantine = Quarantine(spool / "quarantine")
        sdk_quarantine = Quarantine(tmp_path / "sdk-quarantine")
        before = (sidecar_quarantine.summary(), sdk_quarantine.summary())
        # The cause (an unregistered model) was fixed: replay what waits for it.
        monkeypatch.setenv("SIDEWATCH_MONITOR_URL", monitor.url)
        for directory, token in ((spool / "quarantine", SIDECAR_TOKEN),
                                 (tmp_path / "sdk-quarantine", SDK_TOKEN)):  # fmt: skip
            monkeypatch.setenv("SIDEWATCH_TOKEN", token)
            assert sidewatch(["quarantine", "replay", "--dir", str(directory),
                              "--reason", "unknown_model"]) == 0  # fmt: skip
        after = (sidecar_quarantine.summary(), sdk_quarantine.summary())

        keys = stored_keys(pg_database_url)
        held = quarantined_keys(sidecar_quarantine) | quarantined_keys(sdk_quarantine)
        expected = traffic.answered + traffic.recorded + ["s-nul"]
        stored = set(keys)
        # A corrupt record is kept as bytes: its request's rows all have its request id.
        lost = [k for k in expected
                if k not in stored and k not in held and k.split(":")[0] not in held]  # fmt: skip
        duplicates = len(keys) - len(stored)
        metrics = car.metrics()
        dropped = {labels: v for (name, labels), v in metrics.items()
                   if name == "sidewatch_sidecar_capture_dropped_total" and v}  # fmt: skip
        print(f"\nlost={len(lost)} duplicates_stored={duplicates} answered_rows="
              f"{len(traffic.answered)} sdk_events={len(traffic.recorded) + 1} stored="
              f"{len(stored)} quarantined_before_replay={before} after_replay={after} "
              f"capture_dropped={dropped} {'; '.join(log)}")  # fmt: skip
        assert len(traffic.answered) >= BACKLOG_REQUESTS * BACKLOG_ROWS
        assert lost == []
        assert duplicates == 0
        assert dropped == {}, "no capture was shed"
        assert before[0].get("unknown_model", 0) > 0 and before[1].get("unknown_model", 0) > 0
        assert "unknown_model" not in after[0] and "unknown_model" not in after[1]
        assert after[1] == {"invalid": 1}, "the U+0000 event, with its reason"
        assert after[0].get("corrupt", 0) >= 1, "the corrupt record's bytes are kept"
        assert set(after[0]) <= {"corrupt"}
        assert car.metric("sidewatch_sidecar_ship_failures_total") > 0
        # What the shipper's reader skipped and kept shows on the sidecar's /metrics.
        assert car.metric("sidewatch_sidecar_spool_corrupt_records_total") >= 1
        assert car.metric("sidewatch_sidecar_quarantined_events_total", reason="corrupt") >= 1
        assert car.metric("sidewatch_sidecar_quarantined_events_total",
                          reason="unknown_model") == before[0]["unknown_model"]  # fmt: skip
    finally:
        traffic.stopping.set()
        client.close(timeout=1)
        car.stop()
        monitor.stop()
        stop(model)


def corrupt_a_recent_record(spool: Path, key: str) -> str:
    """Flip one byte of the spooled record holding ``key`` (away from the key itself)."""
    for segment in sorted(spool.glob("*.seg"), reverse=True):
        data = segment.read_bytes()
        at = data.find(f"X-Request-Id: {key}\r\n".encode())
        if at != -1:
            with open(segment, "r+b") as f:
                f.seek(at - 40)
                byte = f.read(1)
                f.seek(at - 40)
                f.write(bytes([byte[0] ^ 0xFF]))
            return key
    raise AssertionError(f"{key} is not in the spool")


def quarantined_keys(quarantine: Quarantine) -> set[str]:
    """Correlation keys of the quarantined events, and those in unreadable records."""
    keys: set[str] = set()
    for record in quarantine.read():
        if record.event is not None:
            keys.add(orjson.loads(record.event).get("correlation_key"))
        elif record.raw:
            text = record.raw.decode("latin-1")
            for line in text.split("\r\n"):
                if line.lower().startswith("x-request-id: "):
                    keys.add(line.split(": ", 1)[1])
    return keys

"""End to end with real processes: the monitor scores drift, a real Prometheus scrapes
it and evaluates Sidewatch's alert rules, a real Alertmanager routes the alert to a
webhook receiver here; drift makes the alert fire, its removal resolves it.

The rules are the repository's own, with their durations shortened (30 minutes of
windows become 6 seconds) so the test runs in under a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from monitor.settings import MonitorSettings
from tests.conftest import LiveMonitor, credit_model, free_port
from tests.monitor.test_scoring import reference_frame

ALERTS = Path(__file__).resolve().parent.parent / "alerts"


class Receiver(ThreadingHTTPServer):
    """Collects the webhook notifications Alertmanager sends."""

    def __init__(self, port: int) -> None:
        self.notifications: list[dict] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def shortened_rules() -> str:
    text = (ALERTS / "alerting_rules.yml").read_text()
    text = text.replace("[30m]", "[6s]").replace("for: 10m", "for: 2s")
    return text


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[LiveMonitor, Receiver]]:
    for tool in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make test` installs Debian's packages")
    monitor = LiveMonitor(
        MonitorSettings(
            database_url=f"sqlite:///{tmp_path / 'm.db'}",
            port=free_port(),
            window_seconds=2,
            score_interval_seconds=0.5,
            min_window_events=20,
        )
    )
    monitor.start()
    receiver = Receiver(free_port())
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

    am_port, prom_port, acc_port = free_port(), free_port(), free_port()
    am = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    am["route"] |= {"group_wait": "1s", "group_interval": "1s"}
    for r in am["receivers"]:
        for hook in r["webhook_configs"]:
            hook["url"] = re.sub(
                r"127\.0\.0\.1:\d+", f"127.0.0.1:{receiver.server_port}", hook["url"]
            )
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    (tmp_path / "rules.yml").write_text(shortened_rules())
    recording = (ALERTS / "recording_rules.yml").read_text().replace("interval: 1m", "interval: 1s")
    (tmp_path / "recording.yml").write_text(recording)
    # The stack's own Prometheus configuration, pointed at this test's ports and
    # evaluating every second.
    prometheus = yaml.safe_load((ALERTS.parent / "deploy" / "prometheus.yml").read_text())
    prometheus["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    prometheus["rule_files"] = [str(tmp_path / "rules.yml"), str(tmp_path / "recording.yml")]
    prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{am_port}"
    ]
    local = {"sidewatch-monitor": monitor.settings.port, "sidewatch-accelerators": acc_port}
    # No sidecar runs in this test: its job is left out rather than scraped and down.
    prometheus["scrape_configs"] = [
        j for j in prometheus["scrape_configs"] if j["job_name"] in local
    ]
    for job in prometheus["scrape_configs"]:
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{local[job['job_name']]}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
    processes = [
        subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        # The accelerator collector, simulating two H100s: there is no GPU here.
        subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "accelerators", "--port", str(acc_port)],
            env=os.environ
            | {
                "SIDEWATCH_ACCELERATOR_FAKE_GPUS": "2",
                "SIDEWATCH_ACCELERATOR_MODEL": "credit",
                "SIDEWATCH_ACCELERATOR_PRICE_PER_HOUR": "2.5",
                "SIDEWATCH_ACCELERATOR_POLL_INTERVAL_SECONDS": "0.5",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        wait_http(f"http://127.0.0.1:{acc_port}/metrics")
        receiver.prometheus = f"http://127.0.0.1:{prom_port}"  # type: ignore[attr-defined]
        yield monitor, receiver
    finally:
        for p in processes:
            p.terminate()
            p.wait(30)
        receiver.shutdown()
        receiver.server_close()
        monitor.stop()


class Traffic:
    """Posts credit-model events (and their labels) to the monitor at a steady pace."""

    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor
        self.rng = np.random.default_rng(4)
        self.sent = 0
        monitor.app.state.store.put_model(credit_model())
        reference = reference_frame(self.rng, 3000)
        self._post(
            "/v1/models/credit/versions/v1/reference",
            reference.to_csv(index=False).encode(),
            "text/csv",
            "PUT",
        )

    def _post(
        self, path: str, body: bytes, content_type: str = "application/json", method: str = "POST"
    ) -> None:
        request = urllib.request.Request(
            f"{self.monitor.url}{path}",
            data=body,
            method=method,
            headers={"Content-Type": content_type},
        )
        urllib.request.urlopen(request).close()

    def send(self, drifted: bool, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = reference_frame(self.rng, 40)
            if drifted:
                frame["income"] = frame["income"] * 3
            events = [
                {
                    "event_id": f"e{self.sent + i}",
                    "model": "credit",
                    "model_version": "v1",
                    "timestamp": time.time(),
                    "outputs": {"predicted_class": int(r.target)},
                    "latency_seconds": 0.002 + 0.001 * (i % 5),
                    "features": {
                        "income": r.income,
                        "age": r.age,
                        "region": r.region,
                        "has_card": bool(r.has_card),
                    },
                }
                for i, r in enumerate(frame.itertuples())
            ]
            labels = [
                {
                    "event_id": f"l{e['event_id']}",
                    "model": "credit",
                    "prediction_id": e["event_id"],
                    "value": int(i % 3 > 0),
                    "timestamp": time.time(),
                }
                for i, e in enumerate(events)
            ]
            self.sent += len(events)
            self._post("/v1/ingest/predictions", orjson.dumps({"events": events}))
            self._post("/v1/ingest/labels", orjson.dumps({"labels": labels}))
            time.sleep(0.25)


def test_drift_fires_the_alert_and_its_removal_resolves_it(stack) -> None:
    monitor, receiver = stack
    traffic = Traffic(monitor)

    def alerts(status: str) -> list[dict]:
        return [
            a
            for n in receiver.notifications
            for a in n["alerts"]
            if a["labels"]["alertname"] == "SidewatchFeatureDriftHigh" and a["status"] == status
        ]

    traffic.send(drifted=False, seconds=8)
    assert alerts("firing") == [], "no drift, no alert"
    deadline = time.monotonic() + 40
    while not alerts("firing") and time.monotonic() < deadline:
        traffic.send(drifted=True, seconds=1)
    firing = alerts("firing")
    assert firing, receiver.notifications
    alert = firing[0]
    assert (alert["labels"]["feature"], alert["labels"]["model"]) == ("income", "credit")
    assert alert["labels"]["severity"] == "warning"
    assert "income" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("SidewatchFeatureDriftHigh.md")
    paths = {n["path"] for n in receiver.notifications if alert in n["alerts"]}
    assert paths == {"/tickets"}, "a warning opens a ticket, it does not page"
    assert {a["labels"]["feature"] for a in firing} == {"income"}, "only the drifted feature"
    deadline = time.monotonic() + 40
    while not alerts("resolved") and time.monotonic() < deadline:
        traffic.send(drifted=False, seconds=1)
    assert alerts("resolved"), receiver.notifications


def test_every_dashboard_query_returns_data(stack) -> None:
    monitor, receiver = stack
    traffic = Traffic(monitor)
    traffic.send(drifted=False, seconds=10)

    def query(expr: str) -> list[dict]:
        url = f"{receiver.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    exprs = []
    for path in sorted((ALERTS.parent / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        exprs += [(path.name, p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
    substitutions = {"$model_version": ".*", "$model": ".*", "$__rate_interval": "30s"}
    empty = []
    deadline = time.monotonic() + 40
    while True:
        empty = []
        for board, title, expr in exprs:
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            if not query(expr):
                empty.append((board, title, expr))
        if not empty or time.monotonic() > deadline:
            break
        traffic.send(drifted=False, seconds=2)
    assert empty == [], empty

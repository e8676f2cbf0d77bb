"""End to end with real processes: the monitor scores drift, a real Prometheus scrapes
it and evaluates Sidewatch's alert rules, a real Alertmanager routes the alert to a
webhook receiver here; drift makes the alert fire, its removal resolves it.

The rules are the repository's own, with their durations shortened (30 minutes of
windows become 6 seconds) so the test runs in under a minute.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
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

    am_port, prom_port = free_port(), free_port()
    am = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    am["route"] |= {"group_wait": "1s", "group_interval": "1s"}
    for r in am["receivers"]:
        for hook in r["webhook_configs"]:
            hook["url"] = re.sub(
                r"127\.0\.0\.1:\d+", f"127.0.0.1:{receiver.server_port}", hook["url"]
            )
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    (tmp_path / "rules.yml").write_text(shortened_rules())
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "sidewatch-monitor",
                        "static_configs": [{"targets": [f"127.0.0.1:{monitor.settings.port}"]}],
                    }
                ],
            }
        )
    )
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
        yield monitor, receiver
    finally:
        for p in processes:
            p.terminate()
            p.wait(30)
        receiver.shutdown()
        receiver.server_close()
        monitor.stop()


def test_drift_fires_the_alert_and_its_removal_resolves_it(stack) -> None:
    monitor, receiver = stack
    store = monitor.app.state.store
    store.put_model(credit_model())
    rng = np.random.default_rng(4)
    reference = reference_frame(rng, 3000)
    request = urllib.request.Request(
        f"{monitor.url}/v1/models/credit/versions/v1/reference",
        method="PUT",
        data=reference.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    urllib.request.urlopen(request).close()
    sent = 0

    def send(drifted: bool, seconds: float) -> None:
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = reference_frame(rng, 40)
            if drifted:
                frame["income"] = frame["income"] * 3
            events = [
                {
                    "event_id": f"e{sent + i}",
                    "model": "credit",
                    "model_version": "v1",
                    "timestamp": time.time(),
                    "outputs": {"predicted_class": 1},
                    "features": {
                        "income": r.income,
                        "age": r.age,
                        "region": r.region,
                        "has_card": bool(r.has_card),
                    },
                }
                for i, r in enumerate(frame.itertuples())
            ]
            sent += len(events)
            body = orjson.dumps({"events": events})
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{monitor.url}/v1/ingest/predictions",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
            ).close()
            time.sleep(0.25)

    def alerts(status: str) -> list[dict]:
        return [
            a
            for n in receiver.notifications
            for a in n["alerts"]
            if a["labels"]["alertname"] == "SidewatchFeatureDriftHigh" and a["status"] == status
        ]

    send(drifted=False, seconds=8)
    assert alerts("firing") == [], "no drift, no alert"
    deadline = time.monotonic() + 40
    while not alerts("firing") and time.monotonic() < deadline:
        send(drifted=True, seconds=1)
    firing = alerts("firing")
    assert firing, receiver.notifications
    alert = firing[0]
    assert (alert["labels"]["feature"], alert["labels"]["model"]) == ("income", "credit")
    assert alert["labels"]["severity"] == "warning"
    assert "income" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("SidewatchFeatureDriftHigh.md")
    assert {
        n["path"] for n in receiver.notifications if n["alerts"] == [alert] or alert in n["alerts"]
    } == {"/tickets"}
    assert {a["labels"]["feature"] for a in firing} == {"income"}, "only the drifted feature"
    deadline = time.monotonic() + 40
    while not alerts("resolved") and time.monotonic() < deadline:
        send(drifted=False, seconds=1)
    assert alerts("resolved"), receiver.notifications

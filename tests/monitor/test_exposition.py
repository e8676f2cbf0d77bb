"""The /metrics exposition stays valid whatever values events carry."""

from __future__ import annotations

import io
import subprocess
import unicodedata

import numpy as np
import orjson
from fastapi.testclient import TestClient
from prometheus_client.parser import text_fd_to_metric_families

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, reference_frame

HOSTILE = ["web\rmobile", "tab\tx", "esc\x1b[31m", "nel\x85x", "line\u2028sep", "lf\nx"]
"""Segment values with a control character or a Unicode line separator (U+0000 is
refused by the event contract: tests/monitor/test_api_ingest.py)."""


def _hostile_exposition(sqlite_url: str) -> str:
    """/metrics after a closed window whose events carry the hostile segment values."""
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W, segment_keys=["channel"])
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        frame = reference_frame(np.random.default_rng(3), 60 * len(HOSTILE))
        client.put(
            "/v1/models/credit/versions/v1/reference",
            content=frame.to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
        events = [
            {
                "event_id": f"e-{i}",
                "model": "credit",
                "model_version": "v1",
                "timestamp": T0 + i * (W - 1) / len(frame),
                "features": {
                    "income": row.income,
                    "age": row.age,
                    "region": row.region,
                    "has_card": bool(row.has_card),
                },
                "outputs": {"predicted_class": i % 2},
                "segment": {"channel": HOSTILE[i % len(HOSTILE)]},
            }
            for i, row in enumerate(frame.itertuples(index=False))
        ]
        response = client.post("/v1/ingest/predictions", content=orjson.dumps({"events": events}))
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == []
        clock.now = T0 + W
        client.app.state.loop.run_once()
        return client.get("/metrics").text


def test_label_values_hold_no_control_characters(sqlite_url, tmp_path) -> None:
    text = _hostile_exposition(sqlite_url)
    # A line-oriented reader (universal newlines, as Python's open() reads a file)
    # must see every sample the exposition holds, each value without control characters.
    families = list(text_fd_to_metric_families(io.StringIO(text, newline=None)))
    segments = {
        s.labels["segment"]
        for f in families
        for s in f.samples
        if s.name == "sidewatch_segment_predictions"
    }
    assert len(segments) == len(HOSTILE), segments
    for family in families:
        for sample in family.samples:
            for value in sample.labels.values():
                assert not any(unicodedata.category(c) == "Cc" for c in value), sample
                assert "\u2028" not in value and "\u2029" not in value, sample
    # Shown as visible escapes, so distinct values stay distinct series.
    assert {"channel=web\\rmobile", "channel=esc\\x1b[31m", "channel=line\\u2028sep"} <= segments
    path = tmp_path / "metrics.prom"
    path.write_text(text)
    with path.open("rb") as f:
        check = subprocess.run(["promtool", "check", "metrics"], stdin=f, capture_output=True)
    assert check.returncode == 0, check.stderr

"""After a restart, /metrics shows the stored results of models without new traffic."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, reference_frame, samples


def _post(client: TestClient, frame, start: float) -> None:
    events = [
        {
            "event_id": f"e{start}-{i}",
            "model": "credit",
            "model_version": "v1",
            "timestamp": start + i * (W - 1) / len(frame),
            "features": {
                "income": row.income,
                "age": row.age,
                "region": row.region,
                "has_card": bool(row.has_card),
            },
            "outputs": {"predicted_class": i % 2},
            "segment": {"channel": "web" if i % 3 else "store"},
        }
        for i, row in enumerate(frame.itertuples(index=False))
    ]
    response = client.post("/v1/ingest/predictions", json={"events": events})
    assert response.status_code == 200, response.text


FAMILIES = (
    "sidewatch_feature_drift_score",
    "sidewatch_window_predictions",
    "sidewatch_window_drifted_features_ratio",
    "sidewatch_segment_predictions",
    "sidewatch_segment_series_cut",
)


def test_drift_series_come_back_after_a_restart(sqlite_url) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(
        database_url=sqlite_url, window_seconds=W, segment_keys=["channel"], max_segment_values=1
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        rng = np.random.default_rng(11)
        client.put(
            "/v1/models/credit/versions/v1/reference",
            content=reference_frame(rng, 2000).to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
        _post(client, reference_frame(rng, 300), T0)
        _post(client, reference_frame(rng, 200), T0 + W)
        clock.now = T0 + 2 * W
        client.app.state.loop.run_once()
        before = {name: samples(client, name) for name in FAMILIES}
    assert all(before.values()), before
    assert before["sidewatch_window_predictions"] == {
        (("model", "credit"), ("model_version", "v1")): 200.0
    }

    # Hours later, no traffic since: the same database, a new process.
    later = Clock(T0 + 5 * 3600)
    with TestClient(create_app(settings, clock=later)) as client:
        after = {name: samples(client, name) for name in FAMILIES}
    assert after == before

"""A window whose feature drift is not scored says why."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, post_events, reference_frame


def _reasons(window: dict) -> list[str]:
    return [n["reason"] for n in window["not_scored"] if n["part"] == "feature_drift"]


def test_small_windows_say_why_their_feature_drift_is_empty(sqlite_url) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W, min_window_events=30)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        loop = client.app.state.loop
        rng = np.random.default_rng(8)
        post_events(client, reference_frame(rng, 40), T0 - W, np.zeros(40))
        loop.run_once()  # before any reference
        reference = reference_frame(rng, 2000)
        upload = client.put(
            "/v1/models/credit/versions/v1/reference",
            content=reference.to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert upload.status_code == 201, upload.text
        post_events(client, reference_frame(rng, 10), T0, np.zeros(10))
        partly = reference_frame(rng, 40)
        partly.loc[:19, "income"] = np.nan  # 20 of 40 values missing
        post_events(client, partly, T0 + W, np.zeros(40))
        clock.now = T0 + 2 * W
        loop.run_once()
        windows = {
            w["window_start"]: w for w in client.get("/v1/models/credit/versions/v1/windows").json()
        }
    assert windows[T0 - W]["drift"] == []
    assert _reasons(windows[T0 - W]) == ["no reference was uploaded for this version"]
    assert windows[T0]["drift"] == []
    assert _reasons(windows[T0]) == [
        "the window has 10 predictions, fewer than SIDEWATCH_MIN_WINDOW_EVENTS=30"
    ]
    assert {d["feature"] for d in windows[T0 + W]["drift"]} == {"age", "region", "has_card"}
    assert _reasons(windows[T0 + W]) == [
        "income: the window has 20 non-missing values, fewer than SIDEWATCH_MIN_WINDOW_EVENTS=30"
    ]

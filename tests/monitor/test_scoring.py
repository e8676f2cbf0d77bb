"""From stored events to exported results: windows, PSI, late labels, /metrics."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score

from monitor.api import create_app
from monitor.core.latency import RELATIVE_ERROR
from monitor.core.profile import ReferenceProfile, coarse_edges
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_psi import oracle_psi

W = 60
T0 = 1_700_000_040  # a window start: a multiple of W


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(client: TestClient, name: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def reference_frame(rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "has_card": rng.random(n) < 0.4,
            "target": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def scored(sqlite_url):
    clock = Clock(T0 + 10)
    settings = MonitorSettings(
        database_url=sqlite_url,
        window_seconds=W,
        min_window_events=30,
        max_feature_labels=100,
        drift_test="psi",
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        yield client, clock


def post_events(client, frame: pd.DataFrame, start: float, predicted) -> list[str]:
    events = []
    for i, row in enumerate(frame.itertuples(index=False)):
        events.append(
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
                "outputs": {"predicted_class": int(predicted[i])},
                "latency_seconds": 0.001 * (1 + i % 10),
            }
        )
    response = client.post("/v1/ingest/predictions", content=orjson.dumps({"events": events}))
    assert response.status_code == 200, response.text
    return [e["event_id"] for e in events]


def test_psi_per_feature_is_exported_for_the_closed_window(scored) -> None:
    client, clock = scored
    rng = np.random.default_rng(11)
    reference = reference_frame(rng)
    upload = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=reference.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["features_profiled"] == ["age", "has_card", "income", "region"]

    current = reference_frame(rng, 500)
    current["income"] = current["income"] * 1.8  # drift in income only
    predicted = rng.integers(0, 2, 500)
    post_events(client, current, T0, predicted)

    loop = client.app.state.loop
    loop.run_once()
    assert samples(client, "sidewatch_feature_drift_score") == {}, "window still open"

    clock.now = T0 + W + 1
    loop.run_once()
    scores = samples(client, "sidewatch_feature_drift_score")
    by_feature = {dict(k)["feature"]: v for k, v in scores.items()}
    stored = client.app.state.store.latest_reference("credit", "v1").profile
    profile = ReferenceProfile.from_json(stored)
    for feature in ("income", "age"):
        ref = profile.features[feature]
        edges = coarse_edges(ref.bins, ref.profile.histogram, 10).tolist()
        expected = oracle_psi(reference[feature].to_numpy(), current[feature].to_numpy(), edges)
        assert by_feature[feature] == pytest.approx(expected, rel=1e-9)
    assert by_feature["income"] > 0.5
    assert by_feature["age"] < 0.1 and by_feature["region"] < 0.1 and by_feature["has_card"] < 0.1
    drifted = {
        dict(k)["feature"]: v for k, v in samples(client, "sidewatch_feature_drifted").items()
    }
    assert drifted == {"income": 1.0, "age": 0.0, "region": 0.0, "has_card": 0.0}
    mv = (("model", "credit"), ("model_version", "v1"))
    assert samples(client, "sidewatch_window_predictions") == {mv: 500.0}
    assert samples(client, "sidewatch_window_start_timestamp_seconds") == {mv: float(T0)}

    windows = client.get("/v1/models/credit/versions/v1/windows").json()
    assert len(windows) == 1 and windows[0]["predictions"] == 500
    latencies = 0.001 * (1 + np.arange(500) % 10)
    exact = np.quantile(latencies, 0.95)  # within the histogram's documented precision
    assert abs(windows[0]["latency_p95_seconds"] - exact) <= RELATIVE_ERROR * exact + 1e-6


def test_late_labels_rescore_their_window(scored) -> None:
    client, clock = scored
    rng = np.random.default_rng(5)
    frame = reference_frame(rng, 200)
    predicted = rng.integers(0, 2, 200)
    ids = post_events(client, frame, T0, predicted)
    clock.now = T0 + W + 1
    loop = client.app.state.loop
    loop.run_once()
    mv = (("model", "credit"), ("model_version", "v1"))
    assert samples(client, "sidewatch_window_label_coverage_ratio") == {mv: 0.0}

    truth = rng.integers(0, 2, 200)
    labelled = range(0, 200, 2)  # half the predictions get a label, much later
    labels = [
        {
            "event_id": f"lab-{i}",
            "model": "credit",
            "prediction_id": ids[i],
            "value": int(truth[i]),
            "timestamp": T0 + 3600,
        }
        for i in labelled
    ]
    clock.now = T0 + 3600
    assert (
        client.post("/v1/ingest/labels", content=orjson.dumps({"labels": labels})).status_code
        == 200
    )
    loop.run_once()
    assert samples(client, "sidewatch_window_label_coverage_ratio") == {mv: 0.5}
    expected = accuracy_score(truth[list(labelled)], predicted[list(labelled)])
    assert samples(client, "sidewatch_window_accuracy_ratio")[mv] == pytest.approx(expected)


def test_feature_series_are_capped_and_the_cut_is_counted(sqlite_url) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W, max_feature_labels=2)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        rng = np.random.default_rng(2)
        frame = reference_frame(rng, 300)
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        response = client.put(
            "/v1/models/credit/versions/v1/reference?format=parquet", content=buffer.getvalue()
        )
        assert response.status_code == 201, response.text
        current = reference_frame(rng, 300)
        current["age"] = current["age"] + 30
        post_events(client, current, T0, np.zeros(300))
        clock.now = T0 + W
        client.app.state.loop.run_once()
        features = {dict(k)["feature"] for k in samples(client, "sidewatch_feature_drift_score")}
        assert len(features) == 2 and "age" in features, "the most drifted features are kept"
        mv = (("model", "credit"), ("model_version", "v1"))
        assert samples(client, "sidewatch_feature_series_cut") == {mv: 2.0}


def test_reference_that_misses_a_feature_is_refused(scored) -> None:
    client, _ = scored
    frame = reference_frame(np.random.default_rng(0), 50).drop(columns=["age"])
    frame["income"] = "text"
    response = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=frame.to_json(orient="records").encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    problems = {p["loc"]: p["msg"] for p in response.json()["problems"]}
    assert problems == {
        "columns.age": "expected a column for this feature",
        "columns.income": "expected numbers (a numeric feature)",
    }
    response = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=b"a,b\n1,2",
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 422 and "Content-Type" in response.text
    response = client.put(
        "/v1/models/credit/versions/v1/reference?format=parquet", content=b"not parquet at all"
    )
    assert response.status_code == 422 and "parquet" in response.json()["detail"]

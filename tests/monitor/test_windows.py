"""Windows beyond the base one: rollups merged from base profiles, count blocks in ingest
order, segments, and reading them back (API, /metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sklearn.metrics import accuracy_score
from sqlalchemy import text

from monitor.api import create_app
from monitor.core.latency import RELATIVE_ERROR
from monitor.core.profile import ReferenceProfile, profile_rows
from monitor.core.windows import Window, parse_split
from monitor.score.results import FeatureDrift, WindowResult
from monitor.score.scorer import WindowScorer
from monitor.settings import MonitorSettings
from monitor.store import Store
from tests.conftest import credit_model
from tests.monitor.test_scoring import Clock, reference_frame, samples

W = 60
R = 300
T0 = 1_700_000_100  # a multiple of R (and of W)
KINDS: dict[str, Any] = {f.name: f.type for f in credit_model().features}


def events(
    frame: pd.DataFrame,
    times: np.ndarray,
    prefix: str,
    *,
    predicted: np.ndarray | None = None,
    segment: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(frame.itertuples(index=False)):
        out.append(
            {
                "event_id": f"{prefix}{i:04d}",
                "model": "credit",
                "model_version": "v1",
                "timestamp": float(times[i]),
                "features": {
                    "income": row.income,
                    "age": row.age,
                    "region": row.region,
                    "has_card": bool(row.has_card),
                },
                "outputs": {"predicted_class": int(0 if predicted is None else predicted[i])},
                "latency_seconds": 0.001 * (1 + i % 17),
                "segment": segment or {},
            }
        )
    return out


def post(client: TestClient, batch: list[dict[str, Any]]) -> None:
    response = client.post("/v1/ingest/predictions", content=orjson.dumps({"events": batch}))
    assert response.status_code == 200, response.text


def label(client: TestClient, pairs: list[tuple[str, int]]) -> None:
    labels = [
        {"event_id": f"lab-{eid}", "model": "credit", "prediction_id": eid, "value": value}
        | {"timestamp": T0 + 86_400}
        for eid, value in pairs
    ]
    response = client.post("/v1/ingest/labels", content=orjson.dumps({"labels": labels}))
    assert response.status_code == 200, response.text


def upload(client: TestClient, frame: pd.DataFrame) -> None:
    response = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=frame.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def app_on(database_url: str) -> Iterator[Any]:
    """Builds a started monitor on each backend with the given settings and a clock."""
    clients: list[TestClient] = []

    def build(clock: Clock, **options: Any) -> TestClient:
        settings = MonitorSettings(
            database_url=database_url, window_seconds=W, min_window_events=10, **options
        )
        client = TestClient(create_app(settings, clock=clock))
        client.__enter__()
        clients.append(client)
        if client.put("/v1/models/credit", json=credit_model().model_dump()).status_code > 201:
            raise AssertionError("registration failed")
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def from_rows(store: Store, window: Window) -> dict[str, FeatureDrift]:
    """The oracle: the window's drift from profiles built on its raw rows, in one go
    (and from its raw values where those profiles cannot settle a test)."""
    stored = store.latest_reference("credit", "v1")
    reference = ReferenceProfile.from_json(stored.profile)
    rows = [features for features, _, _ in store.predictions_in_window(window)]
    bins = {name: f.bins for name, f in reference.features.items()}
    profiles = profile_rows(rows, KINDS, bins)
    scorer = WindowScorer(store, window_seconds=W, min_window_events=10)
    raw = scorer.feature_values(window, stored.revision)
    return {d.feature: d for d in scorer.drift(reference, profiles, raw)}


def assert_same_drift(result: WindowResult, expected: dict[str, FeatureDrift]) -> None:
    got = {d.feature: d for d in result.drift}
    assert got.keys() == expected.keys() == set(KINDS)
    for name, e in expected.items():
        g = got[name]
        assert (g.test, g.drifted, g.current_count) == (e.test, e.drifted, e.current_count), name
        assert g.value == pytest.approx(e.value, rel=1e-9, abs=1e-300), name
        assert g.statistic == pytest.approx(e.statistic, rel=1e-9), name


# -- rollups ---------------------------------------------------------------------------


@pytest.mark.parametrize("reference_rows", [800, 3000])  # p-value tests; distances
def test_a_rollup_is_the_exact_merge_of_its_base_windows(app_on, reference_rows) -> None:
    clock = Clock(T0 + 10)
    client = app_on(clock, rollup_seconds=[R])
    store: Store = client.app.state.store
    rng = np.random.default_rng(reference_rows)
    upload(client, reference_frame(rng, reference_rows))
    # Five base windows, posted out of order, each in two batches (ingest merges them);
    # the fourth drifts.
    for k in (3, 0, 4, 1, 2):
        frame = reference_frame(rng, 80)
        if k == 3:
            frame["income"] = frame["income"] * 1.6
        times = T0 + k * W + rng.uniform(0, W, 80)
        batch = events(frame, times, f"w{k}-")
        post(client, batch[:50])
        post(client, batch[50:])
    loop = client.app.state.loop
    clock.now = T0 + R - 1
    assert all(r.window_end - r.window_start == W for r in loop.run_once()), "rollup still open"
    assert store.window_results("credit", "v1", window_seconds=R) == []

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("a rollup's drift must come from stored profiles, not rows")

    clock.now = T0 + R
    whole = Window.of_time("credit", "v1", T0, R)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "rebuild_window_profiles", boom)
        patch.setattr(store, "profile_window", boom)
        loop.run_once()
    (rollup,) = [
        WindowResult.from_record(r) for r in store.window_results("credit", "v1", window_seconds=R)
    ]
    assert (rollup.window_start, rollup.window_end, rollup.predictions) == (T0, T0 + R, 400)
    assert_same_drift(rollup, from_rows(store, whole))
    assert {d.feature for d in rollup.drift if d.drifted} >= {"income"}
    _, _, latencies = zip(*store.predictions_in_window(whole), strict=True)
    # Within the latency histogram's documented precision (monitor.core.latency).
    exact = np.quantile(latencies, 0.95)
    assert abs(rollup.latency_p95_seconds - exact) <= RELATIVE_ERROR * exact + 1e-6

    # A late event and a late label land in the closed rollup: it is scored again, at
    # the end of the current base window (at most once per base window).
    clock.now = T0 + 2 * R + 1
    late = events(reference_frame(rng, 1), np.array([T0 + 2 * W + 7.0]), "late-")
    post(client, late)
    label(client, [("late-0000", 0), ("w1-0003", 1)])
    assert [r.window_end - r.window_start for r in loop.run_once()] == [W, W]
    clock.now = T0 + 2 * R + W
    assert [r.window_end - r.window_start for r in loop.run_once()] == [R]
    (again,) = [
        WindowResult.from_record(r) for r in store.window_results("credit", "v1", window_seconds=R)
    ]
    assert (again.predictions, again.labelled) == (401, 2)
    assert again.scored_at > rollup.scored_at
    assert_same_drift(again, from_rows(store, whole))
    base = [
        WindowResult.from_record(r) for r in store.window_results("credit", "v1", window_seconds=W)
    ]
    assert len(base) == 5, "the base windows are kept apart from the rollup"


# -- count windows ---------------------------------------------------------------------


def block_members(store: Store) -> dict[int, list[str]]:
    """Event ids per block of 40, by place in ingest order (read straight from SQL)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT position, event_id FROM ingest_order ORDER BY position")
        ).all()
    assert [p for p, _ in rows] == list(range(len(rows))), "places are gapless"
    members: dict[int, list[str]] = {}
    for position, event_id in rows:
        members.setdefault(position // 40, []).append(event_id)
    return members


def count_results(store: Store) -> dict[int, WindowResult]:
    found = [
        WindowResult.from_record(r)
        for r in store.window_results("credit", "v1", window_kind="count", limit=1000)
    ]
    assert all(r.block is not None for r in found)
    return {r.block: r for r in found if r.block is not None}


def test_count_windows_are_blocks_in_ingest_order_that_late_data_never_reshuffles(
    app_on,
) -> None:
    clock = Clock(T0 + 10)
    client = app_on(clock, count_window=40, rollup_seconds=[])
    store: Store = client.app.state.store
    loop = client.app.state.loop
    rng = np.random.default_rng(3)
    upload(client, reference_frame(rng, 500))
    predicted = rng.integers(0, 2, 220)
    frame = reference_frame(rng, 220)
    times = np.concatenate(
        [
            T0 + rng.uniform(0, W, 70),  # in order
            T0 - 3600 + rng.uniform(0, 600, 50),  # an hour late
            rng.permutation(T0 + W + np.arange(80.0)),  # out of order in the batch
            T0 - 7200 + rng.uniform(0, 10, 20),  # late again, later
        ]
    )
    batch = events(frame, times, "c", predicted=predicted)
    post(client, batch[:70])
    loop.run_once()
    assert sorted(count_results(store)) == [0], "one full block of 40; 30 wait"
    first = count_results(store)[0]
    post(client, batch[70:120])
    post(client, batch[120:200])
    clock.now = T0 + 3 * W
    loop.run_once()

    # 200 = 5 x 40 predictions: exactly five blocks, in ingest order.
    results = count_results(store)
    assert sorted(results) == [0, 1, 2, 3, 4]
    members = block_members(store)
    ids = [e["event_id"] for e in batch]
    assert members == {b: ids[40 * b : 40 * b + 40] for b in range(5)}
    ts = {e["event_id"]: e["timestamp"] for e in batch}
    for b, result in results.items():
        assert result.predictions == 40 and result.window_kind == "count"
        # (event times pass through a datetime: microseconds)
        assert result.window_start == pytest.approx(min(ts[i] for i in members[b]), abs=1e-6)
        assert result.window_end == pytest.approx(max(ts[i] for i in members[b]), abs=1e-6)
        assert result.drift and all(d.current_count == 40 for d in result.drift)
    assert results[0].scored_at == first.scored_at, "a full block is scored once"

    # Late events (and a batch that committed late with an older received_at) join the
    # block being filled; the full blocks keep their members and results.
    post(client, batch[200:220])
    loop.run_once()
    assert len(block_members(store)[5]) == 20
    slow = [
        {
            "event_id": f"slow{i:02d}",
            "model": "credit",
            "model_version": "v1",
            "ts": float(T0 + i),
            "received_at": 0.0,
            "features": batch[i]["features"],
            "outputs": {"predicted_class": 0},
            "latency_seconds": None,
            "trace_id": None,
            "parent_span_id": None,
            "variant": None,
            "stage": None,
            "segment": {},
            "correlation_key": None,
        }
        for i in range(20)
    ]
    store.insert_predictions(slow)
    loop.mark("credit", "v1", [r["ts"] for r in slow])
    loop.run_once()
    after = block_members(store)
    assert {b: after[b] for b in range(5)} == members
    assert after[5] == ids[200:220] + [r["event_id"] for r in slow]
    now = count_results(store)
    assert sorted(now) == [0, 1, 2, 3, 4, 5]
    assert all(now[b].scored_at == results[b].scored_at for b in range(5))

    # Late labels rescore exactly the block that holds their predictions.
    truth = rng.integers(0, 2, 220)
    labelled = list(range(40, 55))  # in block 1
    label(client, [(ids[i], int(truth[i])) for i in labelled])
    rescored = [r for r in loop.run_once() if r.window_kind == "count"]
    assert [r.block for r in rescored] == [1]
    assert rescored[0].labelled == 15
    assert rescored[0].accuracy == pytest.approx(
        accuracy_score(truth[labelled], predicted[labelled])
    )
    assert count_results(store)[1].labelled == 15

    # A restart finds every place given already: no block moves, none is scored again.
    client.__exit__(None, None, None)
    restarted = app_on(clock, count_window=40, rollup_seconds=[])
    assert [r for r in restarted.app.state.loop.run_once() if r.window_kind == "count"] == []
    assert block_members(store) == after


# -- segments --------------------------------------------------------------------------


def test_segments_are_scored_apart_capped_and_exported(app_on) -> None:
    clock = Clock(T0 + 10)
    client = app_on(clock, rollup_seconds=[], segment_keys=["region"], max_segment_values=2)
    store: Store = client.app.state.store
    rng = np.random.default_rng(8)
    n = 1000  # noise in an undrifted segment stays well under the thresholds
    upload(client, reference_frame(rng, 3000))
    predicted = rng.integers(0, 2, n)
    eu, us = reference_frame(rng, n), reference_frame(rng, n)
    eu["income"] = eu["income"] * 1.8  # drift in one segment only
    times = T0 + rng.uniform(0, W, n)
    post(client, events(eu, times, "eu", predicted=predicted, segment={"region": "eu"}))
    post(client, events(us, times, "us", predicted=predicted, segment={"region": "us"}))
    post(client, events(reference_frame(rng, 40), times, "as", segment={"region": "asia"}))
    post(client, events(reference_frame(rng, 20), times, "af", segment={"region": "af"}))
    post(client, events(reference_frame(rng, 15), times, "none"))  # no segment at all
    truth = rng.integers(0, 2, n)
    label(client, [(f"eu{i:04d}", int(truth[i])) for i in range(0, n, 3)])
    label(client, [(f"us{i:04d}", int(truth[i])) for i in range(0, n, 2)])
    clock.now = T0 + W
    client.app.state.loop.run_once()

    def segment(label: str) -> WindowResult:
        (found,) = [
            WindowResult.from_record(r) for r in store.window_results("credit", "v1", segment=label)
        ]
        return found

    eu_result, us_result = segment("region=eu"), segment("region=us")
    assert store.window_results("credit", "v1", segment="region=asia") == []
    assert store.window_results("credit", "v1", segment="region=af") == []
    assert segment("").predictions == 2 * n + 75
    assert (eu_result.predictions, us_result.predictions) == (n, n)
    assert {d.feature for d in eu_result.drift if d.drifted} == {"income"}
    assert us_result.drift_share == 0.0 and eu_result.drift_share == 0.25
    for result in (eu_result, us_result):
        parsed = parse_split(result.segment)
        assert parsed is not None
        window = Window.of_time("credit", "v1", T0, W, parsed)
        assert_same_drift(result, from_rows(store, window))

    def by_segment(name: str) -> dict[str, float]:
        return {dict(k)["segment"]: v for k, v in samples(client, name).items()}

    assert by_segment("sidewatch_segment_predictions") == {"region=eu": n, "region=us": n}
    eu_labelled, us_labelled = list(range(0, n, 3)), list(range(0, n, 2))
    assert by_segment("sidewatch_segment_accuracy_ratio") == {
        "region=eu": pytest.approx(accuracy_score(truth[eu_labelled], predicted[eu_labelled])),
        "region=us": pytest.approx(accuracy_score(truth[us_labelled], predicted[us_labelled])),
    }
    assert by_segment("sidewatch_segment_label_coverage_ratio") == {
        "region=eu": pytest.approx((n // 3 + 1) / n),
        "region=us": pytest.approx((n // 2) / n),
    }
    assert by_segment("sidewatch_segment_drifted_features_ratio") == {
        "region=eu": 0.25,
        "region=us": 0.0,
    }
    mv = (("model", "credit"), ("model_version", "v1"))
    assert samples(client, "sidewatch_segment_series_cut") == {mv: 2.0}, "asia and af"
    assert samples(client, "sidewatch_window_predictions") == {mv: 2 * n + 75.0}, (
        "the whole, as before"
    )

    # Late labels rescore the whole window at once, its segments a base window after
    # they were last scored (labels trickling in would otherwise rescore them each pass).
    clock.now = T0 + W + 10
    label(client, [(f"us{i:04d}", int(truth[i])) for i in range(1, 11, 2)])
    rescored = client.app.state.loop.run_once()
    assert [(r.segment, r.labelled) for r in rescored] == [("", n // 3 + 1 + n // 2 + 5)]
    assert by_segment("sidewatch_segment_label_coverage_ratio")["region=us"] == 0.5
    clock.now = T0 + 2 * W
    rescored = client.app.state.loop.run_once()
    assert [r.segment for r in rescored] == ["region=eu", "region=us"]
    assert by_segment("sidewatch_segment_label_coverage_ratio")["region=us"] == (n // 2 + 5) / n

    # Late events make asia the second most frequent: us falls out of the cap, and its
    # older result goes with it.
    clock.now = T0 + 3 * W
    late = reference_frame(rng, n + 10)
    times = T0 + rng.uniform(0, W, n + 10)
    post(client, events(late, times, "late", segment={"region": "asia"}))
    client.app.state.loop.run_once()
    assert store.window_results("credit", "v1", segment="region=us") == []
    assert segment("region=asia").predictions == n + 50
    assert by_segment("sidewatch_segment_predictions") == {"region=eu": n, "region=asia": n + 50}
    assert samples(client, "sidewatch_segment_series_cut") == {mv: 2.0}, "us and af"


# -- reading them back -----------------------------------------------------------------


def test_windows_are_read_by_segment_kind_and_length(sqlite_url) -> None:
    clock = Clock(T0 + 10)
    settings = MonitorSettings(
        database_url=sqlite_url,
        window_seconds=W,
        rollup_seconds=[R],
        count_window=50,
        min_window_events=10,
        segment_keys=["region"],
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        rng = np.random.default_rng(1)
        upload(client, reference_frame(rng, 500))
        times = T0 + rng.uniform(0, W, 100)
        post(client, events(reference_frame(rng, 100), times, "e", segment={"region": "eu"}))
        clock.now = T0 + R
        client.app.state.loop.run_once()
        url = "/v1/models/credit/versions/v1/windows"

        def get(**params: Any) -> list[dict[str, Any]]:
            response = client.get(url, params=params)
            assert response.status_code == 200, response.text
            return list(response.json())

        assert [(w["window_start"], w["window_end"]) for w in get()] == [(T0, T0 + W)]
        assert [w["window_end"] - w["window_start"] for w in get(seconds=R)] == [R]
        (eu,) = get(segment="region=eu")
        assert (eu["segment"], eu["predictions"]) == ("region=eu", 100)
        assert [(w["window_kind"], w["block"]) for w in get(kind="count")] == [
            ("count", 1),
            ("count", 0),
        ] or [(w["window_kind"], w["block"]) for w in get(kind="count")] == [
            ("count", 0),
            ("count", 1),
        ]
        one = client.get(f"{url}/{T0}", params={"segment": "region=eu"}).json()
        assert one["segment"] == "region=eu"
        drift = client.get("/v1/models/credit/versions/v1/drift", params={"seconds": R}).json()
        assert {(d["window_start"], d["window_end"]) for d in drift} == {(T0, T0 + R)}

        def problems(**params: Any) -> dict[str, str]:
            response = client.get(url, params=params)
            assert response.status_code == 422, response.text
            return {p["loc"]: p["msg"] for p in response.json()["problems"]}

        assert "scored lengths: 60, 300" in problems(seconds=120)["query.seconds"]
        assert "key=value" in problems(segment="eu")["query.segment"]
        assert "scored keys: region" in problems(segment="device=phone")["query.segment"]
        assert "no length" in problems(kind="count", seconds=60)["query.seconds"]
        assert client.get(url, params={"kind": "hourly"}).status_code == 422


def test_window_settings_are_checked_at_start_up() -> None:
    assert MonitorSettings().rollups == [3600, 86400]
    assert MonitorSettings(window_seconds=7200).rollups == [86400], "defaults that fit"
    assert MonitorSettings(window_seconds=60, rollup_seconds=[]).rollups == []
    with pytest.raises(ValidationError, match="rollup_seconds 1000 is not a multiple"):
        MonitorSettings(window_seconds=300, rollup_seconds=[1000])
    with pytest.raises(ValidationError, match="SIDEWATCH_ROLLUP_SECONDS"):
        MonitorSettings(window_seconds=300, rollup_seconds=[300])
    with pytest.raises(ValidationError, match="below min_window_events"):
        MonitorSettings(count_window=10, min_window_events=30)
    with pytest.raises(ValidationError, match="segment_keys"):
        MonitorSettings(segment_keys=["a=b"])
    with pytest.raises(ValidationError, match="repeats"):
        MonitorSettings(segment_keys=["region", "region"])
    assert MonitorSettings(count_window=0).count_window == 0

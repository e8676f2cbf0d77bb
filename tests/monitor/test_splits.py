"""Splits beyond segments: a window's variants, pipeline stages and sensitive groups,
each scored as a window of its own, read back by the API and exported (on SQLite and
PostgreSQL). Oracles: pandas for the rows of each split, scikit-learn for accuracy, and
profiles built from the split's raw rows for drift."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import accuracy_score

from monitor.api import create_app
from monitor.core.windows import Split, Window, parse_split
from monitor.score.results import WindowResult
from monitor.settings import MonitorSettings
from monitor.store import Store
from tests.conftest import ADMIN, INGEST_CREDIT, credit_model
from tests.monitor.test_scoring import Clock, reference_frame, samples
from tests.monitor.test_store import prediction_row
from tests.monitor.test_windows import (
    T0,
    W,
    assert_same_drift,
    events,
    from_rows,
    label,
    post,
    upload,
)

VARIANTS = {"control": 0.5, "treatment": 0.3, "shadow": 0.15, None: 0.05}
"""With at most two values scored per split, ``shadow`` is cut."""
STAGES = {"retrieval": 0.6, "ranker": 0.4}


def split_model(group_labels_allowed: bool = False) -> dict[str, Any]:
    """The credit model with a categorical and a numeric sensitive attribute."""
    body = credit_model().model_dump()
    body["sensitive_attributes"] = ["region", "age"]
    body["group_labels_allowed"] = group_labels_allowed
    return body


@pytest.fixture
def app_on(database_url: str) -> Iterator[Any]:
    """Builds started monitors on one database of each backend, the model registered."""
    clients: list[TestClient] = []

    def build(clock: Clock, *, group_labels_allowed: bool = False, **options: Any) -> TestClient:
        settings = MonitorSettings(
            database_url=database_url, window_seconds=W, min_window_events=10, **options
        )
        client = TestClient(create_app(settings, clock=clock))
        client.__enter__()
        clients.append(client)
        response = client.put("/v1/models/credit", json=split_model(group_labels_allowed))
        assert response.status_code <= 201, response.text
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def choose(rng: np.random.Generator, shares: dict[str | None, float], n: int) -> list[Any]:
    keys = list(shares)
    return [keys[i] for i in rng.choice(len(keys), n, p=list(shares.values()))]


def scene(client: TestClient, rng: np.random.Generator, n: int = 900) -> pd.DataFrame:
    """One base window of events with variants, stages and regions, a third labelled;
    returns what was posted, one row per event (the oracle's input)."""
    upload(client, reference_frame(rng, 3000))
    frame = reference_frame(rng, n)
    frame["variant"] = choose(rng, VARIANTS, n)
    frame["stage"] = choose(rng, STAGES, n)
    treated = (frame["variant"] == "treatment").to_numpy()
    frame.loc[treated, "income"] *= 1.8  # drift in one variant only
    predicted = rng.integers(0, 2, n)
    times = T0 + rng.uniform(0, W, n)
    batch = events(frame, times, "ev", predicted=predicted)
    for event, variant, stage in zip(batch, frame["variant"], frame["stage"], strict=True):
        if variant is not None:
            event["variant"] = variant
        event["stage"] = stage
    post(client, batch)
    frame["event_id"] = [e["event_id"] for e in batch]
    frame["predicted"] = predicted
    frame["truth"] = rng.integers(0, 2, n)
    frame["labelled"] = np.arange(n) % 3 == 0
    chosen = frame[frame["labelled"]]
    label(client, list(zip(chosen["event_id"], chosen["truth"].astype(int), strict=True)))
    return frame


def rows_of(frame: pd.DataFrame, split: Split) -> pd.DataFrame:
    """The oracle's rows of a split value."""
    column = {"variant": "variant", "stage": "stage", "group": split.key}[split.kind]
    return frame[frame[column].astype(object) == split.value]


def expected_accuracy(rows: pd.DataFrame) -> float:
    known = rows[rows["labelled"]]
    return float(accuracy_score(known["truth"], known["predicted"]))


def window_of(split: Split) -> Window:
    return Window.of_time("credit", "v1", T0, W, split)


def test_variants_stages_and_groups_are_scored_apart_capped_and_exported(app_on) -> None:
    clock = Clock(T0 + 10)
    client = app_on(clock, rollup_seconds=[], max_segment_values=2)
    store: Store = client.app.state.store
    frame = scene(client, np.random.default_rng(12))
    clock.now = T0 + W
    results = client.app.state.loop.run_once()

    scored = [parse_split(r.segment) for r in results if r.segment]
    expected = [
        Split("variant", "", "control"),
        Split("variant", "", "treatment"),
        Split("stage", "", "retrieval"),
        Split("stage", "", "ranker"),
        Split("group", "region", "north"),
        Split("group", "region", "south"),
    ]
    assert scored == expected, "most frequent first; shadow and east cut; age is numeric"
    for split in expected:
        rows = rows_of(frame, split)
        (record,) = store.window_results("credit", "v1", segment=split.label)
        result = WindowResult.from_record(record)
        assert result.predictions == len(rows), split
        assert result.labelled == int(rows["labelled"].sum()), split
        assert result.accuracy == pytest.approx(expected_accuracy(rows), rel=1e-12), split
        held = store.predictions_in_window(window_of(split))
        assert sorted(f["income"] for f, _, _ in held) == sorted(rows["income"]), split
        assert_same_drift(result, from_rows(store, window_of(split)))
    (treatment,) = store.window_results("credit", "v1", segment="@variant=treatment")
    assert WindowResult.from_record(treatment).drift_share == 0.25, "income drifted"
    assert store.window_results("credit", "v1", segment="@variant=shadow") == []
    assert store.window_results("credit", "v1", segment="@group:region=east") == []

    mv = (("model", "credit"), ("model_version", "v1"))
    assert samples(client, "sidewatch_split_series_cut") == {
        (*mv, ("split", "variant")): 1.0,
        (*mv, ("split", "stage")): 0.0,
        (*mv, ("split", "group")): 1.0,
    }
    assert samples(client, "sidewatch_segment_series_cut") == {}, "no segment keys"
    for kind, name in (("variant", "variant"), ("stage", "stage")):
        found = samples(client, f"sidewatch_{kind}_predictions")
        accuracy = samples(client, f"sidewatch_{kind}_accuracy_ratio")
        splits = [s for s in expected if s.kind == kind]
        assert found == {(*mv, (name, s.value)): len(rows_of(frame, s)) for s in splits}
        assert accuracy == {
            (*mv, (name, s.value)): pytest.approx(expected_accuracy(rows_of(frame, s)))
            for s in splits
        }

    # Groups are numbered: the values never reach a label; the admin API maps them.
    numbered = {g["label"]: g["value"] for g in client.get("/v1/models/credit/groups").json()}
    assert sorted(numbered.values()) == ["north", "south"]
    assert sorted(numbered) == ["g1", "g2"]
    groups = samples(client, "sidewatch_group_predictions")
    assert groups == {
        (("attribute", "region"), ("group", g), *mv): len(
            rows_of(frame, Split("group", "region", value))
        )
        for g, value in numbered.items()
    }
    page = client.get("/metrics").text
    assert "north" not in page and "south" not in page and "east" not in page

    # The window API reads each split.
    base = "/v1/models/credit/versions/v1/windows"
    for query, split in (
        ("variant=control", Split("variant", "", "control")),
        ("stage=ranker", Split("stage", "", "ranker")),
        ("attribute=region&group=south", Split("group", "region", "south")),
    ):
        (window,) = client.get(f"{base}?{query}").json()
        assert window["segment"] == split.label
        assert window["predictions"] == len(rows_of(frame, split))
        one = client.get(f"{base}/{T0!r}?{query}").json()
        assert one["predictions"] == window["predictions"]
    assert client.get(f"{base}?variant=shadow").json() == [], "cut: not scored"
    for bad in ("variant=control&stage=ranker", "group=north", "segment=@variant=control"):
        assert client.get(f"{base}?{bad}").status_code == 422, bad
    assert client.get(f"{base}?kind=count&variant=control").status_code == 422

    # A restart publishes the stored split results as they were.
    before = {
        name: samples(client, name)
        for name in ("sidewatch_variant_predictions", "sidewatch_group_predictions")
    }
    cut = samples(client, "sidewatch_split_series_cut")
    client.__exit__(None, None, None)
    restarted = app_on(clock, rollup_seconds=[], max_segment_values=2)
    for name, found in before.items():
        assert samples(restarted, name) == found, name
    assert samples(restarted, "sidewatch_split_series_cut") == cut


def test_group_values_are_labels_only_where_the_model_allows_them(app_on) -> None:
    clock = Clock(T0 + 10)
    client = app_on(clock, rollup_seconds=[], group_labels_allowed=True)
    store: Store = client.app.state.store
    rng = np.random.default_rng(5)
    upload(client, reference_frame(rng, 3000))
    frame = reference_frame(rng, 300)
    post(client, events(frame, T0 + rng.uniform(0, W, 300), "ev"))  # no variant, no stage
    clock.now = T0 + W
    client.app.state.loop.run_once()

    mv = (("model", "credit"), ("model_version", "v1"))
    counts = frame["region"].value_counts()
    assert samples(client, "sidewatch_group_predictions") == {
        (("attribute", "region"), ("group", value), *mv): float(n) for value, n in counts.items()
    }
    assert client.get("/v1/models/credit/groups").json() == [], "nothing numbered"
    # Events without a variant or a stage make no such windows, and no such series.
    stored = store.split_results(Window.of_time("credit", "v1", T0, W))
    assert {parse_split(r.segment).kind for r in stored} == {"group"}  # type: ignore[union-attr]
    for kind in ("variant", "stage"):
        assert samples(client, f"sidewatch_{kind}_predictions") == {}
    assert samples(client, "sidewatch_split_series_cut") == {(*mv, ("split", "group")): 0.0}


def test_splits_off_score_none_and_refuse_their_queries(app_on) -> None:
    clock = Clock(T0 + 10)
    client = app_on(
        clock,
        rollup_seconds=[],
        split_variants=False,
        split_stages=False,
        split_sensitive_groups=False,
    )
    scene(client, np.random.default_rng(3), n=120)
    clock.now = T0 + W
    assert [r.segment for r in client.app.state.loop.run_once()] == [""]
    base = "/v1/models/credit/versions/v1/windows"
    for query in ("variant=control", "stage=ranker", "attribute=region&group=north"):
        assert client.get(f"{base}?{query}").status_code == 422, query


def test_the_store_selects_each_split_s_rows_alike_on_both_backends(store: Store) -> None:
    # A categorical attribute may carry numbers: its groups read as text on both
    # backends (SQLite extracts a JSON number as a number).
    rng = np.random.default_rng(4)
    n = 60
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "region": rng.integers(0, 3, n),
            "variant": choose(rng, VARIANTS, n),
            "stage": [None] * 5 + choose(rng, STAGES, n - 5),  # some without a stage
        }
    )
    rows = [
        prediction_row(
            i,
            features={"income": float(r.income), "region": int(r.region)},
            variant=r.variant,
            stage=r.stage,
        )
        for i, r in enumerate(frame.itertuples(index=False))
    ]
    store.insert_predictions(rows)
    whole = Window("credit", "v1", 0, 5000)
    frame["region"] = frame["region"].astype(str)
    for kind, key, column in (
        ("variant", "", "variant"),
        ("stage", "", "stage"),
        ("group", "region", "region"),
    ):
        expected = frame[column].dropna().value_counts().to_dict()
        assert store.split_counts(whole, kind, key) == expected, kind  # type: ignore[arg-type]
        for value in expected:
            split = Split(kind, key, value)  # type: ignore[arg-type]
            held = store.predictions_in_window(Window.of_time("credit", "v1", 0, 5000, split))
            assert sorted(f["income"] for f, _, _ in held) == sorted(
                frame.loc[frame[column] == value, "income"]
            ), split


def test_split_labels_cannot_collide_with_segment_labels() -> None:
    splits = [
        Split("segment", "variant", "control"),
        Split("variant", "", "control"),
        Split("stage", "", "control"),
        Split("group", "variant", "control"),
        Split("segment", "region", "a=b:c"),
        Split("group", "region", "@x=y"),
    ]
    labels = [s.label for s in splits]
    assert len(set(labels)) == len(labels)
    assert [parse_split(label) for label in labels] == splits
    assert parse_split("") is None
    for bad in ("nokey", "=v", "@variant:x=v", "@group=v", "@other=v"):
        with pytest.raises(ValueError):
            parse_split(bad)


def test_the_group_numbers_need_the_admin_token(secured_api: TestClient) -> None:
    secured_api.app.state.store.group_numbers("credit", "region", ["north"])  # type: ignore[attr-defined]
    path = "/v1/models/credit/groups"
    assert secured_api.get(path).status_code == 401
    ingest = {"Authorization": f"Bearer {INGEST_CREDIT}"}
    assert secured_api.get(path, headers=ingest).status_code == 403
    found = secured_api.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert found.json() == [{"attribute": "region", "value": "north", "number": 1, "label": "g1"}]

"""Tenants through the API, on SQLite and PostgreSQL: event ids are per model, and a
label joins only predictions of its own model, whichever token wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from monitor.core.windows import Window
from tests.conftest import ADMIN, INGEST_CREDIT, credit_event, credit_model, make_client

INGEST_OTHER = "ingest-other-0123456789"
"""An ingest token bound to the model ``other``."""

W = 60
T0 = 1_700_000_040.0
"""The start of a window of W seconds."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tenants(database_url: str) -> Iterator[TestClient]:
    """A secured monitor with models ``credit`` and ``other`` and a token for each."""
    with make_client(
        database_url,
        admin_token=ADMIN,
        ingest_tokens={INGEST_CREDIT: ["credit"], INGEST_OTHER: ["other"]},
        window_seconds=W,
    ) as client:
        for name in ("credit", "other"):
            response = client.put(
                f"/v1/models/{name}", json=credit_model(name).model_dump(), headers=bearer(ADMIN)
            )
            assert response.status_code == 201, response.text
        yield client


def event(model: str, event_id: str, predicted: int, **changes: Any) -> dict[str, Any]:
    return credit_event(
        0,
        event_id=event_id,
        model=model,
        timestamp=T0 + 1,
        outputs={"predicted_class": predicted},
        **changes,
    )


def label(model: str, event_id: str, value: int, **join: str) -> dict[str, Any]:
    return {"event_id": event_id, "model": model, "value": value, "timestamp": T0 + 30, **join}


def post(client: TestClient, kind: str, token: str, items: list[dict[str, Any]]) -> Any:
    key = "events" if kind == "predictions" else "labels"
    response = client.post(
        f"/v1/ingest/{kind}", content=orjson.dumps({key: items}), headers=bearer(token)
    )
    return response.status_code, response.json()


def accuracy(client: TestClient, model: str) -> tuple[int, float | None]:
    """Labelled predictions and accuracy of the model's window, scored now."""
    client.app.state.loop.run_once()  # type: ignore[attr-defined]
    found = client.get(f"/v1/models/{model}/versions/v1/windows", headers=bearer(ADMIN))
    assert found.status_code == 200, found.text
    [window] = [w for w in found.json() if w["window_start"] == T0]
    return window["labelled"], window["accuracy"]


def test_a_label_joins_only_predictions_of_its_own_model(tenants: TestClient) -> None:
    b_events = [event("other", "x", 1), event("other", "y", 1, correlation_key="k-1")]
    assert post(tenants, "predictions", INGEST_OTHER, b_events)[0] == 200
    assert (
        post(tenants, "labels", INGEST_OTHER, [label("other", "b-1", 1, prediction_id="x")])[0]
        == 200
    )
    assert (
        post(tenants, "labels", INGEST_OTHER, [label("other", "b-2", 1, correlation_key="k-1")])[0]
        == 200
    )
    assert accuracy(tenants, "other") == (2, 1.0)

    # A's token may not write B's labels at all (each one is rejected as forbidden) ...
    status, body = post(
        tenants, "labels", INGEST_CREDIT, [label("other", "a-0", 0, prediction_id="x")]
    )
    assert status == 200, body
    assert (body["stored"], [r["reason"] for r in body["rejected"]]) == (0, ["forbidden"])
    # ... and A's own label naming B's event id joins nothing of B's.
    hostile = [
        label("credit", "a-1", 0, prediction_id="x"),
        label("credit", "a-2", 0, correlation_key="k-1"),
    ]
    assert post(tenants, "labels", INGEST_CREDIT, hostile)[0] == 200
    assert accuracy(tenants, "other") == (2, 1.0), "B's accuracy moved: A's label joined it"
    store = tenants.app.state.store  # type: ignore[attr-defined]
    assert store.labelled_in_window(Window("credit", "v1", 0, 2e9)) == []
    assert [v for _, v in store.labelled_in_window(Window("other", "v1", 0, 2e9))] == [1, 1]


def test_when_a_labels_own_prediction_arrives_it_joins_that_one(tenants: TestClient) -> None:
    """The same id in both models: each label joins its own model's prediction."""
    post(tenants, "predictions", INGEST_OTHER, [event("other", "z", 1)])
    post(tenants, "predictions", INGEST_CREDIT, [event("credit", "z", 0)])
    post(tenants, "labels", INGEST_OTHER, [label("other", "l", 1, prediction_id="z")])
    post(tenants, "labels", INGEST_CREDIT, [label("credit", "l", 0, prediction_id="z")])
    assert accuracy(tenants, "other") == (1, 1.0)
    assert accuracy(tenants, "credit") == (1, 1.0)


def test_event_ids_are_per_model(tenants: TestClient) -> None:
    status, body = post(tenants, "predictions", INGEST_CREDIT, [event("credit", "X", 0)])
    assert (status, body["stored"]) == (200, 1)
    status, body = post(tenants, "predictions", INGEST_OTHER, [event("other", "X", 1)])
    assert (status, body["stored"], body["duplicates"]) == (200, 1, 0), body
    # Idempotency still holds within each model.
    status, body = post(tenants, "predictions", INGEST_OTHER, [event("other", "X", 1)])
    assert (body["stored"], body["duplicates"]) == (0, 1)
    store = tenants.app.state.store  # type: ignore[attr-defined]
    assert store.count_predictions("credit") == 1 and store.count_predictions("other") == 1


def test_one_batch_may_hold_the_same_id_for_two_models(tenants: TestClient) -> None:
    both = [event("credit", "S", 0), event("other", "S", 1), event("other", "S", 1)]
    status, body = post(tenants, "predictions", ADMIN, both)
    assert (status, body["stored"], body["duplicates"]) == (200, 2, 1), body
    post(tenants, "predictions", ADMIN, [event("credit", "T", 0)])
    status, body = post(
        tenants, "predictions", ADMIN, [event("credit", "T", 0), event("other", "T", 1)]
    )
    assert (body["stored"], body["duplicates"]) == (1, 1), body


def test_a_replay_under_a_renamed_model_stores_everything(tenants: TestClient) -> None:
    events = [event("credit", f"r-{i}", i % 2) for i in range(200)]
    assert post(tenants, "predictions", ADMIN, events)[1]["stored"] == 200
    renamed = [{**e, "model": "other"} for e in events]
    status, body = post(tenants, "predictions", ADMIN, renamed)
    assert (status, body["stored"], body["duplicates"]) == (200, 200, 0), body
    labels = [label("other", f"lab-{i}", i % 2, prediction_id=f"r-{i}") for i in range(200)]
    assert post(tenants, "labels", ADMIN, labels)[1]["stored"] == 200
    assert accuracy(tenants, "other") == (200, 1.0)
    assert accuracy(tenants, "credit") == (0, None)


def test_count_windows_place_each_models_events(database_url: str) -> None:
    """Ingest order is per model too: B's event X gets its own place."""
    with make_client(database_url, window_seconds=W, count_window=30, min_window_events=30) as c:
        for name in ("credit", "other"):
            c.put(f"/v1/models/{name}", json=credit_model(name).model_dump())
        for name in ("credit", "other"):
            events = [event(name, f"c-{i}", 1) for i in range(30)]
            assert post(c, "predictions", ADMIN, events)[1]["stored"] == 30
        c.app.state.loop.run_once()  # type: ignore[attr-defined]
        store = c.app.state.store  # type: ignore[attr-defined]
        assert store.placed_count("credit", "v1") == 30
        assert store.placed_count("other", "v1") == 30
        assert store.block_span("other", "v1", 0, 30)[0] == 30

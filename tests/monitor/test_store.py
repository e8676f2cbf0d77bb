"""The store, on SQLite and on PostgreSQL through the same code."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from monitor.core.windows import Window
from monitor.errors import ConflictError, NotFoundError
from monitor.score.results import FeatureDrift, WindowResult
from monitor.store import Store
from tests.conftest import credit_model


def prediction_row(i: int, **changes):
    row = {
        "event_id": f"ev-{i}",
        "model": "credit",
        "model_version": "v1",
        "ts": 1000.0 + i,
        "received_at": 2000.0,
        "features": {"income": 1.5 * i, "region": "north"},
        "outputs": {"predicted_class": 1},
        "latency_seconds": 0.002,
        "trace_id": None,
        "parent_span_id": None,
        "variant": None,
        "stage": None,
        "segment": {},
        "correlation_key": None,
    }
    row.update(changes)
    return row


def test_backend_is_the_one_asked_for(store: Store, database_url: str) -> None:
    assert store.dialect == database_url.split(":")[0].split("+")[0]
    assert store.ping()


def test_migrations_build_exactly_the_table_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    store.migrate()  # a second run is a no-op


def test_models_register_idempotently_and_refuse_changes(store: Store) -> None:
    assert store.put_model(credit_model()) is True
    assert store.put_model(credit_model()) is False
    assert store.get_model("credit") == credit_model()
    changed = credit_model().model_copy(update={"task": "multiclass"})
    with pytest.raises(ConflictError):
        store.put_model(changed)
    with pytest.raises(NotFoundError):
        store.get_model("nosuch")


def test_predictions_are_stored_once(store: Store) -> None:
    store.put_model(credit_model())
    assert sorted(store.insert_predictions([prediction_row(i) for i in range(3)])) == [
        ("credit", "ev-0"),
        ("credit", "ev-1"),
        ("credit", "ev-2"),
    ]
    assert store.insert_predictions([prediction_row(i) for i in range(2, 5)]) == {
        ("credit", "ev-3"),
        ("credit", "ev-4"),
    }
    assert store.count_predictions() == 5
    rows = store.predictions_in_window(Window("credit", "v1", 1001.0, 1003.0))
    assert sorted(r[0]["income"] for r in rows) == [1.5, 3.0]


def test_labels_join_by_event_id_or_correlation_key(store: Store) -> None:
    store.put_model(credit_model())
    store.insert_predictions(
        [prediction_row(0), prediction_row(1, correlation_key="order-1"), prediction_row(2)]
    )
    labels = [
        {
            "event_id": "l0",
            "model": "credit",
            "prediction_id": "ev-0",
            "correlation_key": None,
            "value": 1,
            "ts": 5.0,
            "received_at": 6.0,
        },
        {
            "event_id": "l1",
            "model": "credit",
            "prediction_id": None,
            "correlation_key": "order-1",
            "value": "yes",
            "ts": 5.0,
            "received_at": 6.0,
        },
        {
            "event_id": "l2",
            "model": "credit",
            "prediction_id": "ev-0",
            "correlation_key": None,
            "value": 0,
            "ts": 9.0,
            "received_at": 9.0,
        },
    ]
    assert sorted(store.insert_labels(labels)) == [
        ("credit", "l0"),
        ("credit", "l1"),
        ("credit", "l2"),
    ]
    assert store.insert_labels(labels) == set()
    joined = store.labelled_in_window(Window("credit", "v1", 0, 5000))
    assert sorted(str(v) for _, v in joined) == ["0", "yes"], "the newest label of ev-0 counts"
    assert sorted(store.predictions_labelled_by([("credit", "l1")])) == [
        ("credit", "v1", 1001.0, None)
    ]


def test_references_get_new_revisions(store: Store) -> None:
    store.put_model(credit_model())
    assert store.latest_reference("credit", "v1") is None
    first = store.add_reference(
        "credit", "v1", rows=3, source_format="csv", data=b"x", profile={"a": 1}
    )
    second = store.add_reference(
        "credit", "v1", rows=4, source_format="json", data=b"y", profile={"a": 2}
    )
    assert (first.revision, second.revision) == (1, 2)
    latest = store.latest_reference("credit", "v1")
    assert latest is not None and (latest.revision, latest.rows, latest.profile) == (2, 4, {"a": 2})
    assert store.list_versions("credit") == [("credit", "v1")]


def test_window_results_are_replaced_not_duplicated(store: Store) -> None:
    def result(predictions: int) -> WindowResult:
        drift = (FeatureDrift("income", "psi", 0.31, 0.2, True, predictions),)
        return WindowResult(
            "credit", "v1", 0.0, 60.0, "d1", predictions, 1, 1.0, 0.1, 0.2, 0.3, 1, drift, 99.0
        )

    store.save_window_result(result(10).as_record())
    store.save_window_result(result(12).as_record())
    stored = [WindowResult.from_record(r) for r in store.window_results("credit", "v1")]
    assert stored == [result(12)]

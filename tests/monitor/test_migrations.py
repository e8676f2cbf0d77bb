"""Migrations over stored data, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from monitor.core.windows import Window
from monitor.store import Store
from monitor.store.store import _MIGRATIONS
from tests.conftest import credit_model
from tests.monitor.test_store import prediction_row


def migrate_to(store: Store, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def insert_old_prediction(store: Store, row: dict[str, Any]) -> None:
    """Insert a prediction row into a schema before 0008 (no ``stage`` column)."""
    names = [c for c in row if c != "stage"]
    encoded = {k: orjson.dumps(v).decode() if isinstance(v, dict) else v for k, v in row.items()}
    with store.engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO predictions ({', '.join(names)}) "
                f"VALUES ({', '.join(':' + n for n in names)})"
            ),
            {n: encoded[n] for n in names},
        )


@pytest.fixture
def at_0005(database_url: str) -> Iterator[Store]:
    """A store at the 0005 schema holding predictions, labels and ingest order."""
    store = Store(database_url)
    migrate_to(store, "0005")
    features = orjson.dumps({"income": 1.0, "age": 3, "region": "n", "has_card": True}).decode()
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (name, task, features, positive_class, "
                "sensitive_attributes, description, created_at) VALUES "
                "(:n, 'binary', :f, '1', '[]', '', 0)"
            ),
            [
                {"n": name, "f": orjson.dumps(credit_model(name).model_dump()["features"]).decode()}
                for name in ("credit", "other")
            ],
        )
        for i, model in enumerate(("credit", "credit", "other")):
            conn.execute(
                text(
                    "INSERT INTO predictions (event_id, model, model_version, ts, received_at, "
                    "features, outputs, segment) VALUES (:e, :m, 'v1', :ts, 0, :f, :o, '{}')"
                ),
                {
                    "e": f"old-{i}",
                    "m": model,
                    "ts": 1000.0 + i,
                    "f": features,
                    "o": orjson.dumps({"predicted_class": 1}).decode(),
                },
            )
        conn.execute(
            text(
                "INSERT INTO labels (event_id, model, prediction_id, value, ts, received_at) "
                "VALUES ('lab-0', 'credit', 'old-0', '1', 5, 5)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ingest_order (model, model_version, position, event_id) "
                "VALUES ('credit', 'v1', 0, 'old-0'), ('credit', 'v1', 1, 'old-1')"
            )
        )
    yield store
    store.close()


def test_0006_keys_events_by_model_and_keeps_the_stored_rows(at_0005: Store) -> None:
    store = at_0005
    store.migrate()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        keys = inspect(conn)
        for table in ("predictions", "labels"):
            assert keys.get_pk_constraint(table)["constrained_columns"] == ["event_id", "model"]
        [unique] = keys.get_unique_constraints("ingest_order")
        assert unique["column_names"] == ["event_id", "model"]
    assert store.count_predictions("credit") == 2 and store.count_predictions("other") == 1
    joined = store.labelled_in_window(Window("credit", "v1", 0, 5000))
    assert [(o["predicted_class"], v) for o, v in joined] == [(1, 1)]
    assert store.placed_count("credit", "v1") == 2
    # After: other's event old-0 is its own; credit's old-0 is still a duplicate.
    rows = [
        prediction_row(0, event_id="old-0", model="other"),
        prediction_row(1, event_id="old-0"),
    ]
    assert store.insert_predictions(rows) == {("other", "old-0")}
    assert store.place_predictions("other", "v1", None) == (0, 2)
    store.migrate()  # a second run is a no-op


def test_0006_downgrades_while_no_two_models_share_an_id(at_0005: Store) -> None:
    store = at_0005
    store.migrate()
    with store.engine.connect() as conn:
        pk = inspect(conn).get_pk_constraint("predictions")["constrained_columns"]
        assert pk == ["event_id", "model"]
    migrate_to(store, "0005", down=True)
    with store.engine.connect() as conn:
        keys = inspect(conn)
        assert keys.get_pk_constraint("predictions")["constrained_columns"] == ["event_id"]
    assert store.count_predictions() == 3


def test_0008_adds_stage_group_labels_and_group_numbers_and_downgrades(at_0005: Store) -> None:
    store = at_0005
    migrate_to(store, "0007")
    store.migrate()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        found = inspect(conn)
        assert "stage" in {c["name"] for c in found.get_columns("predictions")}
        assert found.get_pk_constraint("split_groups")["constrained_columns"] == [
            "model",
            "attribute",
            "value",
        ]
        stages = conn.execute(text("SELECT stage FROM predictions")).scalars().all()
    assert stages == [None, None, None], "stored predictions have no stage"
    assert store.get_model("credit").group_labels_allowed is False
    store.insert_predictions([prediction_row(9, stage="ranker")])
    assert store.split_counts(Window("credit", "v1", 0, 5000), "stage") == {"ranker": 1}
    assert store.group_numbers("credit", "region", ["n", "s"]) == {"n": 1, "s": 2}
    migrate_to(store, "0007", down=True)
    with store.engine.connect() as conn:
        found = inspect(conn)
        assert "stage" not in {c["name"] for c in found.get_columns("predictions")}
        assert "group_labels_allowed" not in {c["name"] for c in found.get_columns("models")}
        assert "split_groups" not in found.get_table_names()
    assert store.count_predictions() == 4
    store.migrate()
    assert store.group_numbers("credit", "region", ["s"]) == {"s": 1}, "numbers start again"

"""The store keeps what the scorer adds: a model's reference columns and every part of a
window's scores, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from monitor.store import Store
from tests.conftest import credit_model


def test_a_models_reference_columns_are_kept(store: Store) -> None:
    model = credit_model().model_copy(
        update={"prediction_column": "served", "score_column": "p", "target_column": "y"}
    )
    assert store.put_model(model) is True
    assert store.get_model("credit") == model
    assert store.put_model(model) is False, "the same description again changes nothing"
    other = credit_model("other")
    store.put_model(other)
    got = store.get_model("other")
    assert (got.prediction_column, got.score_column, got.target_column) == (
        "prediction",
        "score",
        "target",
    )

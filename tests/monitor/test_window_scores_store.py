"""The store keeps what the scorer adds: a model's reference columns and every part of a
window's scores, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd

from monitor.core.windows import Window
from monitor.reference import profile_reference, to_parquet
from monitor.score.drift.correlation import PairCorrelationDrift
from monitor.score.results import DEFINITION, WindowResult
from monitor.score.scorer import WindowScorer
from monitor.score.scores import (
    CorrelationPair,
    CorrelationSummary,
    NotScored,
    OutputDrift,
    WindowScores,
)
from monitor.store import Store
from tests.conftest import credit_model

T0, W = 1_700_000_040.0, 60


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


def test_every_part_of_a_windows_scores_round_trips(store: Store) -> None:
    rng = np.random.default_rng(12)
    model = credit_model()
    reference = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, 600),
            "age": rng.integers(18, 80, 600).astype(float),
            "region": rng.choice(["north", "south"], 600),
            "has_card": rng.random(600) < 0.4,
            "prediction": rng.integers(0, 2, 600),
            "score": rng.random(600),
            "target": rng.integers(0, 2, 600),
        }
    )
    store.put_model(model)
    store.add_reference(
        "credit",
        "v1",
        rows=len(reference),
        source_format="parquet",
        data=to_parquet(reference),
        profile=profile_reference(reference, model),
    )
    n = 200
    store.insert_predictions(
        [
            {
                "event_id": f"ev-{i}",
                "model": "credit",
                "model_version": "v1",
                "ts": T0 + i * 0.25,
                "received_at": T0 + 100,
                "features": {
                    "income": float(rng.lognormal(10, 0.6)),
                    "age": float(rng.integers(18, 90)),
                    "region": str(rng.choice(["north", "south", "west"])),
                    "has_card": bool(rng.random() < 0.5),
                },
                "outputs": {"predicted_class": int(i % 2), "score": float(rng.random())},
                "latency_seconds": 0.01,
                "trace_id": None,
                "parent_span_id": None,
                "variant": None,
                "stage": None,
                "segment": {},
                "correlation_key": None,
            }
            for i in range(n)
        ]
    )
    store.insert_labels(
        [
            {
                "event_id": f"lab-{i}",
                "model": "credit",
                "prediction_id": f"ev-{i}",
                "correlation_key": None,
                "value": int(rng.integers(0, 2)),
                "ts": T0 + 500,
                "received_at": T0 + 500,
            }
            for i in range(0, n, 2)
        ]
    )
    scorer = WindowScorer(store, window_seconds=W, min_window_events=30)
    result = scorer.score(model, Window.of_time("credit", "v1", T0, W))
    scores = result.scores
    parts = {
        "accuracy": scores.accuracy,
        "quality": scores.quality,
        "prediction_drift": scores.prediction_drift,
        "label_drift": scores.label_drift,
        "correlation": scores.correlation,
        "multivariate": scores.multivariate,
        "predictions": scores.predictions,
    }
    assert all(part is not None for part in parts.values()), scores.not_scored
    assert scores.not_scored == ()
    store.save_window_result(result.as_record())
    [stored] = [WindowResult.from_record(r) for r in store.window_results("credit", "v1")]
    assert stored.scores == scores
    assert stored == result
    assert WindowScores.from_json(orjson.loads(orjson.dumps(scores.as_json()))) == scores


def test_undefined_numbers_and_missing_parts_round_trip(store: Store) -> None:
    pair = PairCorrelationDrift("x", "y", 0.5, math.nan, None, None, None, False)
    correlation = CorrelationSummary(
        method="pearson",
        fdr=0.05,
        min_difference=0.1,
        reference_count=100,
        current_count=50,
        sampled=True,
        tested_pairs=0,
        drifted_pairs=0,
        change_max=None,
        pairs=(CorrelationPair.of(pair),),
        features_cut=("z",),
        pairs_cut=3,
    )
    scores = WindowScores(
        parts={"correlation": correlation},
        prediction_drift=(OutputDrift("class", "chisquare", 0.0, 0.05, True, 40, None),),
        not_scored=(NotScored("accuracy", "no prediction of the window has a label"),),
    )
    result = WindowResult(
        "credit",
        "v1",
        T0,
        T0 + W,
        DEFINITION,
        50,
        0,
        None,
        None,
        None,
        None,
        1,
        (),
        1.0,
        scores=scores,
    )
    store.save_window_result(result.as_record())
    [stored] = [WindowResult.from_record(r) for r in store.window_results("credit", "v1")]
    assert stored.scores.as_json() == scores.as_json()
    [got] = stored.scores.correlation.pairs  # type: ignore[union-attr]
    assert got.current_r is None and got.reference_r == 0.5, "an undefined r is None"
    assert stored.scores.reason("accuracy") == "no prediction of the window has a label"
    assert stored.scores.quality is None and stored.scores.accuracy is None

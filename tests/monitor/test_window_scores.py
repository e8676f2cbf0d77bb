"""Every part of a window's scores through ingest, the store, the scorer, /metrics and the
API, against independent oracles: scikit-learn for accuracy, scipy for prediction and
label drift, pandas counts for data quality, and a correlation flip that only the joint
tests see."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from sklearn import metrics

from collectors.contract import ModelDescription
from monitor.api import create_app
from monitor.core.profile import FeatureProfile, ReferenceProfile
from monitor.score.fitted import window_quality
from monitor.score.quality import DataQuality
from monitor.score.scores import SCORE_QUANTILES
from monitor.settings import MonitorSettings
from tests.monitor.test_multivariate import rematched
from tests.monitor.test_multivariate import sample as correlated
from tests.monitor.test_scoring import T0, Clock, W

TOL = {"rel": 1e-12, "abs": 1e-12}
FEATURES = [
    {"name": "income", "type": "numeric"},
    {"name": "age", "type": "numeric"},
    {"name": "region", "type": "categorical"},
    {"name": "has_card", "type": "boolean"},
]
BINARY = ModelDescription.model_validate(
    {"name": "churn", "task": "binary", "positive_class": 1, "features": FEATURES}
)
MULTICLASS = ModelDescription.model_validate(
    {"name": "species", "task": "multiclass", "features": FEATURES}
)
REGRESSION = ModelDescription.model_validate(
    {"name": "price", "task": "regression", "features": FEATURES}
)
CLASSES = ["a", "b", "c"]


def inputs(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "has_card": rng.random(n) < 0.4,
        }
    )


@contextlib.contextmanager
def app(url: str, model: ModelDescription, **settings: Any) -> Iterator[tuple[TestClient, Clock]]:
    clock = Clock(T0 + 1)
    options = {"database_url": url, "window_seconds": W, "min_window_events": 30, **settings}
    with TestClient(create_app(MonitorSettings(**options), clock=clock)) as client:
        response = client.put(f"/v1/models/{model.name}", json=model.model_dump())
        assert response.status_code == 201, response.text
        yield client, clock


def upload(client: TestClient, model: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    response = client.put(
        f"/v1/models/{model}/versions/v1/reference?format=parquet", content=buffer.getvalue()
    )
    assert response.status_code == 201, response.text


def plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def post(
    client: TestClient, model: str, frame: pd.DataFrame, outputs: list[dict[str, Any]]
) -> list[str]:
    events = [
        {
            "event_id": f"{model}-{i}",
            "model": model,
            "model_version": "v1",
            "timestamp": T0 + i * (W - 1) / len(frame),
            "features": {k: plain(v) for k, v in row.items()},
            "outputs": outputs[i],
        }
        for i, row in enumerate(frame.to_dict("records"))
    ]
    response = client.post("/v1/ingest/predictions", content=orjson.dumps({"events": events}))
    assert response.status_code == 200, response.text
    return [e["event_id"] for e in events]


def label(client: TestClient, model: str, ids: list[str], values: list[Any]) -> None:
    labels = [
        {
            "event_id": f"label-{i}",
            "model": model,
            "prediction_id": event_id,
            "value": plain(value),
            "timestamp": T0 + 3600,
        }
        for i, (event_id, value) in enumerate(zip(ids, values, strict=True))
    ]
    response = client.post("/v1/ingest/labels", content=orjson.dumps({"labels": labels}))
    assert response.status_code == 200, response.text


def score_window(client: TestClient, clock: Clock, model: str) -> dict[str, Any]:
    clock.now = T0 + W + 1
    client.app.state.loop.run_once()
    response = client.get(f"/v1/models/{model}/versions/v1/windows/{T0}")
    assert response.status_code == 200, response.text
    window: dict[str, Any] = response.json()
    listed = client.get(f"/v1/models/{model}/versions/v1/windows").json()
    assert [w for w in listed if w["window_start"] == T0] == [window], "one conversion"
    return window


def metric(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one family: labels (without model and version) to value."""
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name:
                labels = {k: v for k, v in s.labels.items() if k not in ("model", "model_version")}
                out[tuple(sorted(labels.items()))] = s.value
    return out


def one(client: TestClient, name: str) -> float:
    [value] = metric(client, name).values()
    return value


def kind_p(ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-proportion z-test's p-value, as Pearson's chi-squared on the 2x2 table."""
    table = [[np.sum(ref), np.sum(~ref)], [np.sum(cur), np.sum(~cur)]]
    return float(stats.chi2_contingency(table, correction=False).pvalue)


# ---------------------------------------------------------------------------- binary


@pytest.fixture
def binary(sqlite_url: str) -> Iterator[tuple[TestClient, Clock]]:
    with app(sqlite_url, BINARY) as opened:
        yield opened


def test_binary_accuracy_and_output_drift_through_the_scorer(binary) -> None:
    client, clock = binary
    rng = np.random.default_rng(31)
    n_ref, n = 800, 600
    reference = inputs(rng, n_ref)
    # Scores on a 0.01 grid: the reference's distinct values are its bins, so the
    # profile's KS statistic is the exact one and its p-value scipy's.
    ref_score = np.round(rng.beta(2, 3, n_ref), 2)
    reference["prediction"] = (ref_score >= 0.5).astype(int)
    reference["score"] = ref_score
    reference["target"] = (rng.random(n_ref) < ref_score).astype(int)
    upload(client, "churn", reference)

    current = inputs(rng, n)
    score = np.round(np.clip(rng.beta(3, 3, n), 0.01, 0.99), 2)  # shifted towards 0.5
    predicted = (score >= 0.5).astype(int)
    outputs = [
        {"predicted_class": int(c), "score": float(s)}
        for c, s in zip(predicted, score, strict=True)
    ]
    ids = post(client, "churn", current, outputs)
    labelled = np.arange(0, n, 3)[:150]
    truth = (rng.random(n) < score).astype(int)
    label(client, "churn", [ids[i] for i in labelled], truth[labelled].tolist())
    window = score_window(client, clock, "churn")

    y, pred, s = truth[labelled], predicted[labelled], score[labelled]
    acc = window["accuracy_metrics"]
    assert acc["task"] == "binary" and acc["rows"] == 150 and acc["labelled"] == 150
    assert acc["label_coverage"] == pytest.approx(150 / n, **TOL)
    expected = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred),
        "recall": metrics.recall_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "roc_auc": metrics.roc_auc_score(y, s),
        "log_loss": metrics.log_loss(y, s),
    }
    for name, value in expected.items():
        assert acc[name] == pytest.approx(value, **TOL), name
    assert window["accuracy"] == pytest.approx(expected["accuracy"], **TOL)
    (tn, fp), (fn, tp) = metrics.confusion_matrix(y, pred)
    cells = {(c["true_class"], c["predicted_class"]): c["count"] for c in acc["confusion"]}
    assert cells == {
        k: v
        for k, v in {
            ("negative", "negative"): tn,
            ("negative", "positive"): fp,
            ("positive", "negative"): fn,
            ("positive", "positive"): tp,
        }.items()
        if v
    }
    for name, family in [
        ("precision", "sidewatch_window_precision_ratio"),
        ("recall", "sidewatch_window_recall_ratio"),
        ("f1", "sidewatch_window_f1_ratio"),
        ("roc_auc", "sidewatch_window_roc_auc_ratio"),
        ("log_loss", "sidewatch_window_log_loss"),
    ]:
        assert one(client, family) == pytest.approx(expected[name], **TOL), family
    assert metric(client, "sidewatch_window_mae") == {}, "no regression metric for a classifier"

    # Prediction drift: the served class by the Z test, the score by KS (800 reference
    # rows: Evidently's choice), both under BH as a family of their own.
    drift = {d["output"]: d for d in window["prediction_drift"]}
    assert {k: d["test"] for k, d in drift.items()} == {"class": "z", "score": "ks"}
    ks = stats.ks_2samp(ref_score, score, method="asymp")
    assert drift["score"]["statistic"] == pytest.approx(ks.statistic, **TOL)
    assert drift["score"]["value"] == pytest.approx(ks.pvalue, rel=1e-9)
    p_class = kind_p(reference["prediction"].to_numpy() == 1, predicted == 1)
    assert drift["class"]["value"] == pytest.approx(p_class, rel=1e-9)
    adjusted = stats.false_discovery_control([p_class, ks.pvalue])
    assert [drift["class"]["adjusted_p_value"], drift["score"]["adjusted_p_value"]] == (
        pytest.approx(adjusted.tolist(), rel=1e-9)
    )
    assert drift["score"]["drifted"] == bool(adjusted[1] <= 0.05)
    for output in ("class", "score"):
        labels = (("output", output), ("test", drift[output]["test"]))
        assert metric(client, "sidewatch_prediction_drift_score")[labels] == pytest.approx(
            drift[output]["value"], **TOL
        )
        assert metric(client, "sidewatch_prediction_drift_threshold")[labels] == 0.05
        assert metric(client, "sidewatch_prediction_drifted")[labels] == float(
            drift[output]["drifted"]
        )

    # Label drift: the window's 150 labels against the reference's targets.
    p_label = kind_p(reference["target"].to_numpy() == 1, y == 1)
    assert window["label_drift"]["test"] == "z" and window["label_drift"]["current_count"] == 150
    assert window["label_drift"]["value"] == pytest.approx(p_label, rel=1e-9)
    assert metric(client, "sidewatch_label_drift_score") == {
        (("test", "z"),): pytest.approx(p_label, rel=1e-9)
    }
    assert metric(client, "sidewatch_label_drift_threshold") == {(("test", "z"),): 0.05}
    assert metric(client, "sidewatch_label_drifted") == {(("test", "z"),): float(p_label <= 0.05)}

    # What was served: the shares of the classes, the score's quantiles.
    served = window["served"]
    assert served["sampled"] is False and served["rows"] == n
    shares = {c["served_class"]: c["ratio"] for c in served["class_ratios"]}
    assert shares == pytest.approx({"positive": predicted.mean(), "negative": 1 - predicted.mean()})
    assert metric(client, "sidewatch_window_predicted_class_ratio") == pytest.approx(
        {(("class", "positive"),): predicted.mean(), (("class", "negative"),): 1 - predicted.mean()}
    )
    expected_q = np.quantile(score, SCORE_QUANTILES)
    assert [q["value"] for q in served["score_quantiles"]] == pytest.approx(expected_q, **TOL)
    assert metric(client, "sidewatch_window_prediction_score") == pytest.approx(
        {(("quantile", f"{q:g}"),): v for q, v in zip(SCORE_QUANTILES, expected_q, strict=True)}
    )
    assert window["definition"].startswith("window-v1;drift-profile-v2;accuracy-v2;quality-v1")


def test_a_reference_without_the_label_column_says_why_label_drift_is_missing(binary) -> None:
    client, clock = binary
    rng = np.random.default_rng(3)
    upload(client, "churn", inputs(rng, 500))  # features only
    ids = post(client, "churn", inputs(rng, 100), [{"predicted_class": 1}] * 100)
    label(client, "churn", ids[:50], [1] * 50)
    window = score_window(client, clock, "churn")
    assert window["label_drift"] is None and window["prediction_drift"] is None
    reasons = {(r["part"], r["reason"]) for r in window["not_scored"]}
    assert ("label_drift", "label: the reference has no column 'target'") in reasons
    assert ("prediction_drift", "class: the reference has no column 'prediction'") in reasons
    assert ("prediction_drift", "score: the reference has no column 'score'") in reasons
    assert metric(client, "sidewatch_label_drift_score") == {}
    assert window["accuracy_metrics"]["accuracy"] == pytest.approx(1.0)


# ------------------------------------------------------------------------ multiclass


def test_multiclass_macro_metrics_and_chi_squared_drift_through_the_scorer(sqlite_url) -> None:
    rng = np.random.default_rng(17)
    n_ref, n = 900, 500
    ref_p = rng.dirichlet([2, 2, 2], n_ref)
    reference = inputs(rng, n_ref)
    reference["prediction"] = np.array(CLASSES)[ref_p.argmax(axis=1)]
    reference["score"] = ref_p.max(axis=1)
    for j, c in enumerate(CLASSES):
        reference[f"score_{c}"] = ref_p[:, j]
    reference["target"] = [rng.choice(CLASSES, p=p) for p in ref_p]
    proba = rng.dirichlet([4, 2, 1], n)  # class a more often served than in the reference
    predicted = np.array(CLASSES)[proba.argmax(axis=1)]
    truth = np.array([rng.choice(CLASSES, p=p) for p in proba])
    outputs = [
        {"predicted_class": str(c), "probabilities": dict(zip(CLASSES, p.tolist(), strict=True))}
        for c, p in zip(predicted, proba, strict=True)
    ]
    with app(sqlite_url, MULTICLASS) as (client, clock):
        upload(client, "species", reference)
        ids = post(client, "species", inputs(rng, n), outputs)
        label(client, "species", ids, truth.tolist())
        window = score_window(client, clock, "species")

        acc = window["accuracy_metrics"]
        assert acc["task"] == "multiclass" and acc["rows"] == n and acc["precision"] is None
        macro = {"average": "macro", "zero_division": 0}
        expected = {
            "accuracy": metrics.accuracy_score(truth, predicted),
            "precision_macro": metrics.precision_score(truth, predicted, **macro),
            "recall_macro": metrics.recall_score(truth, predicted, **macro),
            "f1_macro": metrics.f1_score(truth, predicted, **macro),
            "f1_weighted": metrics.f1_score(truth, predicted, average="weighted"),
            "roc_auc": metrics.roc_auc_score(truth, proba, multi_class="ovr", labels=CLASSES),
            "log_loss": metrics.log_loss(truth, proba, labels=CLASSES),
        }
        for name, value in expected.items():
            assert acc[name] == pytest.approx(value, **TOL), name
        assert one(client, "sidewatch_window_precision_ratio") == pytest.approx(
            expected["precision_macro"], **TOL
        )
        assert one(client, "sidewatch_window_roc_auc_ratio") == pytest.approx(
            expected["roc_auc"], **TOL
        )
        matrix = metrics.confusion_matrix(truth, predicted, labels=CLASSES)
        cells = {(c["true_class"], c["predicted_class"]): c["count"] for c in acc["confusion"]}
        assert cells == {
            (t, p): int(matrix[i, j])
            for i, t in enumerate(CLASSES)
            for j, p in enumerate(CLASSES)
            if matrix[i, j]
        }

        # The served class and the labels by chi-squared against the reference's shares.
        drift = {d["output"]: d for d in window["prediction_drift"]}
        assert set(drift) == {"class", "score", "probability_a", "probability_b", "probability_c"}
        for name, ref_values, cur_values in [
            ("class", reference["prediction"], predicted),
            ("label", reference["target"], truth),
        ]:
            shares = pd.Series(ref_values).value_counts(normalize=True).reindex(CLASSES)
            observed = pd.Series(cur_values).value_counts().reindex(CLASSES).to_numpy()
            oracle = stats.chisquare(observed, shares.to_numpy() * len(cur_values))
            found = window["label_drift"] if name == "label" else drift["class"]
            assert found["test"] == "chisquare"
            assert found["statistic"] == pytest.approx(oracle.statistic, rel=1e-9)
            assert found["value"] == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-300)
        assert drift["class"]["drifted"] is True
        # Continuous scores: the fine bins cannot settle KS, computed from the values.
        ks = stats.ks_2samp(reference["score_a"], proba[:, 0])
        found = drift["probability_a"]
        assert found["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
        assert found["value"] == pytest.approx(ks.pvalue, rel=1e-9)
        assert found["error_bound"] == 0.0
        assert set(metric(client, "sidewatch_prediction_drifted")) == {
            (("output", o), ("test", drift[o]["test"])) for o in drift
        }
        shares = pd.Series(predicted).value_counts(normalize=True)
        assert metric(client, "sidewatch_window_predicted_class_ratio") == pytest.approx(
            {(("class", c),): shares[c] for c in CLASSES}
        )
        assert one(client, "sidewatch_class_series_cut") == 0
        q = np.quantile(proba.max(axis=1), SCORE_QUANTILES)
        assert [x["value"] for x in window["served"]["score_quantiles"]] == pytest.approx(q, **TOL)


# ------------------------------------------------------------------------ regression


def test_regression_metrics_and_value_drift_through_the_scorer(sqlite_url) -> None:
    rng = np.random.default_rng(23)
    n_ref, n = 700, 400
    reference = inputs(rng, n_ref)
    reference["prediction"] = np.round(rng.normal(100, 10, n_ref), 1)
    reference["target"] = reference["prediction"] + rng.normal(0, 5, n_ref)
    value = np.round(rng.normal(104, 10, n), 1)
    value = value[np.isin(value, reference["prediction"])]  # on the reference's values
    n = value.size
    truth = value + rng.normal(0, 8, n)
    with app(sqlite_url, REGRESSION) as (client, clock):
        upload(client, "price", reference)
        ids = post(client, "price", inputs(rng, n), [{"value": float(v)} for v in value])
        label(client, "price", ids, truth.tolist())
        window = score_window(client, clock, "price")

        acc = window["accuracy_metrics"]
        assert acc["task"] == "regression" and acc["rows"] == n and acc["zero_labels"] == 0
        expected = {
            "mae": metrics.mean_absolute_error(truth, value),
            "rmse": metrics.root_mean_squared_error(truth, value),
            "mape": metrics.mean_absolute_percentage_error(truth, value),
            "r2": metrics.r2_score(truth, value),
        }
        for name, v in expected.items():
            assert acc[name] == pytest.approx(v, rel=1e-10), name
        for name, family in [
            ("mae", "sidewatch_window_mae"),
            ("rmse", "sidewatch_window_rmse"),
            ("mape", "sidewatch_window_mape_ratio"),
            ("r2", "sidewatch_window_r2"),
        ]:
            assert one(client, family) == pytest.approx(expected[name], rel=1e-10), family
        assert metric(client, "sidewatch_window_precision_ratio") == {}
        assert window["accuracy"] is None

        [drift] = window["prediction_drift"]
        # The profile cannot give scipy's exact p-value (Evidently's): computed from values.
        ks = stats.ks_2samp(reference["prediction"], value)
        assert (drift["output"], drift["test"]) == ("value", "ks")
        assert drift["value"] == pytest.approx(ks.pvalue, rel=1e-9)
        assert drift["error_bound"] == 0.0
        assert window["label_drift"]["test"] == "ks"
        q = np.quantile(value, SCORE_QUANTILES)
        assert [x["value"] for x in window["served"]["score_quantiles"]] == pytest.approx(q, **TOL)
        assert window["served"]["class_ratios"] == []
        assert metric(client, "sidewatch_window_predicted_class_ratio") == {}


# ---------------------------------------------------------------------- data quality


def quality_frames(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = inputs(rng, 1000)
    current = inputs(rng, n)
    # Nothing below the reference's minimum income: its out-of-range share is exact from
    # the profile (the last bin counts the values above the maximum).
    current["income"] = np.maximum(current["income"], reference["income"].min())
    current.loc[rng.random(n) < 0.1, "income"] = None
    high = rng.random(n) < 0.15
    current.loc[high, "income"] = reference["income"].max() * (1 + rng.random(high.sum()))
    current.loc[rng.random(n) < 0.15, "age"] = 5.0  # below the reference's 18
    current.loc[rng.random(n) < 0.2, "age"] = None
    new = rng.random(n) < 0.12
    current.loc[new, "region"] = rng.choice(["west", "central"], new.sum())
    current.loc[rng.random(n) < 0.05, "region"] = None
    return reference, current


def expected_quality(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in ("income", "age"):
        values = current[name].dropna()
        low, high = reference[name].min(), reference[name].max()
        out[name] = {
            "missing_ratio": current[name].isna().mean(),
            "out_of_range_ratio": ((values < low) | (values > high)).mean(),
        }
    region = current["region"].dropna()
    new = ~region.isin(set(reference["region"]))
    out["region"] = {
        "missing_ratio": current["region"].isna().mean(),
        "new_category_ratio": new.mean(),
        "new_categories": region[new].nunique(),
    }
    out["has_card"] = {"missing_ratio": 0.0}
    return out


@pytest.mark.parametrize("sample_rows", [5_000, 100])
def test_data_quality_equals_a_direct_count(sqlite_url, sample_rows: int) -> None:
    rng = np.random.default_rng(41)
    n = 400
    reference, current = quality_frames(rng, n)
    with app(sqlite_url, BINARY, score_sample_rows=sample_rows) as (client, clock):
        upload(client, "churn", reference)
        post(client, "churn", current, [{"predicted_class": 1}] * n)
        window = score_window(client, clock, "churn")
        quality = window["quality"]
        assert (quality["rows"], quality["sample_rows"]) == (n, min(n, sample_rows))
        assert quality["sampled"] == (sample_rows < n)
        found = {f["feature"]: f for f in quality["features"]}
        expected = expected_quality(reference, current)
        for name, fields in expected.items():
            assert found[name]["type_errors_ratio"] == 0.0
            for field, value in fields.items():
                if field in found[name]["from_sample"]:
                    continue
                assert found[name][field] == pytest.approx(value, **TOL), (name, field)
        # The profiles give the missing shares, income's out-of-range share (nothing below
        # its minimum) and region's new-category share exactly, sampled or not; age has
        # values below its minimum, which only the rows tell.
        if sample_rows < n:
            assert found["income"]["from_sample"] == ["type_errors_ratio"]
            assert found["age"]["from_sample"] == ["out_of_range_ratio", "type_errors_ratio"]
            assert found["region"]["from_sample"] == ["new_categories", "type_errors_ratio"]
            assert 1 <= found["region"]["new_categories"] <= 2
            # A random sample of about 80 ages (the database's random()): within five
            # standard errors of the whole window's share, which is about 0.15.
            share = expected["age"]["out_of_range_ratio"]
            error = 5 * np.sqrt(share * (1 - share) / (0.8 * sample_rows))
            assert 0 < found["age"]["out_of_range_ratio"] == pytest.approx(share, abs=error)
        else:
            assert all(not f["from_sample"] for f in found.values())
            assert {e["category"] for e in found["region"]["examples"]} == {"west", "central"}
        assert found["has_card"]["out_of_range_ratio"] is None
        assert metric(client, "sidewatch_feature_missing_ratio") == pytest.approx(
            {(("feature", k),): found[k]["missing_ratio"] for k in found}, **TOL
        )
        assert metric(client, "sidewatch_feature_out_of_range_ratio") == pytest.approx(
            {(("feature", k),): found[k]["out_of_range_ratio"] for k in ("income", "age")}, **TOL
        )
        assert metric(client, "sidewatch_feature_new_categories") == {
            (("feature", "region"),): found["region"]["new_categories"]
        }
        assert set(metric(client, "sidewatch_feature_type_errors_ratio")) == {
            (("feature", k),) for k in found
        }


def test_quality_counts_type_errors_in_the_rows_and_trusts_the_profiles() -> None:
    """The merge of exact profile counts and row counts, on rows ingest would refuse."""
    model = BINARY
    rng = np.random.default_rng(5)
    reference = inputs(rng, 300)
    rows = [
        {"income": "a lot", "age": 30.0, "region": "north", "has_card": True},
        {"income": 50_000.0, "age": None, "region": 2.5, "has_card": "yes"},
        {"income": 1e9, "age": 40.0, "region": "mars", "has_card": False},
        {"age": 50.0, "region": "south", "has_card": True},
    ]
    fitted = DataQuality().fit(model, {c: reference[c].tolist() for c in reference})
    result = window_quality(model, fitted, None, None, rows, total=4)
    by = {f.feature: f for f in result.features}
    assert by["income"].type_errors_ratio == 0.25 and by["income"].missing_ratio == 0.25
    assert by["income"].out_of_range_ratio == 0.5  # 1e9 of the two valid numbers
    assert by["region"].type_errors_ratio == 0.25 and by["region"].new_categories == 1
    assert by["has_card"].type_errors_ratio == 0.25
    assert not result.sampled and all(not f.from_sample for f in result.features)
    # With profiles of all 40 rows, the missing share is theirs (0.1), not the rows' (0.25).
    profile = ReferenceProfile.build(
        {c: (s["type"], reference[c].to_numpy()) for c, s in zip(reference, FEATURES, strict=True)},
        300,
    )
    window = {
        name: FeatureProfile.of([None] * 4 + reference[name].tolist()[:36], f.kind, f.bins)
        for name, f in profile.features.items()
    }
    sampled = window_quality(model, fitted, profile, window, rows, total=40)
    assert sampled.sampled and sampled.feature("age").missing_ratio == 0.1
    assert sampled.feature("income").out_of_range_ratio == 0.0  # the profile: none out
    assert "missing_ratio" not in sampled.feature("age").from_sample


# ----------------------------------------------------------------- correlation flip


@pytest.mark.parametrize("method", ["pca_reconstruction", "domain_classifier"])
def test_a_flipped_correlation_through_the_store_and_scorer(sqlite_url, method: str) -> None:
    rng = np.random.default_rng(7)
    reference = correlated(rng, 0.8)
    flipped = rematched(reference, -0.8, rng)
    names = list(reference)
    model = ModelDescription.model_validate(
        {
            "name": "joint",
            "task": "regression",
            "features": [{"name": n, "type": "numeric"} for n in names],
        }
    )
    with app(sqlite_url, model, multivariate_method=method) as (client, clock):
        upload(client, "joint", pd.DataFrame(reference))
        post(client, "joint", pd.DataFrame(flipped), [{"value": 1.0}] * len(flipped["x"]))
        window = score_window(client, clock, "joint")
        # Each feature holds exactly the reference's values: no univariate drift at all.
        assert {d["feature"] for d in window["drift"]} == set(names)
        assert not any(d["drifted"] for d in window["drift"])
        assert all(d["statistic"] == 0 for d in window["drift"])
        correlation = window["correlation"]
        assert correlation["tested_pairs"] == len(names) * (len(names) - 1) // 2
        assert correlation["drifted_pairs"] == 1
        [pair] = [p for p in correlation["pairs"] if p["drifted"]]
        assert (pair["feature_a"], pair["feature_b"]) == ("x", "y")
        r_now = stats.pearsonr(flipped["x"], flipped["y"]).statistic
        assert pair["current_r"] == pytest.approx(r_now, rel=1e-9)
        assert pair["reference_r"] == pytest.approx(
            stats.pearsonr(reference["x"], reference["y"]).statistic, rel=1e-9
        )
        assert correlation["change_max"] == pytest.approx(abs(r_now - pair["reference_r"]))
        multivariate = window["multivariate"]
        assert multivariate["method"] == method and multivariate["drifted"] is True
        assert multivariate["statistic"] > multivariate["threshold"]

        assert metric(client, "sidewatch_feature_drifted") == {
            (("feature", n), ("test", "ks")): 0.0 for n in names
        }
        assert one(client, "sidewatch_correlation_drifted_pairs") == 1
        assert one(client, "sidewatch_correlation_tested_pairs") == 45
        assert one(client, "sidewatch_correlation_change_max") == pytest.approx(
            correlation["change_max"], **TOL
        )
        assert metric(client, "sidewatch_multivariate_drifted") == {(("method", method),): 1.0}
        assert metric(client, "sidewatch_multivariate_drift_score") == {
            (("method", method),): pytest.approx(multivariate["statistic"], **TOL)
        }
        assert metric(client, "sidewatch_multivariate_drift_threshold") == {
            (("method", method),): pytest.approx(multivariate["threshold"], **TOL)
        }


def test_an_unchanged_window_fires_no_joint_drift(sqlite_url) -> None:
    rng = np.random.default_rng(8)
    reference, same = correlated(rng, 0.8), correlated(rng, 0.8)
    model = ModelDescription.model_validate(
        {
            "name": "joint",
            "task": "regression",
            "features": [{"name": n, "type": "numeric"} for n in reference],
        }
    )
    with app(sqlite_url, model) as (client, clock):
        upload(client, "joint", pd.DataFrame(reference))
        post(client, "joint", pd.DataFrame(same), [{"value": 1.0}] * len(same["x"]))
        window = score_window(client, clock, "joint")
        assert window["correlation"]["drifted_pairs"] == 0
        assert window["multivariate"]["drifted"] is False
        assert one(client, "sidewatch_multivariate_drifted") == 0.0


def test_the_public_names_are_the_intended_ones() -> None:
    import monitor.export.scores as export
    import monitor.score.fitted as fitted
    import monitor.score.scores as scores

    assert sorted(fitted.__all__) == sorted(
        [
            "PROBABILITY", "FittedReference", "MultivariateMethod", "ScoringOptions",
            "all_output_profiles", "all_output_values", "fit_reference", "label_value",
            "numeric_columns", "output_profiles", "output_values", "prediction_summary",
            "served_class", "window_quality",
        ]
    )  # fmt: skip
    assert sorted(scores.__all__) == sorted(
        [
            "MAX_CLASS_SERIES", "MAX_LISTED_PAIRS", "SCORE_QUANTILES", "ClassRatio",
            "CorrelationSummary", "FeatureQualityScore", "NotScored", "OutputDrift",
            "PredictionSummary", "ScorePart", "ScoreQuantile", "WindowQuality", "WindowScores",
            "finite_or_none",
        ]
    )  # fmt: skip
    assert sorted(export.__all__) == ["ScoreFamilies", "all_features", "named_features"]
    for module in (fitted, scores, export):
        assert all(hasattr(module, name) for name in module.__all__)

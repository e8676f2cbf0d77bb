"""Accuracy per window against scikit-learn's metrics on random data, merging, and the
cases where a metric is undefined."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics

from collectors.contract import ModelDescription
from monitor.score.accuracy import (
    MAX_AUC_CLASSES,
    NEGATIVE,
    OTHER_CLASSES,
    POSITIVE,
    ClassificationAccuracy,
    ClassificationState,
    ConfusionCell,
    RegressionAccuracy,
    RegressionState,
    accuracy_from_state,
    class_key,
    classification_rows,
    roc_auc,
    score_accuracy,
    score_classification,
    score_regression,
)

FEATURES = [{"name": "x", "type": "numeric"}]
BINARY = ModelDescription(name="m", task="binary", positive_class=1, features=FEATURES)
MULTICLASS = ModelDescription(name="m", task="multiclass", features=FEATURES)
REGRESSION = ModelDescription(name="m", task="regression", features=FEATURES)
TOL = {"rel": 1e-12, "abs": 1e-12}


def approx_or_none(ours: float | None, theirs: float) -> None:
    if math.isnan(theirs):
        assert ours is None
    else:
        assert ours == pytest.approx(theirs, **TOL)


# ------------------------------------------------------------------------------ binary


@st.composite
def binary_windows(draw: Any) -> tuple[list[int], list[int], list[float]]:
    n = draw(st.integers(1, 80))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    pred = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    # Scores on a coarse grid so that ties occur; 0 and 1 test the log-loss clip.
    score = draw(st.lists(st.integers(0, 20).map(lambda i: i / 20), min_size=n, max_size=n))
    return y, pred, score


@settings(max_examples=200, deadline=None)
@given(window=binary_windows())
def test_binary_metrics_equal_scikit_learns(window) -> None:
    y, pred, score = window
    labelled = [({"predicted_class": p, "score": s}, t) for t, p, s in zip(*window, strict=True)]
    result = score_classification(BINARY, labelled, predictions=2 * len(y))
    assert result.rows == result.labelled == len(y)
    assert result.label_coverage == 0.5
    assert result.accuracy == pytest.approx(metrics.accuracy_score(y, pred), **TOL)
    nan = np.nan
    approx_or_none(result.precision, metrics.precision_score(y, pred, zero_division=nan))
    approx_or_none(result.recall, metrics.recall_score(y, pred, zero_division=nan))
    approx_or_none(result.f1, metrics.f1_score(y, pred, zero_division=nan))
    if len(set(y)) == 2:
        assert result.roc_auc == pytest.approx(metrics.roc_auc_score(y, score), **TOL)
    else:
        assert result.roc_auc is None
    assert result.roc_auc_rows == len(y)
    expected_loss = metrics.log_loss(y, y_proba=score, labels=[0, 1])
    assert result.log_loss == pytest.approx(expected_loss, **TOL)
    tn, fp, fn, tp = metrics.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    counts = {(c.true_class, c.predicted_class): c.count for c in result.confusion}
    assert counts == {
        key: n
        for key, n in {
            (NEGATIVE, NEGATIVE): tn,
            (NEGATIVE, POSITIVE): fp,
            (POSITIVE, NEGATIVE): fn,
            (POSITIVE, POSITIVE): tp,
        }.items()
        if n
    }


def test_binary_served_class_comes_from_probabilities_or_the_score_threshold() -> None:
    labelled = [
        ({"probabilities": {"0": 0.3, "1": 0.7}}, 1),  # served 1, right
        ({"score": 0.5}, 0),  # at the threshold: served positive, wrong
        ({"score": 0.2}, "0"),  # served negative, right
        ({}, 1),  # served nothing: out of the class metrics
    ]
    result = score_classification(BINARY, labelled, predictions=4)
    assert (result.rows, result.labelled, result.label_coverage) == (3, 4, 1.0)
    assert result.accuracy == pytest.approx(2 / 3)
    assert (result.precision, result.recall) == (0.5, 1.0)
    # The AUC ranks the score, or the positive probability where no score was served.
    assert result.roc_auc_rows == 3
    assert result.roc_auc == metrics.roc_auc_score([1, 0, 0], [0.7, 0.5, 0.2])
    assert result.log_loss == pytest.approx(-(math.log(0.7) + math.log(0.5) + math.log(0.8)) / 3)


def test_a_score_that_is_not_a_probability_ranks_but_has_no_log_loss() -> None:
    labelled = [({"predicted_class": 1, "score": 3.2}, 1), ({"predicted_class": 0, "score": -1}, 0)]
    result = score_classification(BINARY, labelled, predictions=2)
    assert (result.roc_auc, result.log_loss, result.log_loss_rows) == (1.0, None, 0)


def test_binary_undefined_metrics_are_none() -> None:
    all_negative = [({"predicted_class": 0, "score": 0.1}, 0)] * 5
    result = score_classification(BINARY, all_negative, predictions=5)
    assert result.accuracy == 1.0
    assert (result.precision, result.recall, result.f1, result.roc_auc) == (None,) * 4
    nothing = score_classification(BINARY, [], predictions=0)
    assert (nothing.accuracy, nothing.label_coverage, nothing.log_loss) == (None, None, None)
    assert nothing.confusion == ()


def test_classes_are_compared_by_their_spelling() -> None:
    assert [class_key(v) for v in (True, False, 1, 1.0, 2.5, "a", "1")] == [
        "1",
        "0",
        "1",
        "1",
        "2.5",
        "a",
        "1",
    ]
    rows = classification_rows(BINARY, [({"predicted_class": "1"}, True), ({"score": 0.9}, 1.0)])
    assert rows.y_true == (POSITIVE, POSITIVE) and rows.y_pred == (POSITIVE, POSITIVE)


# -------------------------------------------------------------------------- multiclass


@st.composite
def multiclass_windows(draw: Any) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    k = draw(st.integers(3, 6))
    classes = [f"c{i}" for i in range(k)]
    n = draw(st.integers(1, 80))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = [classes[i] for i in draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))]
    pred = [classes[i] for i in draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))]
    proba = rng.dirichlet(np.ones(k), size=n)
    if draw(st.booleans()):  # coarse probabilities: ties across rows
        proba = np.round(proba, 1)
        proba[:, -1] = 1 - proba[:, :-1].sum(axis=1)
        proba = np.clip(proba, 0, 1)
        proba /= proba.sum(axis=1, keepdims=True)
    return y, pred, proba, classes


@settings(max_examples=200, deadline=None)
@given(window=multiclass_windows())
def test_multiclass_metrics_equal_scikit_learns(window) -> None:
    y, pred, proba, classes = window
    labelled = [
        ({"predicted_class": p, "probabilities": dict(zip(classes, row, strict=True))}, t)
        for t, p, row in zip(y, pred, proba.tolist(), strict=True)
    ]
    result = score_classification(MULTICLASS, labelled, predictions=len(y))
    assert result.accuracy == pytest.approx(metrics.accuracy_score(y, pred), **TOL)
    assert (result.precision, result.recall, result.f1) == (None, None, None)
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            y, pred, average=average, zero_division=0
        )
        assert getattr(result, f"precision_{average}") == pytest.approx(p, **TOL)
        assert getattr(result, f"recall_{average}") == pytest.approx(r, **TOL)
        assert getattr(result, f"f1_{average}") == pytest.approx(f, **TOL)
    expected_loss = metrics.log_loss(y, y_proba=proba, labels=classes)
    assert result.log_loss == pytest.approx(expected_loss, **TOL)
    if set(y) == set(classes):
        for average, ours in (("macro", result.roc_auc), ("weighted", result.roc_auc_weighted)):
            theirs = metrics.roc_auc_score(y, proba, multi_class="ovr", average=average)
            assert ours == pytest.approx(theirs, **TOL)
    # Whatever classes occur, each class's one-vs-rest AUC is scikit-learn's binary AUC.
    present = [c for c in classes if c in y]
    if len(present) >= 2:
        per_class = [
            metrics.roc_auc_score([t == c for t in y], proba[:, classes.index(c)]) for c in present
        ]
        assert result.roc_auc == pytest.approx(np.mean(per_class), **TOL)
    else:
        assert result.roc_auc is None
    matrix = metrics.confusion_matrix(y, pred, labels=classes)
    counts = {(c.true_class, c.predicted_class): c.count for c in result.confusion}
    assert counts == {
        (classes[i], classes[j]): matrix[i, j] for i, j in zip(*np.nonzero(matrix), strict=True)
    }


def test_a_true_class_missing_from_the_probabilities_has_probability_zero() -> None:
    labelled = [
        ({"probabilities": {"a": 0.6, "b": 0.4}}, "c"),
        ({"probabilities": {"a": 1.0}}, "a"),
    ]
    result = score_classification(MULTICLASS, labelled, predictions=2)
    theirs = metrics.log_loss(
        ["c", "a"], y_proba=[[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]], labels=["a", "b", "c"]
    )
    assert result.log_loss == pytest.approx(theirs, rel=1e-12)
    assert result.accuracy == 0.5  # served by the highest probability: "a" both times


def test_confusion_counts_name_at_most_max_classes() -> None:
    # 30 classes, class i labelled and served i + 1 times (class c29 most often).
    labelled = [
        ({"predicted_class": f"c{i:02d}"}, f"c{i:02d}") for i in range(30) for _ in range(i + 1)
    ]
    labelled.append(({"predicted_class": "c00"}, "c29"))
    result = score_classification(MULTICLASS, labelled, predictions=len(labelled), max_classes=5)
    assert result.classes_cut == 25
    named = {c for cell in result.confusion for c in (cell.true_class, cell.predicted_class)}
    assert named == {"c26", "c27", "c28", "c29", OTHER_CLASSES}
    assert ConfusionCell("c29", OTHER_CLASSES, 1) in result.confusion
    assert ConfusionCell(OTHER_CLASSES, OTHER_CLASSES, sum(range(1, 27))) in result.confusion
    assert sum(c.count for c in result.confusion) == result.rows == len(labelled)
    assert result.accuracy == pytest.approx((len(labelled) - 1) / len(labelled))  # full counts
    with pytest.raises(ValueError, match="max_classes"):
        score_classification(MULTICLASS, labelled, predictions=1, max_classes=1)


def test_multiclass_auc_is_left_out_beyond_its_class_bound() -> None:
    def window(classes: int) -> list[tuple[dict[str, Any], str]]:
        names = [f"k{i}" for i in range(classes)]
        return [({"probabilities": {c: 1 / classes for c in names}}, c) for c in names * 2]

    at_bound = score_classification(MULTICLASS, window(MAX_AUC_CLASSES), predictions=1)
    assert at_bound.roc_auc == 0.5  # every probability equal: ties all round
    beyond = score_classification(MULTICLASS, window(MAX_AUC_CLASSES + 1), predictions=1)
    assert (beyond.roc_auc, beyond.roc_auc_weighted) == (None, None)
    assert beyond.log_loss == pytest.approx(math.log(MAX_AUC_CLASSES + 1))


# -------------------------------------------------------------------------- regression

finite = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3))


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.one_of(finite, st.just(0.0)), finite), min_size=1, max_size=80))
def test_regression_metrics_equal_scikit_learns(pairs) -> None:
    y = np.array([t for t, _ in pairs])
    f = np.array([p for _, p in pairs])
    labelled = [({"value": p}, t) for t, p in pairs]
    result = score_regression(labelled, predictions=len(pairs) + 1)
    assert result.rows == len(pairs)
    assert result.mae == pytest.approx(metrics.mean_absolute_error(y, f), **TOL)
    assert result.rmse == pytest.approx(metrics.root_mean_squared_error(y, f), **TOL)
    nonzero = y != 0
    assert result.zero_labels == int((~nonzero).sum())
    if nonzero.any():
        theirs = metrics.mean_absolute_percentage_error(y[nonzero], f[nonzero])
        assert result.mape == pytest.approx(theirs, **TOL)
    else:
        assert result.mape is None
    if len(y) >= 2 and np.ptp(y) > 0:
        theirs = metrics.r2_score(y, f)
        assert result.r2 == pytest.approx(theirs, rel=1e-12, abs=1e-12 * max(1, abs(theirs)))
    else:
        assert result.r2 is None


def test_mape_leaves_zero_labels_out_and_says_how_many() -> None:
    result = score_regression([({"value": 1.0}, 0), ({"value": 3.0}, 2.0)], predictions=2)
    assert (result.mape, result.zero_labels) == (0.5, 1)
    assert score_regression([({"value": 1.0}, 0.0)], predictions=1).mape is None


def test_regression_rows_without_numbers_are_left_out() -> None:
    labelled = [({"value": 2.0}, "3.5"), ({"value": 1.0}, "n/a"), ({}, 1.0), ({"value": 1.0}, True)]
    result = score_regression(labelled, predictions=8)
    assert (result.rows, result.labelled, result.label_coverage) == (2, 4, 0.5)
    assert result.mae == pytest.approx(metrics.mean_absolute_error([3.5, 1.0], [2.0, 1.0]))
    one = score_regression([({"value": 2.0}, 1.0)], predictions=1)
    assert (one.mae, one.r2) == (1.0, None)
    constant = score_regression([({"value": 2.0}, 1.0), ({"value": 0.0}, 1.0)], predictions=2)
    assert constant.r2 is None
    with pytest.raises(ValueError, match="finite"):
        RegressionState.of([1.0], [math.inf])


def test_score_accuracy_dispatches_on_the_task() -> None:
    assert isinstance(score_accuracy(REGRESSION, [], predictions=0), RegressionAccuracy)
    assert isinstance(score_accuracy(BINARY, [], predictions=0), ClassificationAccuracy)
    with pytest.raises(ValueError, match="binary or multiclass"):
        classification_rows(REGRESSION, [])


# ----------------------------------------------------------------------------- merging


@settings(max_examples=200, deadline=None)
@given(window=multiclass_windows(), cut=st.floats(0, 1))
def test_classification_states_merge_to_the_whole_windows(window, cut) -> None:
    y, pred, proba, classes = window
    labelled = [
        ({"predicted_class": p, "probabilities": dict(zip(classes, row, strict=True))}, t)
        for t, p, row in zip(y, pred, proba.tolist(), strict=True)
    ]
    k = int(cut * len(labelled))
    parts = [
        ClassificationState.of(classification_rows(MULTICLASS, part), binary=False)
        for part in (labelled[:k], labelled[k:])
    ]
    merged = ClassificationState.zero().merge(parts[0]).merge(parts[1])
    whole = ClassificationState.of(classification_rows(MULTICLASS, labelled), binary=False)
    assert merged.confusion == whole.confusion
    assert merged.log_loss_rows == whole.log_loss_rows
    assert merged.log_loss_sum == pytest.approx(whole.log_loss_sum, rel=1e-12)
    ours = accuracy_from_state("multiclass", merged, predictions=len(y), labelled=len(y))
    direct = score_classification(MULTICLASS, labelled, predictions=len(y))
    assert ours.f1_macro == direct.f1_macro and ours.confusion == direct.confusion


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(finite, finite), min_size=0, max_size=60),
    cuts=st.lists(st.floats(0, 1), max_size=3),
)
def test_regression_states_merge_to_the_whole_windows(pairs, cuts) -> None:
    bounds = sorted({0, len(pairs), *(int(c * len(pairs)) for c in cuts)})
    merged = RegressionState.zero()
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = pairs[lo:hi]
        merged = merged.merge(RegressionState.of([t for t, _ in part], [p for _, p in part]))
    whole = RegressionState.of([t for t, _ in pairs], [p for _, p in pairs])
    assert (merged.rows, merged.zero_labels) == (whole.rows, whole.zero_labels)
    assert (merged.label_min, merged.label_max) == (whole.label_min, whole.label_max)
    scale = max([1.0, *(abs(t) for t, _ in pairs)])
    for name in ("abs_error_sum", "abs_percentage_error_sum", "label_mean"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-12, abs=1e-9)
    assert merged.squared_error_sum == pytest.approx(whole.squared_error_sum, rel=1e-12)
    assert merged.label_m2 == pytest.approx(whole.label_m2, rel=1e-9, abs=1e-9 * scale**2)


# ------------------------------------------------------------------------------ ROC AUC


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.tuples(st.booleans(), st.floats(-5, 5).map(lambda v: round(v, 1))), min_size=1)
)
def test_roc_auc_equals_scikit_learns_with_ties(data) -> None:
    y = [t for t, _ in data]
    s = [v for _, v in data]
    if len(set(y)) < 2:
        assert roc_auc(y, s) is None
    else:
        assert roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), **TOL)


def test_roc_auc_leaves_rows_without_a_score_out() -> None:
    assert roc_auc([True, False, True, False], [0.9, 0.1, math.nan, math.nan]) == 1.0
    assert roc_auc([True, False], [math.nan, 0.2]) is None


def test_the_public_names_are_the_intended_ones() -> None:
    import monitor.score.accuracy as module

    assert sorted(module.__all__) == sorted(
        [
            "DEFAULT_MAX_CLASSES", "DEFAULT_THRESHOLD", "MAX_AUC_CLASSES", "NEGATIVE",
            "OTHER_CLASSES", "POSITIVE",
            "ClassificationAccuracy", "ClassificationRows", "ClassificationState",
            "ConfusionCell", "RegressionAccuracy", "RegressionState", "accuracy_from_json",
            "accuracy_from_state",
            "class_key", "classification_rows", "roc_auc", "score_accuracy",
            "score_classification", "score_regression",
        ]
    )  # fmt: skip
    assert all(hasattr(module, name) for name in module.__all__)


def test_the_stored_form_rebuilds_each_accuracy() -> None:
    import orjson

    from monitor.score.accuracy import accuracy_from_json

    labelled = [({"predicted_class": c, "score": s}, t) for c, s, t in [(1, 0.9, 1), (0, 0.2, 1)]]
    binary = score_accuracy(BINARY, labelled, predictions=3)
    multi = score_accuracy(
        MULTICLASS, [({"probabilities": {"a": 0.7, "b": 0.3}}, "b")] * 2, predictions=2
    )
    regression = score_accuracy(REGRESSION, [({"value": 2.0}, 3.0)] * 2, predictions=4)
    for accuracy in (binary, multi, regression):
        stored = orjson.loads(orjson.dumps(accuracy.as_json()))
        assert accuracy_from_json(stored) == accuracy
    assert isinstance(accuracy_from_json(regression.as_json()), RegressionAccuracy)

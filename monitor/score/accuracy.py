"""Accuracy of one window once labels have arrived.

Stage: score. In: the window's labelled predictions as the store returns them
(``(outputs, label value)`` pairs, see :class:`collectors.contract.Outputs`), the model's
description and the window's prediction count. Out: a frozen
:class:`ClassificationAccuracy` or :class:`RegressionAccuracy`.

Classification (``binary`` and ``multiclass``):

- Classes are compared by :func:`class_key`: booleans are the classes ``1`` and ``0``,
  integral numbers are spelled without a decimal point, anything else by ``str``; so a
  label ``1.0`` matches a served class ``1`` and a probability keyed ``"1"``.
- The served class is ``predicted_class``; failing that, the class with the highest
  probability; failing that (binary only), the positive class when ``score`` reaches the
  threshold (0.5). A row with none of them is left out of the class-based metrics.
- Binary: every class other than the model's positive class counts as negative, so the
  confusion counts are over :data:`POSITIVE` and :data:`NEGATIVE`. Precision is None with
  no predicted positive, recall None with no actual positive, F1 (``2tp / (2tp + fp +
  fn)``) None when both are. ROC AUC ranks ``score`` (or else the positive class's
  probability); log loss uses the positive class's probability (or else ``score`` where
  it lies in ``[0, 1]``). AUC is None unless both classes occur among the rows that have
  a score.
- Multiclass: precision, recall and F1 per class over the classes seen among labels and
  served classes, then macro and weighted (by true support) averages, with a per-class
  value that divides by zero counted as 0 (scikit-learn's ``zero_division=0``). ROC AUC
  is one-vs-rest from ``probabilities`` (a class missing from a row's probabilities
  has probability 0), averaged over the classes whose AUC is defined (macro, and weighted
  by support); with more than :data:`MAX_AUC_CLASSES` label classes in the window it is
  None, which bounds its cost to that many passes over the rows. Log loss is the mean
  of ``-ln p(true class)`` over rows with probabilities, ``p`` clipped to
  ``[eps, 1 - eps]`` as scikit-learn clips it.

Regression: MAE, RMSE, R² over rows with a numeric ``value`` and a numeric label;
R² is None with fewer than 2 rows or constant labels. MAPE is the mean of
``|y - y_hat| / |y|`` over the rows whose label is not 0 (scikit-learn instead divides by
machine epsilon there, which makes one zero label dominate the mean); the number of rows
left out for a zero label is reported, and MAPE is None when every label is 0.

What merges: :class:`ClassificationState` (confusion counts and the log-loss sum) and
:class:`RegressionState` (counts, sums and the labels' mean and squared deviations,
combined by Chan's formula) merge across partitions of a window, exactly for the
counts and up to floating-point rounding for the sums. ROC AUC needs the rows (the
ranks of all scores together), so it does not merge; it is computed from the rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, field_validator

from collectors.contract import ModelDescription

__all__ = [
    "DEFAULT_MAX_CLASSES",
    "DEFAULT_THRESHOLD",
    "MAX_AUC_CLASSES",
    "NEGATIVE",
    "OTHER_CLASSES",
    "POSITIVE",
    "ClassificationAccuracy",
    "ClassificationRows",
    "ClassificationState",
    "ConfusionCell",
    "RegressionAccuracy",
    "RegressionState",
    "accuracy_from_json",
    "accuracy_from_state",
    "class_key",
    "classification_rows",
    "roc_auc",
    "score_accuracy",
    "score_classification",
    "score_regression",
]

POSITIVE: Final = "positive"
"""A binary model's positive class in confusion counts."""
NEGATIVE: Final = "negative"
"""Every other class of a binary model in confusion counts."""
OTHER_CLASSES: Final = "__other__"
"""Where the confusion counts of classes beyond ``max_classes`` are summed."""
DEFAULT_MAX_CLASSES: Final = 20
"""Most classes the reported confusion counts name (their cells are bounded by its square)."""
MAX_AUC_CLASSES: Final = 100
"""Multiclass ROC AUC is left undefined (None) beyond this many label classes."""
DEFAULT_THRESHOLD: Final = 0.5
"""A binary model that served only a score predicted the positive class at or above it."""

_EPS: Final = float(np.finfo(np.float64).eps)

Labelled = Sequence[tuple[Mapping[str, Any], Any]]
"""``(outputs, label value)`` per labelled prediction, as the store returns them."""


def class_key(value: object) -> str:
    """The spelling a class is compared by (see the module docstring)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------- classification


@dataclass(frozen=True, slots=True)
class ClassificationRows:
    """A window's labelled classification rows, columns by row."""

    y_true: tuple[str, ...]
    """The label's class key (for a binary model, :data:`POSITIVE` or :data:`NEGATIVE`)."""
    y_pred: tuple[str | None, ...]
    """The served class key, on the same scale; None where nothing was served."""
    positive_score: npt.NDArray[np.float64]
    """Binary: the score ranked for ROC AUC; NaN where the row has none."""
    positive_probability: npt.NDArray[np.float64]
    """Binary: the positive class's probability for log loss; NaN where none."""
    probabilities: tuple[Mapping[str, float] | None, ...]
    """Multiclass: the served probability per class key, or None."""


def classification_rows(
    model: ModelDescription, labelled: Labelled, *, threshold: float = DEFAULT_THRESHOLD
) -> ClassificationRows:
    """Read the class, score and probabilities that each labelled row served.

    Raises:
        ValueError: ``model`` is a regression model.
    """
    if model.task == "regression":
        raise ValueError("classification_rows needs a binary or multiclass model")
    binary = model.task == "binary"
    positive = class_key(model.positive_class)
    y_true: list[str] = []
    y_pred: list[str | None] = []
    scores: list[float] = []
    probs: list[float] = []
    dists: list[Mapping[str, float] | None] = []
    for outputs, truth in labelled:
        raw = outputs.get("probabilities") or None
        dist = {class_key(k): float(v) for k, v in raw.items()} if raw else None
        served: str | None = None
        if outputs.get("predicted_class") is not None:
            served = class_key(outputs["predicted_class"])
        elif dist:
            served = max(dist, key=dist.__getitem__)
        score = outputs.get("score")
        score = float(score) if score is not None else math.nan
        probability = dist.get(positive, math.nan) if dist else math.nan
        if math.isnan(probability) and 0 <= score <= 1:
            probability = score
        if binary:
            if math.isnan(score):
                score = probability
            if served is None and not math.isnan(score):
                served = positive if score >= threshold else NEGATIVE
            if served is not None:
                served = POSITIVE if served == positive else NEGATIVE
            y_true.append(POSITIVE if class_key(truth) == positive else NEGATIVE)
        else:
            y_true.append(class_key(truth))
        y_pred.append(served)
        scores.append(score)
        probs.append(probability)
        dists.append(dist)
    return ClassificationRows(
        tuple(y_true),
        tuple(y_pred),
        np.array(scores, dtype=np.float64),
        np.array(probs, dtype=np.float64),
        tuple(dists),
    )


@dataclass(frozen=True, slots=True)
class ClassificationState:
    """The mergeable part of classification accuracy: confusion counts and log-loss sum."""

    confusion: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """``(true class, served class)`` to its count; only non-zero cells."""
    log_loss_sum: float = 0.0
    log_loss_rows: int = 0

    @classmethod
    def zero(cls) -> ClassificationState:
        """The state of no rows."""
        return cls()

    @classmethod
    def of(cls, rows: ClassificationRows, *, binary: bool) -> ClassificationState:
        """The state of ``rows``."""
        confusion = Counter(
            (t, p) for t, p in zip(rows.y_true, rows.y_pred, strict=True) if p is not None
        )
        if binary:
            known = ~np.isnan(rows.positive_probability)
            p = rows.positive_probability[known]
            is_positive = np.array([t == POSITIVE for t in rows.y_true], dtype=bool)[known]
            # 1 - p first, then the clip, as scikit-learn does for a 1-D y_proba.
            p_true = np.clip(np.where(is_positive, p, 1.0 - p), _EPS, 1 - _EPS)
        else:
            p_true = np.array(
                [d.get(t, 0.0) for t, d in zip(rows.y_true, rows.probabilities, strict=True) if d],
                dtype=np.float64,
            )
            p_true = np.clip(p_true, _EPS, 1 - _EPS)
        return cls(dict(confusion), float(-np.sum(np.log(p_true))), int(p_true.size))

    def merge(self, other: ClassificationState) -> ClassificationState:
        """The state of both states' rows together."""
        confusion = Counter(self.confusion)
        confusion.update(other.confusion)
        return ClassificationState(
            dict(confusion),
            self.log_loss_sum + other.log_loss_sum,
            self.log_loss_rows + other.log_loss_rows,
        )

    @property
    def rows(self) -> int:
        """Rows in the confusion counts."""
        return sum(self.confusion.values())


@dataclass(frozen=True, slots=True)
class ConfusionCell:
    """How many rows of one true class were served as one class."""

    true_class: str
    predicted_class: str
    count: int


class ClassificationAccuracy(BaseModel):
    """Classification accuracy over one window's labelled predictions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["binary", "multiclass"]
    predictions: int
    labelled: int
    label_coverage: float | None
    """``labelled / predictions``; None without predictions."""
    rows: int
    """Labelled rows with a served class (the class-based metrics' rows)."""
    accuracy: float | None
    precision: float | None
    """Binary: of the positive class. Multiclass: None (see the averages)."""
    recall: float | None
    f1: float | None
    precision_macro: float | None
    recall_macro: float | None
    f1_macro: float | None
    precision_weighted: float | None
    recall_weighted: float | None
    f1_weighted: float | None
    roc_auc: float | None
    """Binary: of the score. Multiclass: one-vs-rest, macro average."""
    roc_auc_weighted: float | None
    """Multiclass one-vs-rest weighted by support; binary: same as ``roc_auc``."""
    roc_auc_rows: int
    log_loss: float | None
    log_loss_rows: int
    confusion: tuple[ConfusionCell, ...]
    """Non-zero cells over at most ``max_classes`` classes (the rest summed under
    :data:`OTHER_CLASSES`)."""
    classes_cut: int
    """Classes summed under :data:`OTHER_CLASSES`."""

    @field_validator("confusion", mode="before")
    @classmethod
    def _cells(cls, value: Any) -> Any:
        # Rows stored before results serialised themselves hold [true, predicted, count].
        return tuple(
            ConfusionCell(str(c[0]), str(c[1]), int(c[2])) if isinstance(c, list | tuple) else c
            for c in value
        )

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClassificationAccuracy:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


def score_classification(
    model: ModelDescription,
    labelled: Labelled,
    *,
    predictions: int,
    threshold: float = DEFAULT_THRESHOLD,
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> ClassificationAccuracy:
    """Classification accuracy of one window.

    Args:
        model: The model (its task and positive class).
        labelled: The window's labelled predictions.
        predictions: All predictions in the window, labelled or not.
        threshold: Binary: the score at which a score-only row served the positive class.
        max_classes: Most classes named in the confusion counts.

    Raises:
        ValueError: A regression model, or ``max_classes < 2``.
    """
    if max_classes < 2:
        raise ValueError("max_classes must be at least 2")
    rows = classification_rows(model, labelled, threshold=threshold)
    binary = model.task == "binary"
    state = ClassificationState.of(rows, binary=binary)
    if binary:
        auc = auc_weighted = roc_auc(
            np.array([t == POSITIVE for t in rows.y_true], dtype=bool), rows.positive_score
        )
        auc_rows = int(np.count_nonzero(~np.isnan(rows.positive_score)))
    else:
        auc, auc_weighted, auc_rows = _ovr_roc_auc(rows)
    return accuracy_from_state(
        model.task,
        state,
        predictions=predictions,
        labelled=len(labelled),
        roc_auc=(auc, auc_weighted, auc_rows),
        max_classes=max_classes,
    )


def accuracy_from_state(
    task: str,
    state: ClassificationState,
    *,
    predictions: int,
    labelled: int,
    roc_auc: tuple[float | None, float | None, int] = (None, None, 0),
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> ClassificationAccuracy:
    """The metrics of a (possibly merged) state; ROC AUC comes from the rows, if at all.

    Args:
        task: ``binary`` or ``multiclass``.
        state: The window's merged state.
        predictions: All predictions in the window.
        labelled: Labelled predictions in the window.
        roc_auc: ``(macro, weighted, rows)`` computed from the rows.
        max_classes: Most classes named in the confusion counts.
    """
    classes = sorted({c for cell in state.confusion for c in cell})
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for (t, p), n in state.confusion.items():
        matrix[index[t], index[p]] += n
    total = int(matrix.sum())
    tp = np.diag(matrix).astype(np.float64)
    true_sum = matrix.sum(axis=1).astype(np.float64)
    pred_sum = matrix.sum(axis=0).astype(np.float64)
    precision = recall = f1 = None
    averages: tuple[float | None, ...] = (None,) * 6
    if total:
        if task == "binary":
            i = index.get(POSITIVE)
            tp_, pos_true, pos_pred = (
                (0.0, 0.0, 0.0) if i is None else (tp[i], true_sum[i], pred_sum[i])
            )
            precision = tp_ / pos_pred if pos_pred else None
            recall = tp_ / pos_true if pos_true else None
            f1 = 2 * tp_ / (pos_true + pos_pred) if pos_true + pos_pred else None
        else:
            averages = _averages(tp, true_sum, pred_sum)
    return ClassificationAccuracy(
        task=task,
        predictions=predictions,
        labelled=labelled,
        label_coverage=labelled / predictions if predictions else None,
        rows=total,
        accuracy=float(tp.sum() / total) if total else None,
        precision=precision,
        recall=recall,
        f1=f1,
        precision_macro=averages[0],
        recall_macro=averages[1],
        f1_macro=averages[2],
        precision_weighted=averages[3],
        recall_weighted=averages[4],
        f1_weighted=averages[5],
        roc_auc=roc_auc[0],
        roc_auc_weighted=roc_auc[1],
        roc_auc_rows=roc_auc[2],
        log_loss=state.log_loss_sum / state.log_loss_rows if state.log_loss_rows else None,
        log_loss_rows=state.log_loss_rows,
        confusion=_bounded_confusion(classes, matrix, max_classes),
        classes_cut=max(0, len(classes) - max_classes),
    )


def _averages(
    tp: npt.NDArray[np.float64],
    true_sum: npt.NDArray[np.float64],
    pred_sum: npt.NDArray[np.float64],
) -> tuple[float | None, ...]:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_sum > 0, tp / pred_sum, 0.0)
        recall = np.where(true_sum > 0, tp / true_sum, 0.0)
        both = true_sum + pred_sum
        f1 = np.where(both > 0, 2 * tp / both, 0.0)
    weights = true_sum / true_sum.sum()
    return (
        float(precision.mean()),
        float(recall.mean()),
        float(f1.mean()),
        float(precision @ weights),
        float(recall @ weights),
        float(f1 @ weights),
    )


def _bounded_confusion(
    classes: list[str], matrix: npt.NDArray[np.int64], max_classes: int
) -> tuple[ConfusionCell, ...]:
    if len(classes) > max_classes:
        support = matrix.sum(axis=0) + matrix.sum(axis=1)
        # Most support first; ties by name, so the choice does not depend on row order.
        ranked = sorted(range(len(classes)), key=lambda i: (-support[i], classes[i]))
        kept = set(ranked[: max_classes - 1])
        names = [classes[i] if i in kept else OTHER_CLASSES for i in range(len(classes))]
    else:
        names = classes
    cells: Counter[tuple[str, str]] = Counter()
    for i, j in zip(*np.nonzero(matrix), strict=True):
        cells[names[i], names[j]] += int(matrix[i, j])
    return tuple(ConfusionCell(t, p, n) for (t, p), n in sorted(cells.items()))


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """Area under the ROC curve: the chance that a positive outranks a negative, ties
    counting half (the Mann-Whitney U over both counts).

    Rows whose score is NaN are left out. None unless both classes remain.

    Args:
        y_true: Whether each row is positive.
        scores: Each row's score.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(s)
    y, s = y[known], s[known]
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ordered = s[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ordered)) + 1))
    ends = np.append(starts[1:], s.size)
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _ovr_roc_auc(rows: ClassificationRows) -> tuple[float | None, float | None, int]:
    used = [i for i, d in enumerate(rows.probabilities) if d]
    if not used:
        return None, None, 0
    y_true = [rows.y_true[i] for i in used]
    dists = [rows.probabilities[i] for i in used]
    support = Counter(y_true)
    if len(support) > MAX_AUC_CLASSES:
        return None, None, len(used)
    aucs: list[float] = []
    weights: list[int] = []
    for cls in sorted(support):
        scores = np.array([d.get(cls, 0.0) for d in dists if d is not None], dtype=np.float64)
        auc = roc_auc(np.array([t == cls for t in y_true], dtype=bool), scores)
        if auc is not None:
            aucs.append(auc)
            weights.append(support[cls])
    if not aucs:
        return None, None, len(used)
    values = np.array(aucs)
    w = np.array(weights, dtype=np.float64)
    return float(values.mean()), float(values @ (w / w.sum())), len(used)


# ------------------------------------------------------------------------- regression


@dataclass(frozen=True, slots=True)
class RegressionState:
    """The mergeable part of regression accuracy."""

    rows: int = 0
    abs_error_sum: float = 0.0
    squared_error_sum: float = 0.0
    abs_percentage_error_sum: float = 0.0
    """Over the rows whose label is not 0."""
    zero_labels: int = 0
    label_mean: float = 0.0
    label_m2: float = 0.0
    """Sum of squared deviations of the labels from their mean."""
    label_min: float = math.inf
    label_max: float = -math.inf
    """The labels' range tells constant labels apart from rounding in ``label_m2``."""

    @classmethod
    def zero(cls) -> RegressionState:
        """The state of no rows."""
        return cls()

    @classmethod
    def of(cls, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> RegressionState:
        """The state of the given labels and predicted values.

        Raises:
            ValueError: The arrays differ in length, or hold a NaN or an infinity.
        """
        y = np.asarray(y_true, dtype=np.float64)
        f = np.asarray(y_pred, dtype=np.float64)
        if y.shape != f.shape or y.ndim != 1:
            raise ValueError("labels and predicted values must be 1-D and of one length")
        if not (np.isfinite(y).all() and np.isfinite(f).all()):
            raise ValueError("labels and predicted values must be finite")
        if y.size == 0:
            return cls()
        error = np.abs(y - f)
        nonzero = y != 0
        mean = float(np.mean(y))
        return cls(
            rows=int(y.size),
            abs_error_sum=float(error.sum()),
            squared_error_sum=float(np.sum((y - f) ** 2)),
            abs_percentage_error_sum=float(np.sum(error[nonzero] / np.abs(y[nonzero]))),
            zero_labels=int(y.size - np.count_nonzero(nonzero)),
            label_mean=mean,
            label_m2=float(np.sum((y - mean) ** 2)),
            label_min=float(y.min()),
            label_max=float(y.max()),
        )

    def merge(self, other: RegressionState) -> RegressionState:
        """The state of both states' rows together (Chan et al. for the labels' spread)."""
        n = self.rows + other.rows
        if not self.rows or not other.rows:
            return self if other.rows == 0 else other
        delta = other.label_mean - self.label_mean
        return RegressionState(
            rows=n,
            abs_error_sum=self.abs_error_sum + other.abs_error_sum,
            squared_error_sum=self.squared_error_sum + other.squared_error_sum,
            abs_percentage_error_sum=self.abs_percentage_error_sum + other.abs_percentage_error_sum,
            zero_labels=self.zero_labels + other.zero_labels,
            label_mean=self.label_mean + delta * other.rows / n,
            label_m2=self.label_m2 + other.label_m2 + delta**2 * self.rows * other.rows / n,
            label_min=min(self.label_min, other.label_min),
            label_max=max(self.label_max, other.label_max),
        )


class RegressionAccuracy(BaseModel):
    """Regression accuracy over one window's labelled predictions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["regression"] = "regression"
    predictions: int
    labelled: int
    label_coverage: float | None
    """``labelled / predictions``; None without predictions."""
    rows: int
    """Labelled rows with a numeric value and a numeric label."""
    mae: float | None
    rmse: float | None
    mape: float | None
    """Over the rows whose label is not 0; None when there are none."""
    zero_labels: int
    """Rows left out of MAPE because their label is 0."""
    r2: float | None
    """None with fewer than 2 rows, or when the labels are constant."""

    @classmethod
    def from_state(
        cls, state: RegressionState, *, predictions: int, labelled: int
    ) -> RegressionAccuracy:
        """The metrics of a (possibly merged) state."""
        n = state.rows
        ape_rows = n - state.zero_labels
        return cls(
            predictions=predictions,
            labelled=labelled,
            label_coverage=labelled / predictions if predictions else None,
            rows=n,
            mae=state.abs_error_sum / n if n else None,
            rmse=math.sqrt(state.squared_error_sum / n) if n else None,
            mape=state.abs_percentage_error_sum / ape_rows if ape_rows else None,
            zero_labels=state.zero_labels,
            r2=1.0 - state.squared_error_sum / state.label_m2
            if n >= 2 and state.label_max > state.label_min
            else None,
        )

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document, with ``task`` to tell it from classification)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegressionAccuracy:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


def accuracy_from_json(data: Mapping[str, Any]) -> ClassificationAccuracy | RegressionAccuracy:
    """Rebuild either accuracy from its ``as_json`` form, by its ``task``."""
    if data["task"] == "regression":
        return RegressionAccuracy.from_json(data)
    return ClassificationAccuracy.from_json(data)


def score_regression(labelled: Labelled, *, predictions: int) -> RegressionAccuracy:
    """Regression accuracy of one window.

    Rows without a served ``value``, or whose label is not a finite number, are left
    out of the metrics (but count as labelled).
    """
    y_true: list[float] = []
    y_pred: list[float] = []
    for outputs, truth in labelled:
        value = outputs.get("value")
        label = _number(truth)
        if value is None or label is None or not math.isfinite(float(value)):
            continue
        y_true.append(label)
        y_pred.append(float(value))
    return RegressionAccuracy.from_state(
        RegressionState.of(y_true, y_pred), predictions=predictions, labelled=len(labelled)
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def score_accuracy(
    model: ModelDescription, labelled: Labelled, *, predictions: int
) -> ClassificationAccuracy | RegressionAccuracy:
    """Accuracy of one window, by the model's task, with the default settings."""
    if model.task == "regression":
        return score_regression(labelled, predictions=predictions)
    return score_classification(model, labelled, predictions=predictions)

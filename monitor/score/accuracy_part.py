"""The ``accuracy`` window part: the accuracy metrics of a window's labelled predictions.

Stage: score. In: the window's labelled predictions and its prediction count (nothing
fitted: no reference needed). Out: :class:`AccuracyMetrics`, classification or
regression (scikit-learn's definitions, :mod:`monitor.score.accuracy`), answered as
``accuracy_metrics`` by the window API and exported as the families below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Final

from pydantic import ConfigDict, Field, RootModel

from collectors.naming import MetricName
from monitor.score.accuracy import ClassificationAccuracy, RegressionAccuracy, score_accuracy
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs
from monitor.score.scores import NotScored

__all__ = [
    "ACCURACY",
    "AccuracyMetrics",
    "AccuracyPart",
    "WINDOW_F1",
    "WINDOW_LOG_LOSS",
    "WINDOW_MAE",
    "WINDOW_MAPE",
    "WINDOW_PRECISION",
    "WINDOW_R2",
    "WINDOW_RECALL",
    "WINDOW_RMSE",
    "WINDOW_ROC_AUC",
]

_MV = ("model", "model_version")

# -- accuracy once labels arrive (classification; a multiclass model's macro average) --

WINDOW_PRECISION: Final = MetricName(
    "sidewatch_window_precision_ratio",
    "gauge",
    "Of the newest closed window's labelled predictions of the positive class, the share "
    "that were right (a multiclass model: the average over its classes).",
    _MV,
)
WINDOW_RECALL: Final = MetricName(
    "sidewatch_window_recall_ratio",
    "gauge",
    "Of the newest closed window's labelled cases that were truly positive, the share the "
    "model found (a multiclass model: the average over its classes).",
    _MV,
)
WINDOW_F1: Final = MetricName(
    "sidewatch_window_f1_ratio",
    "gauge",
    "Balance of precision and recall in the newest closed window (F1: 1 is perfect; a "
    "multiclass model: the average over its classes).",
    _MV,
)
WINDOW_ROC_AUC: Final = MetricName(
    "sidewatch_window_roc_auc_ratio",
    "gauge",
    "How well the model's scores rank true cases above the others in the newest closed "
    "window (ROC AUC: 1 is perfect, 0.5 is chance; multiclass: one against the rest, averaged).",
    _MV,
)
WINDOW_LOG_LOSS: Final = MetricName(
    "sidewatch_window_log_loss",
    "gauge",
    "How confident the model was in the wrong answers in the newest closed window (log "
    "loss of its probabilities: lower is better, 0 is perfect).",
    _MV,
)
WINDOW_MAE: Final = MetricName(
    "sidewatch_window_mae",
    "gauge",
    "Average size of the prediction error in the newest closed window, in the unit of the "
    "predicted value (mean absolute error; regression).",
    _MV,
)
WINDOW_RMSE: Final = MetricName(
    "sidewatch_window_rmse",
    "gauge",
    "Typical size of the prediction error in the newest closed window, weighing large "
    "errors more, in the unit of the predicted value (root mean squared error; regression).",
    _MV,
)
WINDOW_MAPE: Final = MetricName(
    "sidewatch_window_mape_ratio",
    "gauge",
    "Average prediction error as a share of the true value in the newest closed window "
    "(0.1 is 10%; rows whose true value is 0 left out; regression).",
    _MV,
)
WINDOW_R2: Final = MetricName(
    "sidewatch_window_r2",
    "gauge",
    "Share of the variation of the true values that the predictions explain in the newest "
    "closed window (R²: 1 is perfect, 0 is no better than the average, below 0 worse).",
    _MV,
)


class AccuracyMetrics(
    RootModel[Annotated[ClassificationAccuracy | RegressionAccuracy, Field(discriminator="task")]]
):
    """Every accuracy metric of one window, told apart by ``task``."""

    model_config = ConfigDict(frozen=True)


class AccuracyPart:
    """Classification or regression accuracy, by the model's task."""

    name: Final = "accuracy"
    public_name: Final = "accuracy_metrics"
    inputs: Final[frozenset[PartInput]] = frozenset({"labelled"})
    result_model: Final = AccuracyMetrics
    metrics: Final = (
        WINDOW_PRECISION,
        WINDOW_RECALL,
        WINDOW_F1,
        WINDOW_ROC_AUC,
        WINDOW_LOG_LOSS,
        WINDOW_MAE,
        WINDOW_RMSE,
        WINDOW_MAPE,
        WINDOW_R2,
    )

    def fit(self, reference: ReferenceData) -> None | NotScored:
        """Nothing to learn from a reference."""
        return None

    def score(self, fitted: None, inputs: WindowInputs) -> AccuracyMetrics | NotScored:
        """The metrics of the labelled predictions (see
        :func:`monitor.score.accuracy.score_accuracy`)."""
        return AccuracyMetrics(
            score_accuracy(inputs.model, inputs.labelled, predictions=inputs.count)
        )

    def samples(self, result: AccuracyMetrics) -> Iterator[Sample]:
        """Precision, recall, F1 (binary: the positive class's; multiclass: macro), ROC
        AUC and log loss; or MAE, RMSE, MAPE and R²."""
        a = result.root
        if isinstance(a, ClassificationAccuracy):
            binary = a.task == "binary"
            yield WINDOW_PRECISION, (), a.precision if binary else a.precision_macro
            yield WINDOW_RECALL, (), a.recall if binary else a.recall_macro
            yield WINDOW_F1, (), a.f1 if binary else a.f1_macro
            yield WINDOW_ROC_AUC, (), a.roc_auc
            yield WINDOW_LOG_LOSS, (), a.log_loss
        else:
            yield WINDOW_MAE, (), a.mae
            yield WINDOW_RMSE, (), a.rmse
            yield WINDOW_MAPE, (), a.mape
            yield WINDOW_R2, (), a.r2


ACCURACY: Final = AccuracyPart()
"""The registered instance."""

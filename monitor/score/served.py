"""The ``predictions`` window part: what a window's predictions served.

Stage: score. In: a sample of the window's rows (their outputs) and its prediction
count. Out: :class:`~monitor.score.scores.PredictionSummary` (the served classes' shares
and the served score's quantiles), answered as ``served`` by the window API and exported
as the families below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from collectors.naming import MetricName
from monitor.score.fitted import prediction_summary
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs
from monitor.score.scores import NotScored, PredictionSummary

__all__ = [
    "CLASS_LABELS_CUT",
    "SERVED",
    "ServedPart",
    "WINDOW_PREDICTED_CLASS",
    "WINDOW_PREDICTION_SCORE",
]

_MV = ("model", "model_version")

CLASS_LABELS_CUT: Final = MetricName(
    "sidewatch_class_series_cut",
    "gauge",
    "Classes of a version left out of the per-class metrics, which name at most 20 classes.",
    _MV,
)
WINDOW_PREDICTED_CLASS: Final = MetricName(
    "sidewatch_window_predicted_class_ratio",
    "gauge",
    "Share of the newest closed window's predictions that served each class (a binary "
    "model's classes are positive and negative; at most 20 classes).",
    (*_MV, "class"),
)
WINDOW_PREDICTION_SCORE: Final = MetricName(
    "sidewatch_window_prediction_score",
    "gauge",
    "Quantiles of the score the model served in the newest closed window (binary: the "
    "positive class's probability; multiclass: the served class's; regression: the value).",
    (*_MV, "quantile"),
)


class ServedPart:
    """The served classes' shares and the served score's quantiles over the rows read."""

    name: Final = "predictions"
    public_name: Final = "served"
    inputs: Final[frozenset[PartInput]] = frozenset({"row_sample"})
    result_model: Final = PredictionSummary
    metrics: Final = (WINDOW_PREDICTED_CLASS, WINDOW_PREDICTION_SCORE, CLASS_LABELS_CUT)

    def fit(self, reference: ReferenceData) -> None | NotScored:
        """Nothing to learn from a reference."""
        return None

    def score(self, fitted: None, inputs: WindowInputs) -> PredictionSummary | NotScored:
        """The summary of the rows read (see :func:`monitor.score.fitted.prediction_summary`)."""
        outputs = [o for _, o in inputs.rows]
        return prediction_summary(inputs.model, outputs, inputs.count)

    def samples(self, result: PredictionSummary) -> Iterator[Sample]:
        """Each class's share, the classes cut, and each quantile of the score."""
        for ratio in result.class_ratios:
            yield WINDOW_PREDICTED_CLASS, (ratio.served_class,), ratio.ratio
        if result.class_ratios or result.classes_cut:
            yield CLASS_LABELS_CUT, (), result.classes_cut
        for quantile in result.score_quantiles:
            yield WINDOW_PREDICTION_SCORE, (f"{quantile.quantile:g}",), quantile.value


SERVED: Final = ServedPart()
"""The registered instance."""

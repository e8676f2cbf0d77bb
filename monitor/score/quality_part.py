"""The ``quality`` window part: data quality of every feature of the model.

Stage: score. In: the reference (each numeric feature's range, each categorical
feature's categories, learned once per revision), the window's feature profiles (exact
shares where they hold them) and a sample of its rows (the rest). Out:
:class:`~monitor.score.scores.WindowQuality`, answered as ``quality`` by the window API
and exported per feature (label ``feature``, capped by the exporter) as the families
below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import numpy as np
import pandas as pd

from collectors.contract import ModelDescription
from collectors.naming import MetricName
from monitor.score.fitted import window_quality
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs
from monitor.score.quality import DataQuality, FittedDataQuality
from monitor.score.scores import NotScored, WindowQuality

__all__ = [
    "FEATURE_MISSING",
    "FEATURE_NEW_CATEGORIES",
    "FEATURE_OUT_OF_RANGE",
    "FEATURE_TYPE_ERRORS",
    "QUALITY",
    "QualityPart",
]

_MV = ("model", "model_version")

FEATURE_MISSING: Final = MetricName(
    "sidewatch_feature_missing_ratio",
    "gauge",
    "Share of the newest closed window's predictions where the feature was missing.",
    (*_MV, "feature"),
)
FEATURE_OUT_OF_RANGE: Final = MetricName(
    "sidewatch_feature_out_of_range_ratio",
    "gauge",
    "Share of the feature's values in the newest closed window outside the lowest to "
    "highest value seen in the reference data (numeric features).",
    (*_MV, "feature"),
)
FEATURE_NEW_CATEGORIES: Final = MetricName(
    "sidewatch_feature_new_categories",
    "gauge",
    "Distinct values of the feature in the newest closed window that the reference data "
    "never had (categorical features; counted in a sample of the window when it is large).",
    (*_MV, "feature"),
)
FEATURE_TYPE_ERRORS: Final = MetricName(
    "sidewatch_feature_type_errors_ratio",
    "gauge",
    "Share of the newest closed window's predictions where the feature's value had the "
    "wrong type (text for a number, say).",
    (*_MV, "feature"),
)


def fit_quality(model: ModelDescription, frame: pd.DataFrame) -> FittedDataQuality:
    """The data-quality checks fitted on a reference table."""
    # DataQuality keeps each numeric feature's range and each categorical feature's set of
    # categories, which depend only on the set of reference values: give it those (the
    # extremes, the distinct categories) rather than a million Python objects a column.
    values: dict[str, list[Any]] = {}
    for spec in model.features:
        column = frame[spec.name]
        if spec.type == "numeric":
            finite = column.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            values[spec.name] = [float(finite.min()), float(finite.max())] if finite.size else []
        elif spec.type == "categorical":
            values[spec.name] = pd.unique(column.dropna()).tolist()
    return DataQuality().fit(model, values)


class QualityPart:
    """Missing values, values out of the reference's range, new categories, type errors."""

    name: Final = "quality"
    public_name: Final = "quality"
    inputs: Final[frozenset[PartInput]] = frozenset({"row_sample", "feature_profiles", "reference"})
    result_model: Final = WindowQuality
    metrics: Final = (
        FEATURE_MISSING,
        FEATURE_OUT_OF_RANGE,
        FEATURE_NEW_CATEGORIES,
        FEATURE_TYPE_ERRORS,
    )

    def fit(self, reference: ReferenceData) -> FittedDataQuality | NotScored:
        """The reference's ranges and categories."""
        return fit_quality(reference.model, reference.frame)

    def score(
        self, fitted: FittedDataQuality | None, inputs: WindowInputs
    ) -> WindowQuality | NotScored:
        """Each feature's quality (see :func:`monitor.score.fitted.window_quality`)."""
        assert fitted is not None  # the part needs a reference
        rows = [f for f, _ in inputs.rows]
        return window_quality(
            inputs.model,
            fitted,
            inputs.feature_reference,
            inputs.feature_profiles,
            rows,
            inputs.count,
        )

    def samples(self, result: WindowQuality) -> Iterator[Sample]:
        """Per feature: the shares missing, out of range, of type errors; new categories."""
        for q in result.features:
            labels = (q.feature,)
            yield FEATURE_MISSING, labels, q.missing_ratio
            yield FEATURE_OUT_OF_RANGE, labels, q.out_of_range_ratio
            yield FEATURE_NEW_CATEGORIES, labels, q.new_categories
            yield FEATURE_TYPE_ERRORS, labels, q.type_errors_ratio


QUALITY: Final = QualityPart()
"""The registered instance."""

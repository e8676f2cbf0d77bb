"""What scoring learns once per reference revision beyond the features' profiles, and the
window parts it scores with that.

Stage: score. In: a model's description and its reference (the stored Parquet, read once
per revision by :func:`fit_reference`); then, per window, the window's feature profiles,
its outputs (every row's, read in chunks, for output drift: :func:`all_output_profiles`),
a bounded sample of its rows and its labelled predictions. Out: the records of
:mod:`monitor.score.scores`.

Fitted once per revision: the data-quality checks (each numeric feature's range, each
categorical feature's categories), the reference profiles of the model's outputs and of
its labels (:func:`output_values`, :func:`label_value`) (the correlation test and the
multivariate detector are registered window parts: :mod:`monitor.score.correlation_part`,
:mod:`monitor.score.multivariate_part`). A part whose reference lacks what it
needs is not fitted, and the reason is kept to say so in every window's result.

Outputs, as read from a served prediction (:class:`collectors.contract.Outputs`) and from
the reference's columns named by the model's description:

- ``class`` (classification, categorical): the served class; a binary model's classes
  are ``positive`` and ``negative``, as in its confusion counts. Reference column:
  ``prediction_column``.
- ``score`` (classification, numeric): binary, the served ``score`` or else the
  positive class's probability; multiclass, the served ``score`` or else the served
  class's probability. Reference column: ``score_column``.
- ``probability_<class>`` (multiclass, numeric): that class's probability, 0 where a
  served distribution leaves it out. Reference columns: ``{score_column}_{class}``, at
  most :data:`~monitor.score.scores.MAX_CLASS_SERIES` of them.
- ``value`` (regression, numeric): the served value. Reference column:
  ``prediction_column``.
- ``label``: the label, spelled as the served class is (classification) or a number.
"""

from __future__ import annotations

import logging
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from collectors.contract import ModelDescription
from monitor.core.profile import FeatureProfile, Kind, ReferenceFeature, ReferenceProfile
from monitor.score.accuracy import DEFAULT_THRESHOLD, NEGATIVE, POSITIVE, class_key
from monitor.score.drift.base import FloatArray
from monitor.score.quality import FittedDataQuality
from monitor.score.scores import (
    MAX_CLASS_SERIES,
    SCORE_QUANTILES,
    ClassRatio,
    FeatureQualityScore,
    NotScored,
    PredictionSummary,
    ScoreQuantile,
    WindowQuality,
)

__all__ = [
    "PROBABILITY",
    "all_output_profiles",
    "all_output_values",
    "FittedReference",
    "MultivariateMethod",
    "ScoringOptions",
    "fit_reference",
    "label_value",
    "numeric_columns",
    "output_profiles",
    "output_values",
    "prediction_summary",
    "served_class",
    "window_quality",
]

logger = logging.getLogger("sidewatch.score")

MultivariateMethod = Literal["pca_reconstruction", "domain_classifier"]
"""The multivariate drift detectors, by their names in results and metrics."""

PROBABILITY = "probability_"
"""Prefix of a multiclass model's per-class probability outputs."""


@dataclass(frozen=True, slots=True)
class ScoringOptions:
    """Settings of the window parts beyond feature drift.

    Args:
        sample_rows: Most rows of a window read for data quality, the served classes'
            shares and the score's quantiles, correlation and multivariate drift
            (output drift reads every row).
        multivariate: The multivariate detector; None turns it off.
        correlation_max_features: Most numeric features whose pairs are tested
            (``k (k - 1) / 2`` pairs).
    """

    sample_rows: int = 5_000
    multivariate: MultivariateMethod | None = "pca_reconstruction"
    correlation_max_features: int = 20

    def __post_init__(self) -> None:
        if self.sample_rows < 1 or self.correlation_max_features < 2:
            raise ValueError("sample_rows must be >= 1 and correlation_max_features >= 2")


@dataclass(frozen=True, slots=True)
class FittedReference:
    """Everything fitted on one reference revision for the window parts."""

    revision: int
    outputs: ReferenceProfile
    """Each output's reference (see the module docstring); empty where none was found."""
    label: ReferenceProfile
    """``label``'s reference, or empty."""
    not_fitted: tuple[NotScored, ...]
    """Parts (or outputs) that could not be fitted, and why."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Each output's (and ``label``'s) reference column, by the output's name: where a
    test that its profile cannot settle reads the reference's values."""
    parts: Mapping[str, Any] = field(default_factory=dict)
    """What each registered window part that needs a reference learned from it (or a
    :class:`NotScored` saying why it could not), by part name."""


# -------------------------------------------------------------------------- outputs


def served_class(model: ModelDescription, outputs: Mapping[str, Any]) -> str | None:
    """The class a prediction served, by :func:`class_key` (binary: positive / negative)."""
    probabilities = outputs.get("probabilities") or None
    served: str | None = None
    if outputs.get("predicted_class") is not None:
        served = class_key(outputs["predicted_class"])
    elif probabilities:
        keyed = {class_key(k): float(v) for k, v in probabilities.items()}
        served = max(keyed, key=keyed.__getitem__)
    if model.task != "binary":
        return served
    positive = class_key(model.positive_class)
    if served is None:
        score = _positive_score(model, outputs)
        if score is None:
            return None
        return POSITIVE if score >= DEFAULT_THRESHOLD else NEGATIVE
    return POSITIVE if served == positive else NEGATIVE


def _positive_score(model: ModelDescription, outputs: Mapping[str, Any]) -> float | None:
    if outputs.get("score") is not None:
        return float(outputs["score"])
    probabilities = outputs.get("probabilities") or {}
    positive = class_key(model.positive_class)
    for key, value in probabilities.items():
        if class_key(key) == positive:
            return float(value)
    return None


def _served_score(model: ModelDescription, outputs: Mapping[str, Any]) -> float | None:
    if model.task == "binary":
        return _positive_score(model, outputs)
    if outputs.get("score") is not None:
        return float(outputs["score"])
    probabilities = outputs.get("probabilities")
    return max(float(v) for v in probabilities.values()) if probabilities else None


def output_values(
    model: ModelDescription, rows: Sequence[Mapping[str, Any]], names: Iterable[str]
) -> dict[str, list[Any]]:
    """Each named output's value per served prediction (None where it has none)."""
    columns: dict[str, list[Any]] = {}
    for name in names:
        if name == "class":
            columns[name] = [served_class(model, o) for o in rows]
        elif name == "score":
            columns[name] = [_served_score(model, o) for o in rows]
        elif name == "value":
            columns[name] = [_number(o.get("value")) for o in rows]
        elif name.startswith(PROBABILITY):
            wanted = name.removeprefix(PROBABILITY)
            columns[name] = [_probability(o, wanted) for o in rows]
    return columns


def _probability(outputs: Mapping[str, Any], wanted: str) -> float | None:
    probabilities = outputs.get("probabilities")
    if not probabilities:
        return None
    for key, value in probabilities.items():
        if class_key(key) == wanted:
            return float(value)
    return 0.0


def label_value(model: ModelDescription, value: Any) -> Any:
    """A label as label drift compares it: the class as :func:`served_class` spells it,
    or a number (None where a regression's label is not one)."""
    if model.task == "regression":
        return _number(value)
    key = class_key(value)
    if model.task == "binary":
        return POSITIVE if key == class_key(model.positive_class) else NEGATIVE
    return key


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------------------ fit


def numeric_columns(
    names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, FloatArray]:
    """The named features of ``rows`` as float columns (NaN where missing)."""
    if not names:
        return {}
    try:
        # One pass over the rows for every feature: a float matrix (None is NaN).
        get = operator.itemgetter(*names)
        table = np.array(list(map(get, rows)), dtype=np.float64).reshape(len(rows), len(names))
    except (KeyError, TypeError, ValueError):  # a row lacks a feature, or holds no number
        table = np.array(
            [[_number(r.get(name)) for name in names] for r in rows], dtype=np.float64
        ).reshape(len(rows), len(names))
    return {name: table[:, j] for j, name in enumerate(names)}


def fit_reference(
    model: ModelDescription, frame: pd.DataFrame, revision: int, options: ScoringOptions
) -> FittedReference:
    """Fit every window part on a reference revision's table (see the module docstring)."""
    not_fitted: list[NotScored] = []
    wanted = _output_columns(model, frame)
    outputs, missing = _fit_columns(frame, wanted, model)
    not_fitted.extend(NotScored("prediction_drift", m) for m in missing)
    label_column = {
        "label": (model.target_column, "numeric" if model.task == "regression" else "label")
    }
    label, missing = _fit_columns(frame, label_column, model)
    not_fitted.extend(NotScored("label_drift", m) for m in missing)
    return FittedReference(
        revision=revision,
        outputs=outputs,
        label=label,
        not_fitted=tuple(not_fitted),
        columns={name: column for name, (column, _) in (wanted | label_column).items()},
    )


def _output_columns(model: ModelDescription, frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Each output's reference column and how it is read (``numeric`` or ``label``)."""
    wanted: dict[str, tuple[str, str]] = {}
    if model.task == "regression":
        wanted["value"] = (model.prediction_column, "numeric")
    else:
        wanted["class"] = (model.prediction_column, "label")
        wanted["score"] = (model.score_column, "numeric")
    if model.task == "multiclass":
        prefix = f"{model.score_column}_"
        classes = sorted(
            class_key(str(c).removeprefix(prefix))
            for c in frame.columns
            if str(c).startswith(prefix)
        )
        for cls in classes[:MAX_CLASS_SERIES]:
            wanted[f"{PROBABILITY}{cls}"] = (f"{prefix}{cls}", "numeric")
    return wanted


def _fit_columns(
    frame: pd.DataFrame, wanted: Mapping[str, tuple[str, str]], model: ModelDescription
) -> tuple[ReferenceProfile, list[str]]:
    columns: dict[str, tuple[Kind, Any]] = {}
    missing: list[str] = []
    for name, (column, kind) in wanted.items():
        if column not in frame.columns:
            missing.append(f"{name}: the reference has no column {column!r}")
            continue
        values = frame[column]
        if kind == "numeric":
            if not ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
                missing.append(f"{name}: the reference's column {column!r} is not numeric")
                continue
            columns[name] = ("numeric", values.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            spelled = [label_value(model, v) for v in values.dropna().tolist()]
            columns[name] = ("categorical", spelled)
    profiles: dict[str, ReferenceFeature] = {}
    for name, one in columns.items():
        try:
            profiles.update(ReferenceProfile.build({name: one}, len(frame)).features)
        except ValueError as exc:
            missing.append(f"{name}: {exc}")
    return ReferenceProfile(len(frame), profiles), missing


# -------------------------------------------------------------------- window parts


def output_profiles(
    reference: ReferenceProfile, columns: Mapping[str, Sequence[Any]]
) -> dict[str, FeatureProfile]:
    """Each output's window profile on its reference's bins."""
    return {
        name: FeatureProfile.of(columns[name], ref.kind, ref.bins)
        for name, ref in reference.features.items()
        if name in columns
    }


def all_output_profiles(
    model: ModelDescription,
    reference: ReferenceProfile,
    chunks: Iterable[Sequence[Mapping[str, Any]]],
) -> dict[str, FeatureProfile]:
    """Each output's profile over every row of a window, read chunk by chunk (the
    window's outputs are never held whole), on its reference's bins."""
    merged: dict[str, FeatureProfile] = {}
    names = list(reference.features)
    for chunk in chunks:
        found = output_profiles(reference, output_values(model, chunk, names))
        for name, profile in found.items():
            before = merged.get(name)
            merged[name] = profile if before is None else before.merge(profile)
    return merged


def all_output_values(
    model: ModelDescription, chunks: Iterable[Sequence[Mapping[str, Any]]], names: Sequence[str]
) -> dict[str, list[Any]]:
    """The named outputs' values over every row of a window, read chunk by chunk."""
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for chunk in chunks:
        for name, values in output_values(model, chunk, names).items():
            columns[name].extend(values)
    return columns


def window_quality(
    model: ModelDescription,
    fitted: FittedDataQuality,
    reference: ReferenceProfile | None,
    profiles: Mapping[str, FeatureProfile] | None,
    rows: Sequence[Mapping[str, Any]],
    total: int,
) -> WindowQuality:
    """Data quality of a window: exact from its profiles where they hold the count,
    sampled from ``rows`` (all of the window's, or a uniform sample) otherwise.

    Args:
        model: The model.
        fitted: The checks fitted on the reference.
        reference: The reference's feature profiles (their bins say what the window's
            histograms count); None to read everything from ``rows``.
        profiles: The window's feature profiles on the reference's bins, or None.
        rows: The feature values of the rows read.
        total: Predictions in the window.
    """
    sampled = len(rows) < total
    results = []
    for spec in model.features:
        counts = fitted.counts(spec.name, spec.type, [r.get(spec.name) for r in rows])
        quality = fitted.result(spec.name, spec.type, counts)
        shares = {
            "missing_ratio": quality.missing_share,
            "out_of_range_ratio": quality.out_of_range_share,
            "new_category_ratio": quality.new_category_share,
        }
        estimated = {"type_errors_ratio"}
        if spec.type == "categorical":
            estimated.add("new_categories")
        profile = None if profiles is None else profiles.get(spec.name)
        ref = None if reference is None else reference.features.get(spec.name)
        exact: dict[str, float | None] = {"missing_ratio": None}
        if profile is not None and profile.count + profile.missing > 0:
            exact["missing_ratio"] = profile.missing / (profile.count + profile.missing)
        if spec.type in _EXACT:
            field, rule = _EXACT[spec.type]
            on_bins = (
                profile is not None and ref is not None and profile.histogram.size == ref.bins.size
            )
            exact[field] = rule(fitted, spec.name, ref, profile) if on_bins else None
        for field, value in exact.items():
            if value is None:
                estimated.add(field)
            else:
                shares[field] = value
        results.append(
            FeatureQualityScore(
                feature=spec.name,
                kind=spec.type,
                missing_ratio=shares["missing_ratio"],
                type_errors_ratio=quality.type_error_share,
                out_of_range_ratio=shares["out_of_range_ratio"],
                new_category_ratio=shares["new_category_ratio"],
                new_categories=quality.new_category_count,
                examples=quality.new_categories,
                from_sample=tuple(sorted(estimated)) if sampled else (),
            )
        )
    return WindowQuality(rows=total, sample_rows=len(rows), features=tuple(results))


def _exact_out_of_range(
    fitted: FittedDataQuality,
    name: str,
    ref: ReferenceFeature | None,
    profile: FeatureProfile | None,
) -> float | None:
    """The share out of range from the window's histogram, where it tells it exactly.

    The numeric bins' first edge is the reference's minimum and their last its maximum;
    the last bin counts exactly the values above the maximum, but the first bin mixes the
    values below the minimum with those on it. So the share is exact when the window's
    minimum is not below the reference's (then nothing is below).
    """
    if ref is None or profile is None or name not in fitted.ranges or ref.bins.edges.size == 0:
        return None
    low, high = fitted.ranges[name]
    if (float(ref.bins.edges[0]), float(ref.bins.edges[-1])) != (low, high):
        return None
    if profile.count == 0:
        return None
    if profile.minimum < low:
        return None
    return float(profile.histogram[-1]) / profile.count


def _exact_new_categories(
    fitted: FittedDataQuality,
    name: str,
    ref: ReferenceFeature | None,
    profile: FeatureProfile | None,
) -> float | None:
    """The share of new categories from the window's histogram: its "other" bin counts
    exactly the new values when the bins count every category of the reference."""
    if ref is None or profile is None or name not in fitted.categories or profile.count == 0:
        return None
    if frozenset(ref.bins.categories) != fitted.categories[name]:
        return None
    return float(profile.histogram[-1]) / profile.count


_ExactRule = Callable[
    [FittedDataQuality, str, ReferenceFeature | None, FeatureProfile | None], float | None
]
_EXACT: dict[str, tuple[str, _ExactRule]] = {
    "numeric": ("out_of_range_ratio", _exact_out_of_range),
    "categorical": ("new_category_ratio", _exact_new_categories),
}
"""Per feature type: the share its window profile can tell exactly, and how."""


def prediction_summary(
    model: ModelDescription, outputs: Sequence[Mapping[str, Any]], total: int
) -> PredictionSummary:
    """The served classes' shares and the served score's quantiles over the rows read."""
    ratios: list[ClassRatio] = []
    cut = 0
    if model.task != "regression":
        served = Counter(c for c in (served_class(model, o) for o in outputs) if c is not None)
        counted = sum(served.values())
        ranked = sorted(served.items(), key=lambda kv: (-kv[1], kv[0]))
        ratios = [
            ClassRatio(served_class=c, ratio=n / counted) for c, n in ranked[:MAX_CLASS_SERIES]
        ]
        cut = max(0, len(ranked) - MAX_CLASS_SERIES)
    name = "value" if model.task == "regression" else "score"
    values = np.array(
        [v for v in output_values(model, outputs, [name])[name] if v is not None],
        dtype=np.float64,
    )
    values = values[np.isfinite(values)]
    quantiles: tuple[ScoreQuantile, ...] = ()
    if values.size:
        at = np.quantile(values, SCORE_QUANTILES)
        quantiles = tuple(
            ScoreQuantile(quantile=q, value=float(v))
            for q, v in zip(SCORE_QUANTILES, at, strict=True)
        )
    return PredictionSummary(
        rows=len(outputs),
        sampled=len(outputs) < total,
        class_ratios=tuple(ratios),
        classes_cut=cut,
        score_quantiles=quantiles,
    )

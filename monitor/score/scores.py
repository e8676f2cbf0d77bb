"""A window's scores beyond feature drift: frozen records, kept in one JSON column.

Stage: score. In: what :class:`~monitor.score.scorer.WindowScorer` computes for a
window from its labelled predictions, a bounded sample of its rows, its profiles and the
reference. Out: :class:`WindowScores`, which the store keeps in ``window_results.scores``
(:meth:`WindowScores.as_json` / :meth:`WindowScores.from_json`) and the exporter and the
API read:

- ``accuracy``: :class:`~monitor.score.accuracy.ClassificationAccuracy` or
  :class:`~monitor.score.accuracy.RegressionAccuracy` (scikit-learn's definitions).
- ``quality``: :class:`WindowQuality`, per feature the share missing, out of the
  reference's range, of new categories, and of type errors.
- ``prediction_drift`` and ``label_drift``: :class:`OutputDrift`, the same univariate
  tests as the features, on the served class, score or value of every row of the
  window (never a sample) and on the labels.
- ``correlation``: :class:`CorrelationSummary`, Fisher's z over the feature pairs.
- ``parts``: the results of the registered window parts
  (:mod:`monitor.score.part`), by name; ``predictions``: :class:`PredictionSummary`,
  the served classes' shares and the served score's quantiles; ``multivariate``:
  :class:`~monitor.score.multivariate.MultivariateDrift`.
- ``not_scored``: for every part left out, why (:class:`NotScored`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, computed_field, model_validator

from collectors.contract import FeatureType
from monitor.score.accuracy import ClassificationAccuracy, RegressionAccuracy
from monitor.score.drift.correlation import CorrelationDriftResult, PairCorrelationDrift
from monitor.score.multivariate import MultivariateDrift
from monitor.score.quality import NewCategory

__all__ = [
    "MAX_CLASS_SERIES",
    "MAX_LISTED_PAIRS",
    "SCORE_QUANTILES",
    "ClassRatio",
    "CorrelationSummary",
    "FeatureQualityScore",
    "NotScored",
    "OutputDrift",
    "PredictionSummary",
    "ScorePart",
    "ScoreQuantile",
    "WindowQuality",
    "WindowScores",
    "finite_or_none",
]

ScorePart = Literal[
    "feature_drift",
    "accuracy",
    "quality",
    "prediction_drift",
    "label_drift",
    "correlation",
    "multivariate",
    "predictions",
]
"""The parts of :class:`WindowScores`, and ``feature_drift`` (a window result's
``drift``, kept beside them): what :class:`NotScored` may name."""

MAX_CLASS_SERIES: Final = 20
"""Most classes named per window (served-class shares, per-class probability drift)."""
MAX_LISTED_PAIRS: Final = 20
"""Most feature pairs a :class:`CorrelationSummary` lists."""
SCORE_QUANTILES: Final = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Quantiles of the served score kept per window."""


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class NotScored:
    """A part of a window's scores that was left out, and why."""

    part: str
    """A :data:`ScorePart`, or the name of a registered window part."""
    reason: str


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewCategoryCount(_Frozen):
    """A category the reference never had, and how often the rows read hold it."""

    category: str
    count: int

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        # Rows stored before results serialised themselves hold [category, count].
        if isinstance(data, list | tuple):
            return {"category": data[0], "count": data[1]}
        if isinstance(data, NewCategory):
            return {"category": data.category, "count": data.count}
        return data


class FeatureQualityScore(_Frozen):
    """One feature's data quality over one window.

    Shares come from the window's profile where it holds them (exact, over every row of
    the window), otherwise from the rows read (a uniform sample of at most
    ``sample_rows`` when the window holds more); :attr:`from_sample` names the fields
    estimated from a sample.
    """

    feature: str
    kind: FeatureType
    missing_ratio: float | None
    """Share of the window's rows where the feature is absent or null."""
    type_errors_ratio: float | None
    """Share of rows whose value has the wrong type for the feature (ingest refuses such
    events, so rows it stored have none)."""
    out_of_range_ratio: float | None
    """Numeric: share of the valid values outside the reference's ``[min, max]``."""
    new_category_ratio: float | None
    """Categorical: share of the valid values whose category the reference never had."""
    new_categories: int | None
    """Categorical: distinct new categories among the rows read (a lower bound of the
    window's when sampled)."""
    examples: tuple[NewCategoryCount, ...]
    """The most frequent new categories among the rows read, most frequent first."""
    from_sample: tuple[str, ...] = ()
    """Fields estimated from a sample of the window's rows (empty: all exact)."""

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureQualityScore:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


class WindowQuality(_Frozen):
    """Data quality of every feature of the model over one window."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # ``sampled`` is derived

    rows: int
    """Predictions in the window."""
    sample_rows: int
    """Rows read for what the profiles do not hold (all of them, up to the sample size)."""
    features: tuple[FeatureQualityScore, ...]
    """One per feature, in the model's order (a list when stored: PostgreSQL's JSONB
    reorders object keys)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sampled(self) -> bool:
        """Whether the rows read were a sample of the window."""
        return self.sample_rows < self.rows

    def feature(self, name: str) -> FeatureQualityScore:
        """The result of the feature called ``name``.

        Raises:
            KeyError: The model has no such feature.
        """
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(name)

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowQuality:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


@dataclass(frozen=True, slots=True)
class OutputDrift:
    """Drift of one of the model's outputs, or of its labels, over one window.

    The test is chosen, thresholded and (for p-value tests, across a window's outputs)
    put under Benjamini-Hochberg control as for the features.
    """

    output: str
    """``class`` (the served class), ``score`` (the served score), ``value`` (a
    regression's value), ``probability_<class>`` (a multiclass model's probability of
    that class), or ``label``."""
    test: str
    value: float
    """The p-value of a p-value test, the distance of a distance test."""
    threshold: float
    drifted: bool
    current_count: int
    """Values of the output in the window that the test used."""
    statistic: float | None = None
    """The test statistic; None where it is infinite (chi-squared with a new class)."""
    adjusted_p_value: float | None = None
    error_bound: float = 0.0
    """How far ``statistic`` may be from its value on the raw values (see
    :mod:`monitor.score.drift.profiled`): 0 where it was computed from them."""

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "output": self.output,
            "test": self.test,
            "value": self.value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "current_count": self.current_count,
            "statistic": self.statistic,
            "adjusted_p_value": self.adjusted_p_value,
            "error_bound": self.error_bound,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputDrift:
        """Rebuild from :meth:`as_json`."""
        return cls(
            output=str(data["output"]),
            test=str(data["test"]),
            value=float(data["value"]),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            current_count=int(data["current_count"]),
            statistic=_float(data["statistic"]),
            adjusted_p_value=_float(data["adjusted_p_value"]),
            error_bound=float(data["error_bound"]),
        )


class CorrelationPair(_Frozen):
    """One feature pair's correlation in the reference and in the window."""

    feature_a: str
    feature_b: str
    reference_r: float | None
    current_r: float | None
    """None where a feature is constant in the window (the correlation is undefined)."""
    z: float | None
    p_value: float | None
    adjusted_p_value: float | None
    drifted: bool

    @classmethod
    def of(cls, pair: PairCorrelationDrift) -> CorrelationPair:
        """The result form of a tested pair (an undefined correlation is None)."""
        return cls.model_validate(pair.as_json())


class CorrelationSummary(_Frozen):
    """Correlation drift over one window: counts, the largest change, and the pairs that
    matter most (at most :data:`MAX_LISTED_PAIRS`: the drifted ones, then the largest
    changes)."""

    method: str
    fdr: float
    min_difference: float
    reference_count: int
    current_count: int
    """Rows read with every tested feature present."""
    sampled: bool
    """Whether the rows read were a sample of the window."""
    tested_pairs: int
    """Pairs whose correlation is defined in both the reference and the window."""
    drifted_pairs: int
    change_max: float | None
    """Largest ``|current r - reference r|`` over the tested pairs."""
    pairs: tuple[CorrelationPair, ...]
    features_cut: tuple[str, ...]
    pairs_cut: int
    """Pairs of the numeric features that were not tested (the pair bound)."""

    @classmethod
    def of(
        cls, result: CorrelationDriftResult, *, sampled: bool, listed: int = MAX_LISTED_PAIRS
    ) -> CorrelationSummary:
        """Summarise a :class:`CorrelationDriftResult`."""
        tested = [p for p in result.pairs if p.z is not None]
        changes = {id(p): abs(p.current_r - p.reference_r) for p in tested}
        ranked = sorted(tested, key=lambda p: (not p.drifted, -changes[id(p)]))
        return cls(
            method=result.method,
            fdr=result.fdr,
            min_difference=result.min_difference,
            reference_count=result.reference_count,
            current_count=result.current_count,
            sampled=sampled,
            tested_pairs=len(tested),
            drifted_pairs=sum(p.drifted for p in tested),
            change_max=max(changes.values()) if changes else None,
            pairs=tuple(CorrelationPair.of(p) for p in ranked[:listed]),
            features_cut=result.features_cut,
            pairs_cut=result.pairs_cut,
        )

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorrelationSummary:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


class ClassRatio(_Frozen):
    """The share of a window's predictions that served one class."""

    served_class: str
    """The class's key (:func:`~monitor.score.accuracy.class_key`); a binary model's
    classes are ``positive`` and ``negative``, as in its confusion counts."""
    ratio: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        # Rows stored before results serialised themselves hold [class, ratio].
        if isinstance(data, list | tuple):
            return {"served_class": data[0], "ratio": data[1]}
        return data


class ScoreQuantile(_Frozen):
    """One quantile of the served score (or a regression's value) over a window."""

    quantile: float
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        # Rows stored before results serialised themselves hold [quantile, value].
        if isinstance(data, list | tuple):
            return {"quantile": data[0], "value": data[1]}
        return data


class PredictionSummary(_Frozen):
    """What a window's predictions served: each class's share and the score's quantiles."""

    rows: int
    """Rows read (all of the window's, up to the sample size)."""
    sampled: bool
    class_ratios: tuple[ClassRatio, ...]
    """Classification: the most served classes first, at most :data:`MAX_CLASS_SERIES`;
    shares of the rows that served a class."""
    classes_cut: int
    """Served classes left out of ``class_ratios``."""
    score_quantiles: tuple[ScoreQuantile, ...]
    """:data:`SCORE_QUANTILES` of the served score (binary: the positive class's;
    multiclass: the served class's probability) or of a regression's value; empty
    without such values."""


@dataclass(frozen=True, slots=True)
class WindowScores:
    """Everything scored for a window beyond counts, latency and feature drift.

    A part is None when it was not scored; :attr:`not_scored` says why.
    """

    prediction_drift: tuple[OutputDrift, ...] | None = None
    """One per output scored."""
    label_drift: OutputDrift | None = None
    parts: Mapping[str, BaseModel] = field(default_factory=dict)
    """The results of the registered window parts (:data:`monitor.score.parts.PARTS`),
    by part name; a part not scored is absent."""
    not_scored: tuple[NotScored, ...] = ()

    @property
    def accuracy(self) -> ClassificationAccuracy | RegressionAccuracy | None:
        """The ``accuracy`` part's metrics, if scored."""
        found = getattr(self.parts.get("accuracy"), "root", None)
        return found if isinstance(found, ClassificationAccuracy | RegressionAccuracy) else None

    @property
    def quality(self) -> WindowQuality | None:
        """The ``quality`` part's result, if scored."""
        found = self.parts.get("quality")
        return found if isinstance(found, WindowQuality) else None

    @property
    def correlation(self) -> CorrelationSummary | None:
        """The ``correlation`` part's result, if scored."""
        found = self.parts.get("correlation")
        return found if isinstance(found, CorrelationSummary) else None

    @property
    def multivariate(self) -> MultivariateDrift | None:
        """The ``multivariate`` part's result, if scored."""
        found = self.parts.get("multivariate")
        return found if isinstance(found, MultivariateDrift) else None

    @property
    def predictions(self) -> PredictionSummary | None:
        """The ``predictions`` part's result (the served classes and scores), if scored."""
        found = self.parts.get("predictions")
        return found if isinstance(found, PredictionSummary) else None

    def reason(self, part: str) -> str | None:
        """Why ``part`` (or some of it) was not scored; None if nothing was left out."""
        reasons = [n.reason for n in self.not_scored if n.part == part]
        return "; ".join(reasons) if reasons else None

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document; what has an order is kept in lists, since
        PostgreSQL's JSONB reorders the keys of an object)."""
        return {
            "prediction_drift": None
            if self.prediction_drift is None
            else [d.as_json() for d in self.prediction_drift],
            "label_drift": None if self.label_drift is None else self.label_drift.as_json(),
            **{name: result.model_dump(mode="json") for name, result in self.parts.items()},
            "not_scored": [[n.part, n.reason] for n in self.not_scored],
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | None, parts: Mapping[str, type[BaseModel]] | None = None
    ) -> WindowScores:
        """Rebuild from :meth:`as_json`; a row scored before these parts existed (None)
        gives empty scores.

        Args:
            data: The stored form.
            parts: Each registered part's result model, by part name (default: the
                registry's, :func:`monitor.score.parts.result_models`); a stored result
                of a part no longer registered is left out.
        """
        if data is None:
            return cls()
        if parts is None:
            # The registry imports the parts, which import this module: read it late.
            from monitor.score.parts import result_models

            parts = result_models()
        outputs = data["prediction_drift"]
        label = data["label_drift"]
        return cls(
            prediction_drift=None
            if outputs is None
            else tuple(OutputDrift.from_json(d) for d in outputs),
            label_drift=None if label is None else OutputDrift.from_json(label),
            parts={
                name: model.model_validate(data[name])
                for name, model in parts.items()
                if data.get(name) is not None
            },
            not_scored=tuple(NotScored(part, str(reason)) for part, reason in data["not_scored"]),
        )


def finite_or_none(value: float | None) -> float | None:
    """``value``, or None where it is missing, NaN or infinite (JSON has no such numbers)."""
    return None if value is None or not math.isfinite(value) else value

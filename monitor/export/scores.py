"""The metric families of a window's scores beyond counts and feature drift.

Stage: export. In: the newest closed window's :class:`~monitor.score.results.WindowResult`
per model version, as :class:`~monitor.export.prometheus.ResultsCollector` reads them
at scrape time. Out: gauge families named in :mod:`monitor.export.names`: accuracy
metrics, data quality per feature, output and label drift, correlation and multivariate
drift, the served classes' shares and the served score's quantiles. A part that was not
scored exports no sample, so a dashboard shows "no data" rather than a made-up zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from collectors.naming import MetricName
from monitor.export import names
from monitor.score.part import AnyPart
from monitor.score.parts import PARTS
from monitor.score.results import FeatureDrift, WindowResult
from monitor.score.scores import FeatureQualityScore

__all__ = ["ScoreFamilies", "all_features", "named_features"]

_PREDICTION = (
    names.PREDICTION_DRIFT_SCORE,
    names.PREDICTION_DRIFT_THRESHOLD,
    names.PREDICTION_DRIFTED,
)
_LABEL = (names.LABEL_DRIFT_SCORE, names.LABEL_DRIFT_THRESHOLD, names.LABEL_DRIFTED)
"""Each verdict's three families: score, threshold, drifted."""


def _badness(q: FeatureQualityScore) -> float:
    shares = (q.missing_ratio, q.type_errors_ratio, q.out_of_range_ratio, q.new_category_ratio)
    return sum(s for s in shares if s is not None)


def named_features(result: WindowResult, drift_kept: Sequence[FeatureDrift], cap: int) -> set[str]:
    """The features a version's per-feature metrics name under the label cap: those its
    drift metrics keep, then the features of worst data quality, up to ``cap``."""
    named = {d.feature for d in drift_kept}
    quality = result.scores.quality
    if quality is not None:
        others = sorted(
            (q for q in quality.features if q.feature not in named),
            key=lambda q: (-_badness(q), q.feature),
        )
        named.update(q.feature for q in others[: max(0, cap - len(named))])
    return named


def all_features(result: WindowResult) -> set[str]:
    """Every feature that some per-feature metric of ``result`` could name."""
    quality = result.scores.quality
    found = {d.feature for d in result.drift}
    return found | ({q.feature for q in quality.features} if quality is not None else set())


class ScoreFamilies:
    """Collects one scrape's samples of the families beyond counts and feature drift.

    Args:
        parts: The registered window parts whose families are exported (default: the
            registry's, read now); each result's samples come from its part.
    """

    def __init__(self, parts: Mapping[str, AnyPart] | None = None) -> None:
        self._parts = dict(PARTS if parts is None else parts)

        def gauge(m: MetricName) -> GaugeMetricFamily:
            return GaugeMetricFamily(m.name, m.help, labels=m.labels)

        self._families: dict[str, GaugeMetricFamily] = {
            m.name: gauge(m)
            for m in (
                names.PREDICTION_DRIFT_SCORE,
                names.PREDICTION_DRIFT_THRESHOLD,
                names.PREDICTION_DRIFTED,
                names.LABEL_DRIFT_SCORE,
                names.LABEL_DRIFT_THRESHOLD,
                names.LABEL_DRIFTED,
            )
        }
        for part in self._parts.values():
            for m in part.metrics:
                self._families.setdefault(m.name, gauge(m))

    def _add(self, m: MetricName, labels: Iterable[str], value: float | int | None) -> None:
        if value is not None:
            self._families[m.name].add_metric(list(labels), float(value))

    def _verdict(
        self,
        family: tuple[MetricName, MetricName, MetricName],
        labels: Sequence[str],
        value: float,
        threshold: float,
        drifted: bool,
    ) -> None:
        for m, v in zip(family, (value, threshold, drifted), strict=True):
            self._add(m, labels, v)

    def add(self, mv: Sequence[str], result: WindowResult, features: set[str]) -> None:
        """Add one version's samples; per-feature ones only for ``features``."""
        scores = result.scores
        for d in scores.prediction_drift or ():
            self._verdict(_PREDICTION, [*mv, d.output, d.test], d.value, d.threshold, d.drifted)
        if (label := scores.label_drift) is not None:
            self._verdict(_LABEL, [*mv, label.test], label.value, label.threshold, label.drifted)
        for name, part_result in scores.parts.items():
            part = self._parts.get(name)
            if part is None:
                continue
            for family, part_labels, value in part.samples(part_result):
                labels = [*mv, *part_labels]
                # Feature labels are capped per version: only the named features.
                capped = "feature" in family.labels
                if capped and labels[family.labels.index("feature")] not in features:
                    continue
                self._add(family, labels, value)

    def families(self) -> Iterator[Metric]:
        """Every family, in the order of :mod:`monitor.export.names`."""
        yield from self._families.values()

"""Prometheus exposition: ingest counters, and results read at scrape time.

Counters and the latency histogram are updated by ingest. Everything derived from
scoring is produced by :class:`ResultsCollector` when Prometheus scrapes, from the
scoring loop's latest results: nothing is computed on a scrape. The background
runner's numbers per job (backlog, runs, run durations) come from
:class:`BackgroundCollector`, likewise at scrape time. All of it lives on a
registry that the app owns, never the global one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collectors.contract import ModelDescription
from collectors.naming import MetricName
from monitor.core.windows import SplitKind, parse_split
from monitor.export import names
from monitor.export.scores import ScoreFamilies, all_features, named_features
from monitor.runner import JobStats
from monitor.score.results import SplitResults, WindowResult

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (C0, DEL, C1) and Unicode line and paragraph separators."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(
        code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def printable(value: str) -> str:
    """A label value with each control character and line separator written as a
    visible escape (``\\r``, ``\\x00``, ``\\u2028``).

    Values that events carry (segment values, served classes) may hold any character.
    The text format only escapes ``\\``, ``"`` and the line feed, so a raw carriage
    return or line separator would end the line for a reader that splits on them, and
    terminal escapes would reach whoever reads the page.
    """
    return _UNPRINTABLE.sub(_escape, value) if _UNPRINTABLE.search(value) else value


def _printable_samples(metric: Metric) -> Metric:
    for i, sample in enumerate(metric.samples):
        if any(_UNPRINTABLE.search(v) for v in sample.labels.values()):
            labels = {k: printable(v) for k, v in sample.labels.items()}
            metric.samples[i] = sample._replace(labels=labels)
    return metric


class IngestMetrics:
    """The counters and histogram that ingest updates, on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(m: MetricName) -> Counter:
            return Counter(m.name.removesuffix("_total"), m.help, m.labels, registry=registry)

        self.events = counter(names.INGESTED_EVENTS)
        self.rejected = counter(names.INGEST_REJECTED)
        self.rejected_events = counter(names.INGEST_REJECTED_EVENTS)
        m = names.PREDICTION_LATENCY
        self.latency = Histogram(
            m.name, m.help, m.labels, buckets=LATENCY_BUCKETS, registry=registry
        )


def _gauge(m: MetricName) -> GaugeMetricFamily:
    return GaugeMetricFamily(m.name, m.help, labels=m.labels)


_SPLIT_FAMILIES: dict[SplitKind, tuple[MetricName, MetricName, MetricName, MetricName]] = {
    "segment": (
        names.SEGMENT_PREDICTIONS,
        names.SEGMENT_ACCURACY,
        names.SEGMENT_LABEL_COVERAGE,
        names.SEGMENT_DRIFTED_FEATURES,
    ),
    "variant": (
        names.VARIANT_PREDICTIONS,
        names.VARIANT_ACCURACY,
        names.VARIANT_LABEL_COVERAGE,
        names.VARIANT_DRIFTED_FEATURES,
    ),
    "stage": (
        names.STAGE_PREDICTIONS,
        names.STAGE_ACCURACY,
        names.STAGE_LABEL_COVERAGE,
        names.STAGE_DRIFTED_FEATURES,
    ),
    "group": (
        names.GROUP_PREDICTIONS,
        names.GROUP_ACCURACY,
        names.GROUP_LABEL_COVERAGE,
        names.GROUP_DRIFTED_FEATURES,
    ),
}
"""Per split kind: its predictions, accuracy, label coverage and drifted-share families."""


def _split_families(
    latest: dict[tuple[str, str], SplitResults],
) -> Iterator[GaugeMetricFamily]:
    families = {kind: [_gauge(m) for m in ms] for kind, ms in _SPLIT_FAMILIES.items()}
    segment_cut = _gauge(names.SEGMENT_SERIES_CUT)
    split_cut = _gauge(names.SPLIT_SERIES_CUT)
    for (model, version), splits in sorted(latest.items()):
        for kind, count in splits.cut.items():
            if kind == "segment":
                segment_cut.add_metric([model, version], count)
            else:
                split_cut.add_metric([model, version, kind], count)
        for result in splits.results:
            split = parse_split(result.segment)
            if split is None:
                continue
            if split.kind == "segment":
                labels = [model, version, result.segment]
            elif split.kind == "group":
                labels = [model, version, split.key, splits.groups[result.segment]]
            else:
                labels = [model, version, split.value]
            predictions, accuracy, coverage, drifted = families[split.kind]
            predictions.add_metric(labels, result.predictions)
            if result.accuracy is not None:
                accuracy.add_metric(labels, result.accuracy)
            if result.label_coverage is not None:
                coverage.add_metric(labels, result.label_coverage)
            if result.drift_share is not None:
                drifted.add_metric(labels, result.drift_share)
    yield from families["segment"]
    yield segment_cut
    for kind in ("variant", "stage", "group"):
        yield from families[kind]
    yield split_cut


class ResultsCollector(Collector):
    """Exports the latest window results and the registered models.

    Args:
        latest: Returns the newest closed window result per (model, version).
        models: Returns the registered models.
        scoring_state: Returns (last successful pass time or None, failed passes).
        splits: Returns the split results (segment values, variants, stages, sensitive
            groups) of the newest closed base window per (model, version), and how many
            values of each split kind were left unscored.
        max_feature_series: Most features exported per version; the features with the
            highest drift are kept, then those of worst data quality, and the number cut
            is exported.
    """

    def __init__(
        self,
        latest: Callable[[], dict[tuple[str, str], WindowResult]],
        models: Callable[[], list[ModelDescription]],
        scoring_state: Callable[[], tuple[float | None, int]],
        max_feature_series: int,
        *,
        splits: Callable[[], dict[tuple[str, str], SplitResults]] | None = None,
    ) -> None:
        self._latest = latest
        self._splits = splits
        self._models = models
        self._scoring_state = scoring_state
        self._cap = max_feature_series

    def collect(self) -> Iterator[Metric]:
        """Build the families from the latest results (called on each scrape); label
        values are made :func:`printable`."""
        for metric in self._families():
            yield _printable_samples(metric)

    def _families(self) -> Iterator[Metric]:
        m = names.MODEL_INFO
        info = InfoMetricFamily(m.name.removesuffix("_info"), m.help, labels=())
        for model in self._models():
            info.add_metric([], {"model": model.name, "task": model.task})
        yield info

        predictions = _gauge(names.WINDOW_PREDICTIONS)
        start = _gauge(names.WINDOW_START)
        end = _gauge(names.WINDOW_END)
        coverage = _gauge(names.WINDOW_LABEL_COVERAGE)
        accuracy = _gauge(names.WINDOW_ACCURACY)
        score = _gauge(names.FEATURE_DRIFT_SCORE)
        threshold = _gauge(names.FEATURE_DRIFT_THRESHOLD)
        drifted = _gauge(names.FEATURE_DRIFTED)
        cut = _gauge(names.FEATURE_LABELS_CUT)
        share = _gauge(names.WINDOW_DRIFTED_FEATURES)
        dataset = _gauge(names.WINDOW_DATASET_DRIFTED)
        scores = ScoreFamilies()
        for (name, version), result in sorted(self._latest().items()):
            mv = [name, version]
            predictions.add_metric(mv, result.predictions)
            start.add_metric(mv, result.window_start)
            end.add_metric(mv, result.window_end)
            if result.label_coverage is not None:
                coverage.add_metric(mv, result.label_coverage)
            if result.accuracy is not None:
                accuracy.add_metric(mv, result.accuracy)
            # Under the cap, the drifted features first, then the nearest to drifting.
            kept = sorted(result.drift, key=lambda d: (not d.drifted, -d.strength, d.feature))
            kept = kept[: self._cap]
            for d in kept:
                labels = [*mv, d.feature, d.test]
                score.add_metric(labels, d.value)
                threshold.add_metric(labels, d.threshold)
                drifted.add_metric(labels, float(d.drifted))
            named = named_features(result, kept, self._cap)
            scores.add(mv, result, named)
            cut.add_metric(mv, len(all_features(result) - named))
            if result.drift_share is not None:
                share.add_metric(mv, result.drift_share)
            if result.dataset_drifted is not None:
                dataset.add_metric(mv, float(result.dataset_drifted))
        yield from (predictions, start, end, coverage, accuracy, score, threshold, drifted, cut)
        yield from (share, dataset)
        yield from scores.families()

        if self._splits is not None:
            yield from _split_families(self._splits())

        last_success, failures = self._scoring_state()
        last = _gauge(names.SCORING_LAST_SUCCESS)
        if last_success is not None:
            last.add_metric([], last_success)
        yield last
        m = names.SCORING_FAILURES
        yield CounterMetricFamily(m.name, m.help, value=failures)


class BackgroundCollector(Collector):
    """Exports the background runner's numbers per job: backlog, runs by outcome, run
    durations and budget.

    Args:
        stats: Returns every job's numbers (:meth:`monitor.runner.Runner.stats`).
    """

    def __init__(self, stats: Callable[[], list[JobStats]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """Build the families from the runner's numbers (called on each scrape)."""
        backlog = _gauge(names.BACKGROUND_BACKLOG)
        budget = _gauge(names.BACKGROUND_BUDGET_SECONDS)
        m = names.BACKGROUND_RUNS
        runs = CounterMetricFamily(m.name, m.help, labels=m.labels)
        m = names.BACKGROUND_RUN_SECONDS
        seconds = HistogramMetricFamily(m.name, m.help, labels=m.labels)
        for job in self._stats():
            backlog.add_metric([job.name], job.backlog)
            budget.add_metric([job.name], job.schedule.budget_seconds)
            for outcome, count in job.runs.items():
                runs.add_metric([job.name, outcome], count)
            bounds = [repr(float(b)) for b in job.bounds] + ["+Inf"]
            seconds.add_metric(
                [job.name], list(zip(bounds, job.buckets, strict=True)), job.seconds_sum
            )
        yield from (backlog, runs, seconds, budget)

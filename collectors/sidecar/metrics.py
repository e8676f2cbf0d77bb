"""Export: the sidecar's counters in, Prometheus metric families out.

A custom collector on the sidecar's own registry reads the recorders', the proxy's
and the spool's counters, and the shipper's (which the shipper process writes to a
file in the spool directory), at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collectors.naming import MetricName
from collectors.quarantine import ADVICE
from collectors.sidecar import names
from collectors.sidecar.proxy import ProxyStats
from collectors.sidecar.recorder import (
    LATENCY_BUCKETS,
    STATUS_CLASSES,
    ModelCounts,
    RequestStats,
)
from collectors.sidecar.shipping import ShippingStats
from collectors.spool import Spool


def _counter(m: MetricName) -> CounterMetricFamily:
    return CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)


def _gauge(m: MetricName, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(m.name, m.help, value=value)


class SidecarCollector(Collector):
    """Prometheus view of a running sidecar."""

    def __init__(
        self,
        requests: Callable[[], list[RequestStats]],
        proxy: ProxyStats,
        spool: Spool,
        spool_capacity: int,
        extra_dropped: Callable[[], dict[str, int]] = dict,
        local_counts: Callable[[], tuple[Counter[str], Counter[str]]] | None = None,
    ) -> None:
        self._requests = requests
        self._proxy = proxy
        self._spool = spool
        self._capacity = spool_capacity
        self._extra_dropped = extra_dropped
        self._local_counts = local_counts
        """Events captured and captures dropped by the proxy's own decoder (with a
        field policy, exchanges are decoded before the spool, in this process)."""

    def collect(self) -> Iterator[Metric]:
        """Families from the current counters (called on each scrape)."""
        stats = self._requests()
        spool = self._spool.stats()
        ship = ShippingStats.load(self._spool.directory)
        models: dict[str, ModelCounts] = {}
        for s in stats:
            for model, counts in s.models.items():
                into = models.setdefault(model, ModelCounts())
                into.codes = [a + b for a, b in zip(into.codes, counts.codes, strict=True)]
                into.buckets = [a + b for a, b in zip(into.buckets, counts.buckets, strict=True)]
                into.latency_sum += counts.latency_sum
        requests = _counter(names.REQUESTS)
        for model, counts in sorted(models.items()):
            for code, n in zip(STATUS_CLASSES, counts.codes, strict=True):
                if n:
                    requests.add_metric([model, code], n)
        yield requests
        latency = HistogramMetricFamily(
            names.UPSTREAM_LATENCY.name, names.UPSTREAM_LATENCY.help, labels=["model"]
        )
        for model, counts in sorted(models.items()):
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts.buckets, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric([model], cumulative, counts.latency_sum)
        yield latency
        local_captured, local_dropped = (
            self._local_counts() if self._local_counts is not None else (Counter(), Counter())
        )
        captured = _counter(names.CAPTURED)
        for model, n in sorted((Counter(ship.captured) + local_captured).items()):
            captured.add_metric([model], n)
        yield captured
        dropped = Counter(ship.dropped)
        dropped.update(local_dropped)
        dropped["spool_full"] += spool.shed_full
        dropped["disk_full"] += spool.shed_disk
        # The model's 4xx/5xx (and final 1xx/3xx) are no predictions: counted, not spooled.
        dropped["model_error"] += sum(s.model_errors for s in stats)
        dropped["no_prediction"] += sum(s.no_prediction for s in stats)
        dropped.update(self._extra_dropped())
        family = _counter(names.DROPPED)
        for reason, n in sorted(dropped.items()):
            family.add_metric([reason], n)
        yield family
        for m, value in (
            (names.SAMPLED_OUT, sum(s.sampled_out for s in stats)),
            (names.UNFRAMED, self._proxy.unframed),
            (names.CONNECTIONS, self._proxy.connections),
            (names.UPSTREAM_ERRORS, self._proxy.upstream_errors),
            (names.SPOOL_CORRUPT, spool.corrupt_skipped + ship.corrupt_skipped),
            (names.SHIPPED, ship.delivered),
            (names.REDELIVERED, ship.duplicates),
            (names.SHIP_FAILURES, ship.failures),
            (names.QUARANTINE_FULL, ship.quarantine_full),
        ):
            counter = _counter(m)
            counter.add_metric([], value)
            yield counter
        quarantined = _counter(names.QUARANTINED)
        # Every known reason from the start, so that a rate over it is 0, not absent.
        for reason, n in sorted((dict.fromkeys(ADVICE, 0) | ship.quarantined).items()):
            quarantined.add_metric([reason], n)
        yield quarantined
        limits = _counter(names.LIMITS)
        for limit, n in sorted(self._proxy.limits.copy().items()):
            limits.add_metric([limit], n)
        yield limits
        yield _gauge(names.MAX_CONNECTIONS, self._proxy.max_connections)
        yield _gauge(names.OPEN_CONNECTIONS, self._proxy.open_connections)
        yield _gauge(names.SPOOL_BYTES, spool.bytes)
        yield _gauge(names.SPOOL_HELD, spool.held_bytes)
        yield _gauge(names.SPOOL_CAPACITY, self._capacity)

"""Every metric the sidecar exports (see CONVENTIONS.md for the rules)."""

from __future__ import annotations

from typing import Literal

from collectors.naming import MetricName


def _metric(
    name: str,
    help: str,
    type: Literal["counter", "gauge", "histogram"],
    labels: tuple[str, ...],
) -> MetricName:
    return MetricName(name, type, help, labels)


REQUESTS = _metric(
    "sidewatch_sidecar_requests_total",
    "Requests proxied (or tapped), by model and status class (2xx, 4xx...).",
    "counter",
    ("model", "code"),
)
UPSTREAM_LATENCY = _metric(
    "sidewatch_sidecar_upstream_latency_seconds",
    "Time from a request's arrival to the end of the model's response.",
    "histogram",
    ("model",),
)
CAPTURED = _metric(
    "sidewatch_sidecar_events_captured_total",
    "Prediction events written to the spool.",
    "counter",
    ("model",),
)
DROPPED = _metric(
    "sidewatch_sidecar_capture_dropped_total",
    "Captures skipped, by reason (model_error: the model answered 4xx/5xx, no "
    "prediction); the model's traffic is never affected.",
    "counter",
    ("reason",),
)
SAMPLED_OUT = _metric(
    "sidewatch_sidecar_sampled_out_total",
    "Exchanges left out by sampling.",
    "counter",
    (),
)
UNFRAMED = _metric(
    "sidewatch_sidecar_unframed_connections_total",
    "Connections relayed blind because they were not HTTP/1.1 the proxy could frame.",
    "counter",
    (),
)
CONNECTIONS = _metric(
    "sidewatch_sidecar_connections_total",
    "Caller connections the proxy accepted.",
    "counter",
    (),
)
OPEN_CONNECTIONS = _metric(
    "sidewatch_sidecar_open_connections",
    "Caller connections open now.",
    "gauge",
    (),
)
UPSTREAM_ERRORS = _metric(
    "sidewatch_sidecar_upstream_errors_total",
    "Connections to the model server that failed (answered 502).",
    "counter",
    (),
)
LIMITS = _metric(
    "sidewatch_sidecar_limits_total",
    "Caller connections closed by a limit: header_timeout, idle_timeout, body_rate, "
    "connections_evicted (closed, idle, to make room at the cap), connections_refused.",
    "counter",
    ("limit",),
)
MAX_CONNECTIONS = _metric(
    "sidewatch_sidecar_max_connections",
    "Most caller connections the proxy keeps open at once.",
    "gauge",
    (),
)
SPOOL_BYTES = _metric(
    "sidewatch_sidecar_spool_bytes", "Bytes in the spool not yet delivered.", "gauge", ()
)
SPOOL_HELD = _metric(
    "sidewatch_sidecar_spool_held_bytes",
    "Captured bytes held in memory because the spool's disk is full; written as soon as "
    "it takes them (lost only if the sidecar dies meanwhile).",
    "gauge",
    (),
)
SPOOL_CAPACITY = _metric(
    "sidewatch_sidecar_spool_capacity_bytes", "Size limit of the spool.", "gauge", ()
)
SPOOL_CORRUPT = _metric(
    "sidewatch_sidecar_spool_corrupt_records_total",
    "Torn or corrupt stretches of the spool skipped (the reader resumes at the next intact "
    "record; the skipped bytes are quarantined as corrupt).",
    "counter",
    (),
)
SHIPPED = _metric(
    "sidewatch_sidecar_shipped_events_total",
    "Events the monitor confirmed (stored, or already stored).",
    "counter",
    (),
)
REDELIVERED = _metric(
    "sidewatch_sidecar_redelivered_events_total",
    "Events the monitor already had: sent again after a failed or unconfirmed delivery.",
    "counter",
    (),
)
SHIP_FAILURES = _metric(
    "sidewatch_sidecar_ship_failures_total",
    "Failed deliveries to the monitor (each retried).",
    "counter",
    (),
)
QUARANTINED = _metric(
    "sidewatch_sidecar_quarantined_events_total",
    "Events the monitor would not store (and unreadable spool records), kept in the "
    "quarantine by reason (invalid, unknown_model, forbidden, too_large, server_error, "
    "corrupt, malformed) to inspect and replay with `sidewatch quarantine`.",
    "counter",
    ("reason",),
)
QUARANTINE_FULL = _metric(
    "sidewatch_sidecar_quarantine_dropped_events_total",
    "Events lost because the quarantine was at its size limit.",
    "counter",
    (),
)

ALL = {
    m.name: m
    for m in (
        REQUESTS,
        UPSTREAM_LATENCY,
        CAPTURED,
        DROPPED,
        SAMPLED_OUT,
        UNFRAMED,
        CONNECTIONS,
        OPEN_CONNECTIONS,
        UPSTREAM_ERRORS,
        LIMITS,
        MAX_CONNECTIONS,
        SPOOL_BYTES,
        SPOOL_CAPACITY,
        SPOOL_HELD,
        SPOOL_CORRUPT,
        SHIPPED,
        REDELIVERED,
        SHIP_FAILURES,
        QUARANTINED,
        QUARANTINE_FULL,
    )
}

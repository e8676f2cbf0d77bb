"""Delivery: encoded events in, an outcome for each out (stored, duplicate, quarantined).

The one delivery loop of the collectors, used by the sidecar's spool forwarder and by
the SDK alike. Events are cut into batches the monitor accepts (at most
:data:`~collectors.contract.MAX_BATCH_EVENTS` events and ``max_bytes`` bytes each),
gzip-compressed and sent through a :class:`~collectors.transport.Transport`; what
becomes of each answer:

- delivered: the monitor said for every event: stored, duplicate, or rejected with a
  reason; the rejected ones go to the :class:`~collectors.quarantine.Quarantine`;
- retry: the monitor is unreachable, or is not taking this collector's batches now (a
  token to fix, a wrong URL): the same batch again, after exponential backoff with
  full jitter, for as long as it takes (the spool or the SDK's queue holds the rest);
- refused (413, 422...): the batch is halved until the refused event stands alone,
  which is quarantined with the monitor's answer;
- failed (HTTP 500): retried ``failed_attempts`` times, then halved the same way, so
  that one event the monitor cannot take never blocks the ones behind it.

Each reason is logged once, with what to do about it.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.contract import MAX_BATCH_EVENTS, SCHEMA_VERSION
from collectors.quarantine import Quarantine
from collectors.transport import Kind, SendResult, Transport

logger = logging.getLogger("sidewatch.deliver")

MAX_BATCH_BYTES = 16 * 1024 * 1024
"""Default most bytes of one batch before compression: half the monitor's default
request limit (``SIDEWATCH_MAX_REQUEST_BYTES``, 32 MiB, counted after decompression)."""

_WAITING_ADVICE = {
    401: "the monitor does not know the collector's token: set SIDEWATCH_TOKEN to a "
    "valid ingest token",
    403: "the collector's token may not ingest: give it an ingest grant",
    404: "no ingest API at the monitor URL: check SIDEWATCH_MONITOR_URL",
}


@dataclass
class DeliveryStats:
    """What a delivery counted since it was built."""

    stored: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    """Events put in quarantine, by reason."""
    retries: int = 0
    """Attempts that were sent again."""
    splits: int = 0
    """Batches halved because the monitor refused or failed on them."""


class Delivery:
    """Gives every event it is handed an outcome; thread-safe (one transport per thread).

    Args:
        quarantine: Where events the monitor will not store are kept.
        stop: Set to give up waiting (on shutdown): :meth:`deliver` then returns the
            events that got no outcome.
        max_events: Most events per batch.
        max_bytes: Most bytes per batch (uncompressed).
        compress: Gzip batches.
        retry_initial_seconds: First backoff.
        retry_max_seconds: Longest backoff.
        failed_attempts: Tries of a batch the monitor fails on (HTTP 500) before it is
            halved.
    """

    def __init__(
        self,
        quarantine: Quarantine,
        *,
        stop: threading.Event | None = None,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BATCH_BYTES,
        compress: bool = True,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 30.0,
        failed_attempts: int = 3,
    ) -> None:
        if not 1 <= max_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_events must be in 1..{MAX_BATCH_EVENTS}")
        self.quarantine = quarantine
        self._stop = stop or threading.Event()
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._compress = compress
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._failed_attempts = failed_attempts
        self._lock = threading.Lock()
        self._stats = DeliveryStats()
        self._warned: set[str] = set()

    def stats(self) -> DeliveryStats:
        """A snapshot of the counters."""
        with self._lock:
            s = self._stats
            return DeliveryStats(s.stored, s.duplicates, dict(s.quarantined), s.retries, s.splits)

    def deliver(self, transport: Transport, kind: Kind, events: Sequence[bytes]) -> list[bytes]:
        """Send events of one kind until each has an outcome, or ``stop`` is set.

        Returns:
            The events that got no outcome (``stop`` was set first); empty otherwise.

        Raises:
            OSError: The quarantine could not be written (disk full): the events from
                the failing batch on have no outcome, and the caller keeps them.
        """
        batches = deque(self._cut(events))
        while batches:
            batch = batches.popleft()
            outcome = self._send(transport, kind, batch)
            if outcome is None:
                return [e for b in (batch, *batches) for e in b]
            if outcome == "split":
                half = len(batch) // 2
                batches.extendleft((batch[half:], batch[:half]))
                with self._lock:
                    self._stats.splits += 1
        return []

    def _send(self, transport: Transport, kind: Kind, batch: list[bytes]) -> str | None:
        """One batch to its outcome: "done", "split", or None (stopped)."""
        delay = self._retry_initial
        failures = 0
        while True:
            result = transport.send(kind, self._body(kind, batch), gzipped=self._compress)
            if result.outcome == "delivered":
                self._delivered(kind, batch, result)
                return "done"
            if result.outcome == "failed":
                failures += 1
            if result.outcome == "refused" or failures >= self._failed_attempts:
                if len(batch) > 1:
                    return "split"
                self._put(kind, _reason(result), result.detail, batch)
                return "done"
            self._warn_waiting(result)
            with self._lock:
                self._stats.retries += 1
            if self._stop.wait(random.uniform(0, delay)):  # full jitter
                return None
            delay = min(delay * 2, self._retry_max)

    def _delivered(self, kind: Kind, batch: list[bytes], result: SendResult) -> None:
        by_reason: dict[tuple[str, str], list[bytes]] = {}
        for r in result.rejections:
            if 0 <= r.index < len(batch):
                by_reason.setdefault((r.reason, r.detail), []).append(batch[r.index])
        for (reason, detail), events in by_reason.items():
            self._put(kind, _safe_reason(reason), detail, events)
        with self._lock:
            self._stats.stored += result.stored
            self._stats.duplicates += result.duplicates

    def _put(self, kind: Kind, reason: str, detail: str, events: list[bytes]) -> None:
        kept = self.quarantine.put(kind, reason, detail, events)
        if kept:
            with self._lock:
                q = self._stats.quarantined
                q[reason] = q.get(reason, 0) + kept

    def _cut(self, events: Sequence[bytes]) -> list[list[bytes]]:
        batches: list[list[bytes]] = []
        current: list[bytes] = []
        size = 0
        for event in events:
            if current and (len(current) >= self._max_events or
                            size + len(event) + 1 > self._max_bytes):  # fmt: skip
                batches.append(current)
                current, size = [], 0
            current.append(event)
            size += len(event) + 1
        if current:
            batches.append(current)
        return batches

    def _body(self, kind: Kind, batch: list[bytes]) -> bytes:
        key = b"events" if kind == "predictions" else b"labels"
        body = b'{"schema_version":%d,"%s":[%s]}' % (SCHEMA_VERSION, key, b",".join(batch))
        return gzip.compress(body, compresslevel=1) if self._compress else body

    def _warn_waiting(self, result: SendResult) -> None:
        key = str(result.status or result.outcome)
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        advice = _WAITING_ADVICE.get(result.status or 0, "events wait and are sent again")
        logger.warning("the monitor did not take a batch (%s): %s; nothing is dropped "
                       "meanwhile", result.detail[:300], advice)  # fmt: skip


def _reason(result: SendResult) -> str:
    """The quarantine reason of an event the monitor refused or failed on, alone."""
    if result.outcome == "failed":
        return "server_error"
    return "too_large" if result.status == 413 else "invalid"


def _safe_reason(reason: str) -> str:
    known = ("invalid", "unknown_model", "forbidden")
    return reason if reason in known else "invalid"

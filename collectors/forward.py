"""Forward: spooled records in, delivered batches out (at least once).

One background thread reads batches from a :class:`~collectors.spool.Spool`, sends
them gzip-compressed through a :class:`~collectors.ship.Shipper`, and acknowledges
them only once the monitor confirms; a failed delivery rewinds the spool and retries
with exponential backoff and full jitter, so nothing accepted is lost while the
monitor is down, slow or restarting. The monitor's idempotent ingest turns the
redeliveries into storage exactly once.

A spool record is one encoded event, prefixed by its kind: ``p`` (prediction) or
``l`` (label); or ``x``, a raw exchange that the sidecar captured, which an
``expand`` function turns into prediction records when it is shipped.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from collectors.contract import SCHEMA_VERSION
from collectors.ship import Kind, Shipper
from collectors.spool import Spool

logger = logging.getLogger("sidewatch.forward")

PREDICTION = b"p"
LABEL = b"l"
EXCHANGE = b"x"
_KINDS: dict[bytes, Kind] = {PREDICTION: "predictions", LABEL: "labels"}


def encode(kind: Kind, event: bytes) -> bytes:
    """The spool record of one encoded event."""
    return (PREDICTION if kind == "predictions" else LABEL) + event


@dataclass(frozen=True, slots=True)
class ForwardStats:
    """Counters of a forwarder."""

    delivered: int
    """Records the monitor confirmed (stored or already stored)."""
    stored: int
    duplicates: int
    """Records the monitor already had: redeliveries after a failure."""
    rejected: int
    """Records in batches the monitor refused (HTTP 4xx); dropped, the log says why."""
    failures: int
    """Failed attempts (each followed by a retry)."""
    malformed: int
    """Spool records with an unknown kind, dropped."""


class Forwarder:
    """Ships a spool's records to the monitor in the background.

    Args:
        spool: Where captured records wait.
        shipper: Sends one batch; owned by the forwarder's thread.
        batch_size: Most records per batch.
        idle_seconds: Pause when the spool is empty.
        linger_seconds: Pause after a batch that was not full, so that records gather
            into fewer, fuller batches (fewer requests to the monitor, fewer wake-ups
            beside the model); 0 reads again at once.
        retry_initial_seconds: First backoff after a failure.
        retry_max_seconds: Longest backoff.
        compress: Whether to gzip batches (the monitor accepts ``Content-Encoding: gzip``).
        expand: Turns an ``x`` record into prediction records (the sidecar's decoding);
            without it ``x`` records count as malformed.
    """

    def __init__(
        self,
        spool: Spool,
        shipper: Shipper,
        *,
        batch_size: int = 1_000,
        idle_seconds: float = 0.2,
        linger_seconds: float = 0.0,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 30.0,
        compress: bool = True,
        expand: Callable[[bytes], list[bytes]] | None = None,
    ) -> None:
        self._spool = spool
        self._shipper = shipper
        self._batch = batch_size
        self._idle = idle_seconds
        self._linger = linger_seconds
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._compress = compress
        self._expand = expand
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("delivered", "stored", "duplicates", "rejected", "failures", "malformed"), 0
        )

    def start(self) -> None:
        """Start the forwarding thread."""
        self._thread = threading.Thread(target=self._run, name="sidewatch-forward", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the spool now rather than after the idle pause."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current attempt; undelivered records stay in the spool."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._shipper.close()

    def stats(self) -> ForwardStats:
        """A snapshot of the counters."""
        with self._lock:
            return ForwardStats(**self._counts)

    def forward_once(self) -> int:
        """Read one batch and deliver it (retrying until it is delivered or stopped).

        Returns:
            How many records the batch held (0 when the spool was empty).
        """
        records, position = self._spool.read(self._batch)
        if not records:
            return 0
        count = len(records)
        groups: dict[Kind, list[bytes]] = {"predictions": [], "labels": []}
        if self._expand is not None:
            expand = self._expand
            records = [
                r for rec in records for r in (expand(rec) if rec[:1] == EXCHANGE else (rec,))
            ]
        for record in records:
            kind = _KINDS.get(record[:1])
            if kind is None:
                self._count("malformed", 1)
                continue
            groups[kind].append(record[1:])
        delay = self._retry_initial
        for kind, events in groups.items():
            while events and not self._deliver(kind, events):
                self._count("failures", 1)
                if self._stop.wait(random.uniform(0, delay)):
                    self._spool.rewind()
                    return count
                delay = min(delay * 2, self._retry_max)
        self._spool.ack(position)
        return count

    def _deliver(self, kind: Kind, events: list[bytes]) -> bool:
        key = b"events" if kind == "predictions" else b"labels"
        body = b'{"schema_version":%d,"%s":[%s]}' % (SCHEMA_VERSION, key, b",".join(events))
        if self._compress:
            body = gzip.compress(body, compresslevel=1)
        result = self._shipper.ship(kind, body, gzipped=self._compress)
        if result.outcome == "delivered":
            with self._lock:
                self._counts["delivered"] += len(events)
                self._counts["stored"] += result.stored
                self._counts["duplicates"] += result.duplicates
            return True
        if result.outcome == "rejected":
            self._count("rejected", len(events))
            logger.error("the monitor rejected %d %s: %s", len(events), kind, result.detail)
            return True  # retrying cannot help; the batch is dropped and counted
        return False

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._counts[key] += n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                count = self.forward_once()
                if count == 0:
                    self._wake.wait(self._idle)
                    self._wake.clear()
                elif count < self._batch and self._linger > 0:
                    self._stop.wait(self._linger)
            except Exception:  # keep forwarding: one bad batch must not stop the thread
                logger.exception("forwarding failed; retrying")
                self._spool.rewind()
                self._stop.wait(self._retry_initial)

"""Forward: spooled records in, an outcome for each out (at least once on the wire).

One background thread reads batches of records from a :class:`~collectors.spool.Spool`
and hands their events to the :class:`~collectors.deliver.Delivery` loop, which gives
each one an outcome (stored, duplicate, or quarantined with its reason); only then is
the spool acknowledged. While the monitor is down, slow, restarting or refusing the
token, the records stay spooled and are sent again (backoff with full jitter), so
nothing accepted is lost; the monitor's idempotent ingest stores redeliveries once.

A spool record (:mod:`collectors.record`) is one encoded event, prefixed by its kind:
``p`` (prediction) or ``l`` (label); or ``x``, a raw exchange that the sidecar
captured, which an ``expand`` function turns into prediction records when it is
shipped. A record of no known kind, and the bytes of a corrupt record the spool
skipped, are quarantined too (``malformed``, ``corrupt``): nothing read from the spool
is dropped silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collectors.deliver import MAX_BATCH_BYTES, Delivery
from collectors.quarantine import Quarantine
from collectors.record import EXCHANGE, KINDS
from collectors.spool import Spool
from collectors.transport import Kind, Transport

logger = logging.getLogger("sidewatch.forward")

QUARANTINE_DIR = "quarantine"
"""The quarantine's directory inside a spool's, by default."""


@dataclass(frozen=True, slots=True)
class ForwardStats:
    """Counters of a forwarder."""

    delivered: int
    """Events the monitor answered for (stored, duplicate or rejected)."""
    stored: int
    duplicates: int
    """Events the monitor already had: redeliveries after a failure."""
    quarantined: dict[str, int] = field(default_factory=dict)
    """Events (and unreadable records) put in quarantine, by reason."""
    failures: int = 0
    """Failed attempts (each followed by a retry)."""


class Forwarder:
    """Ships a spool's records to the monitor in the background.

    Args:
        spool: Where captured records wait.
        transport: Sends one batch; owned by the forwarder's thread.
        quarantine: Where events the monitor will not store go; by default
            ``quarantine/`` in the spool's directory.
        batch_size: Most spool records read at once (an exchange may expand to many
            events; the delivery cuts what it sends to what the monitor accepts).
        max_batch_bytes: Most bytes of one batch sent.
        idle_seconds: Pause when the spool is empty.
        linger_seconds: Pause after a batch that was not full, so that records gather
            into fewer, fuller batches (fewer requests to the monitor, fewer wake-ups
            beside the model); 0 reads again at once.
        retry_initial_seconds: First backoff after a failure.
        retry_max_seconds: Longest backoff.
        compress: Whether to gzip batches (the monitor accepts ``Content-Encoding: gzip``).
        expand: Turns an ``x`` record into prediction records (the sidecar's decoding);
            without it ``x`` records are quarantined as malformed.
    """

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        quarantine: Quarantine | None = None,
        batch_size: int = 1_000,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        idle_seconds: float = 0.2,
        linger_seconds: float = 0.0,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 30.0,
        compress: bool = True,
        expand: Callable[[bytes], list[bytes]] | None = None,
    ) -> None:
        self._spool = spool
        self._transport = transport
        self._batch = batch_size
        self._idle = idle_seconds
        self._linger = linger_seconds
        self._expand = expand
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.quarantine = quarantine or Quarantine(Path(spool.directory) / QUARANTINE_DIR)
        self._delivery = Delivery(
            self.quarantine,
            stop=self._stop,
            max_bytes=max_batch_bytes,
            compress=compress,
            retry_initial_seconds=retry_initial_seconds,
            retry_max_seconds=retry_max_seconds,
        )
        spool.on_corrupt = self._corrupt

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
        self._transport.close()

    def stats(self) -> ForwardStats:
        """A snapshot of the counters."""
        d = self._delivery.stats()
        quarantined = dict(d.quarantined)
        for reason in ("malformed", "corrupt"):
            kept = self.quarantine.counts().get(reason, 0)
            if kept:
                quarantined[reason] = kept
        return ForwardStats(
            delivered=d.stored + d.duplicates + sum(d.quarantined.values()),
            stored=d.stored,
            duplicates=d.duplicates,
            quarantined=quarantined,
            failures=d.retries,
        )

    def forward_once(self) -> int:
        """Read one batch and give each of its events an outcome (or stop trying).

        Returns:
            How many records the batch held (0 when the spool was empty).

        Raises:
            OSError: The quarantine could not be written: the records stay spooled.
        """
        records, position = self._spool.read(self._batch)
        if not records:
            return 0
        count = len(records)
        if self._expand is not None:
            expand = self._expand
            records = [
                r for rec in records for r in (expand(rec) if rec[:1] == EXCHANGE else (rec,))
            ]
        groups: dict[Kind, list[bytes]] = {"predictions": [], "labels": []}
        malformed = []
        for record in records:
            kind = KINDS.get(record[:1])
            if kind is None:
                malformed.append(record)
            else:
                groups[kind].append(record[1:])
        if malformed:
            self.quarantine.put("records", "malformed", "a spool record of no known kind",
                                raw=malformed)  # fmt: skip
        for kind, events in groups.items():
            if events and self._delivery.deliver(self._transport, kind, events):
                self._spool.rewind()  # stopped: what got no outcome is read again later
                return count
        self._spool.ack(position)
        return count

    def _corrupt(self, raw: bytes) -> None:
        self.quarantine.put("records", "corrupt", "a spool record failed its checksum",
                            raw=[raw])  # fmt: skip

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
                logger.exception("forwarding failed; the records stay spooled, retrying")
                self._spool.rewind()
                self._stop.wait(1.0)

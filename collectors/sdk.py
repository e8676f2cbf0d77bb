"""The in-process SDK: events in from the host's code, batches out to the monitor.

``Client.record`` copies what it is given onto a bounded in-memory queue and returns;
background delivery threads hand batches to the collectors' one delivery loop
(:class:`~collectors.deliver.Delivery`: retry with exponential backoff and full
jitter, batches cut to what the monitor accepts), which gives each event an outcome:
stored, duplicate, or quarantined on disk with its reason (``quarantine_dir``), to
replay once the cause is fixed. Events still unshipped when ``close`` runs out of time
are quarantined too. The caller is never blocked on I/O and never sees an exception: a
full queue, a closed client or an unusable argument drops the event and counts it.

What ``record`` costs the caller: about 10 us to build the event, and one short lock
around an O(1) append (a delivery thread holds the same lock only to pop at most one
batch of references, about 30 us for 1,000 events), so a call returns within about a
millisecond even while the monitor is down; ``tests/collectors/test_sdk.py`` holds it
to that bound.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from collectors.deliver import Delivery
from collectors.quarantine import Quarantine
from collectors.settings import ClientSettings
from collectors.transport import HttpTransport, Kind, Transport

logger = logging.getLogger("sidewatch.sdk")

_Item = tuple[Kind, bytes]
"""A queued event, already encoded: bytes are not tracked by the garbage collector, so
a full queue costs the host's collections nothing."""


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of one client since it was built."""

    recorded: int
    """Events accepted onto the queue."""
    stored: int
    """Events the monitor stored."""
    duplicates: int
    """Events the monitor already had (a redelivery)."""
    dropped_queue_full: int
    dropped_closed: int
    """Events recorded after ``close``."""
    dropped_invalid: int
    """Calls whose arguments could not be turned into an event."""
    quarantined: dict[str, int]
    """Events kept in the quarantine, by reason: refused by the monitor (``invalid``,
    ``unknown_model``, ``forbidden``...) or still unshipped when ``close`` ran out of
    time (``undelivered``)."""
    lost: int
    """Events that could not even be quarantined (its size limit, or the disk, refused)."""
    retries: int
    """Failed attempts that were retried."""
    queued: int
    """Events waiting now, in the queue or in flight."""


class Client:
    """Records predictions and labels and ships them to the monitor in the background.

    Args:
        settings: Where the monitor is and how much to buffer; by default read from
            ``SIDEWATCH_*`` environment variables.
        transport: Builds the transport of one delivery thread; by default HTTP to
            ``settings.monitor_url``.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        transport: Callable[[], Transport] | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        token = self.settings.token.get_secret_value() if self.settings.token else None
        url = str(self.settings.monitor_url)
        timeout = self.settings.timeout_seconds
        self._new_transport = transport or (lambda: HttpTransport(url, token, timeout))
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._counts = dict.fromkeys(
            ("recorded", "dropped_queue_full", "dropped_closed", "dropped_invalid", "lost"), 0
        )
        self._delivery = Delivery(
            Quarantine(self.settings.quarantine_dir, max_bytes=self.settings.quarantine_max_bytes),
            stop=self._closing,
            max_events=self.settings.batch_size,
            compress=False,
            retry_initial_seconds=self.settings.retry_initial_seconds,
            retry_max_seconds=self.settings.retry_max_seconds,
        )
        self._warned: set[str] = set()
        self._model = self.settings.model
        self._model_version = self.settings.model_version
        self._pid = os.getpid()
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count()
        self._threads: list[threading.Thread] = []

    # -- the caller's side -------------------------------------------------------------

    def record(
        self,
        features: Mapping[str, Any],
        *,
        predicted_class: int | str | None = None,
        score: float | None = None,
        probabilities: Mapping[str, float] | None = None,
        value: float | None = None,
        model: str | None = None,
        model_version: str | None = None,
        latency_seconds: float | None = None,
        event_id: str | None = None,
        timestamp: float | None = None,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
        variant: str | None = None,
        stage: str | None = None,
        segment: Mapping[str, str] | None = None,
        correlation_key: str | None = None,
    ) -> str | None:
        """Queue one prediction event; never blocks on I/O, never raises.

        Args:
            features: The model's named inputs for this row (copied).
            predicted_class: The class served, for classifiers.
            score: The served score (a binary classifier's positive probability).
            probabilities: Probability per class, for multiclass models.
            value: The predicted value, for regressors.
            model: Model name; defaults to ``settings.model``.
            model_version: Model version; defaults to ``settings.model_version``.
            latency_seconds: How long the model took.
            event_id: Unique id; generated when omitted.
            timestamp: Epoch seconds when the model served it; now when omitted.
            trace_id: W3C trace id (32 hex digits), to link pipeline stages.
            parent_span_id: W3C span id (16 hex digits) of the calling span.
            variant: ``shadow`` or the A/B arm.
            stage: The pipeline stage that made the prediction.
            segment: Attributes to slice results by.
            correlation_key: A business key that a later label may use.

        Returns:
            The event id (keep it to send the label later), or None if the event was
            dropped.
        """
        try:
            event_id = event_id or self._new_id()
            outputs: dict[str, Any] = {}
            if predicted_class is not None:
                outputs["predicted_class"] = predicted_class
            if score is not None:
                outputs["score"] = score
            if probabilities is not None:
                outputs["probabilities"] = probabilities
            if value is not None:
                outputs["value"] = value
            event: dict[str, Any] = {
                "event_id": event_id,
                "model": model or self._model,
                "model_version": model_version or self._model_version,
                "timestamp": time.time() if timestamp is None else timestamp,
                "features": features,
                "outputs": outputs,
            }
            optional = (
                ("latency_seconds", latency_seconds),
                ("trace_id", trace_id),
                ("parent_span_id", parent_span_id),
                ("variant", variant),
                ("stage", stage),
                ("correlation_key", correlation_key),
                ("segment", segment or None),
            )
            for key, item in optional:
                if item is not None:
                    event[key] = item
            if event["model"] is None or event["model_version"] is None:
                raise ValueError("record() needs model and model_version (or settings)")
            # Encoding now snapshots the caller's mappings, which it may change later;
            # numpy scalars and arrays, common in model code, encode as plain JSON.
            encoded = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
        except Exception as exc:  # the host's request must never see our failure
            self._count_invalid(exc)
            return None
        return event_id if self._put("predictions", encoded) else None

    def record_label(
        self,
        value: float | int | bool | str,
        *,
        prediction_id: str | None = None,
        correlation_key: str | None = None,
        model: str | None = None,
        event_id: str | None = None,
        timestamp: float | None = None,
    ) -> str | None:
        """Queue the ground truth for an earlier prediction; never raises.

        Args:
            value: The true class or value.
            prediction_id: The event id that ``record`` returned for the prediction.
            correlation_key: Or the prediction's correlation key.
            model: Model name; defaults to ``settings.model``.
            event_id: The label's own unique id; generated when omitted.
            timestamp: Epoch seconds when the truth became known; now when omitted.

        Returns:
            The label's event id, or None if it was dropped.
        """
        try:
            if (prediction_id is None) == (correlation_key is None):
                raise ValueError("record_label() needs one of prediction_id, correlation_key")
            label: dict[str, Any] = {
                "event_id": event_id or self._new_id(),
                "model": model or self._model,
                "value": value,
                "timestamp": time.time() if timestamp is None else timestamp,
            }
            if prediction_id is not None:
                label["prediction_id"] = prediction_id
            else:
                label["correlation_key"] = correlation_key
            if label["model"] is None:
                raise ValueError("record_label() needs model (or settings.model)")
            encoded = orjson.dumps(label, option=orjson.OPT_SERIALIZE_NUMPY)
        except Exception as exc:  # the host's request must never see our failure
            self._count_invalid(exc)
            return None
        return str(label["event_id"]) if self._put("labels", encoded) else None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was shipped (or given up on).

        Returns:
            True if the queue drained within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting events, ship what is queued for up to ``timeout`` seconds.

        Events still unshipped at the deadline are quarantined as ``undelivered``.
        """
        self.flush(timeout)
        self._closing.set()
        self._wake.set()
        for thread in self._threads:
            # A batch in flight is quarantined by its delivery thread when it gives up.
            thread.join(self.settings.timeout_seconds)
        with self._lock:
            left = list(self._queue)
            self._queue.clear()
        for kind in ("predictions", "labels"):
            self._keep_undelivered(kind, [doc for k, doc in left if k == kind])

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        d = self._delivery.stats()
        with self._lock:
            return ClientStats(
                **self._counts,
                stored=d.stored,
                duplicates=d.duplicates,
                quarantined=self._delivery.quarantine.counts(),
                retries=d.retries,
                queued=len(self._queue) + self._in_flight,
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _new_id(self) -> str:
        # 64 random bits per client (and per forked child) plus a counter: unique
        # without a system call per event.
        return f"{self._id_prefix}{next(self._id_counter):010x}"

    def _put(self, kind: Kind, item: bytes) -> bool:
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._closing.is_set():
                self._counts["dropped_closed"] += 1
                return False
            if len(self._queue) >= self.settings.queue_size:
                self._counts["dropped_queue_full"] += 1
                return False
            self._queue.append((kind, item))
            self._counts["recorded"] += 1
            full = len(self._queue) >= self.settings.batch_size
        if not self._threads:
            self._start()
        if full:
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._threads:
                return
            # Several batches in flight keep the monitor busy while the next is encoded.
            for i in range(self.settings.max_in_flight):
                thread = threading.Thread(
                    target=self._run, name=f"sidewatch-delivery-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _after_fork(self) -> None:
        # A forked child inherits the queue but not the thread: start clean.
        self._lock = threading.Lock()
        self._idle = threading.Condition(threading.Lock())
        self._queue = deque()
        self._in_flight = 0
        self._threads = []
        self._pid = os.getpid()
        self._id_prefix = os.urandom(8).hex()

    def _count_invalid(self, exc: Exception) -> None:
        with self._lock:
            self._counts["dropped_invalid"] += 1
        self._warn_once("invalid", f"Sidewatch dropped an event it could not build: {exc}")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def _run(self) -> None:
        transport = self._new_transport()
        interval = self.settings.flush_interval_seconds
        try:
            while not self._closing.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                while self._deliver_one_batch(transport):
                    pass
                with self._idle:
                    self._idle.notify_all()
        finally:
            transport.close()

    def _deliver_one_batch(self, transport: Transport) -> bool:
        with self._lock:
            n = min(len(self._queue), self.settings.batch_size)
            items = [self._queue.popleft() for _ in range(n)]
            self._in_flight += n
        if not items:
            return False
        for kind in ("predictions", "labels"):
            docs = [doc for k, doc in items if k == kind]
            if docs:
                self._deliver(transport, kind, docs)
        with self._lock:
            self._in_flight -= n
        return not self._closing.is_set()

    def _deliver(self, transport: Transport, kind: Kind, docs: list[bytes]) -> None:
        try:
            left = self._delivery.deliver(transport, kind, docs)
        except OSError as exc:  # the quarantine could not be written
            self._lose(len(docs), exc)
            return
        self._keep_undelivered(kind, left)

    def _keep_undelivered(self, kind: Kind, docs: list[bytes]) -> None:
        if not docs:
            return
        try:
            kept = self._delivery.quarantine.put(
                kind, "undelivered", "still unshipped when the client closed", docs
            )
        except OSError as exc:
            self._lose(len(docs), exc)
            return
        if not kept:
            self._lose(len(docs), None)

    def _lose(self, n: int, exc: OSError | None) -> None:
        with self._lock:
            self._counts["lost"] += n
        why = f"the disk refused it ({exc})" if exc else "it is full"
        logger.error("Sidewatch lost %d events: they could not be quarantined because %s",
                     n, why)  # fmt: skip

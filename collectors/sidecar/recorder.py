"""Recorder: a finished exchange in, request metrics and one spool record out.

The proxy's (and the tap's) side of capture, on the request's path: once a response
has ended, :meth:`Recorder.finished` counts it (by model, status class and latency:
:class:`RequestStats`, read by ``/metrics``) and, for a sampled ``2xx`` exchange,
appends it to the spool as raw bytes (both heads as received less their credentials,
both bodies: :func:`~collectors.record.encode_exchange`), so what the model served is
durable within microseconds of being served and survives ``kill -9``. All decoding
happens later, in the shipper process (:mod:`collectors.sidecar.decoder`).

Nothing secret is written to disk: credential headers (:data:`ALWAYS_STRIPPED` and
those configured) are cut from the heads before the record is made, and where a field
policy is configured (deny, redact or allow lists) the recorder decodes the exchange
itself and spools only the policed events, never the bodies. That costs the decoding
on the event loop, so only sidecars with a policy pay it.

This is the hot path (``bench/sidecar.py`` measures it): plain ints and a bounded
cache of targets, no locks, no parsing of headers.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collectors.contract import NAME_PATTERN
from collectors.record import Exchange, encode_exchange, target_path
from collectors.sidecar.decode import Decoder, model_in_path
from collectors.spool import MAX_RECORD_BYTES, Spool

if TYPE_CHECKING:
    from collectors.sidecar.decoder import ExchangeDecoder

_NAME = re.compile(NAME_PATTERN)
ALWAYS_STRIPPED = ("authorization", "proxy-authorization", "cookie", "set-cookie")
"""Credential headers never written to the spool, whatever the settings say."""


def strip_pattern(names: Iterable[str] = ()) -> re.Pattern[bytes]:
    """A pattern matching whole lines (continuation lines included) of the headers
    :data:`ALWAYS_STRIPPED` and ``names`` in a raw head; ``sub(b"", head)`` cuts them.
    About a microsecond per head."""
    wanted = sorted({*ALWAYS_STRIPPED, *(n.lower() for n in names)})
    alternatives = b"|".join(re.escape(n.encode("latin-1")) for n in wanted)
    return re.compile(rb"\r\n(?i:" + alternatives + rb")[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_MODEL_LABELS = 32
"""Distinct ``model`` label values kept; later ones are counted as ``other``."""
STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass(slots=True)
class ModelCounts:
    """One model's requests: by status class (index of :data:`STATUS_CLASSES`) and
    latency (per bucket of :data:`LATENCY_BUCKETS`, then +Inf), plain ints."""

    codes: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def copy(self) -> ModelCounts:
        """A snapshot."""
        return ModelCounts(list(self.codes), list(self.buckets), self.latency_sum)


@dataclass
class RequestStats:
    """Requests seen, by model, counted by one writer and read at scrape time."""

    models: dict[str, ModelCounts] = field(default_factory=dict)
    sampled_out: int = 0
    model_errors: int = 0
    """Exchanges the model answered 4xx or 5xx: no prediction, not spooled."""
    no_prediction: int = 0
    """Other exchanges that are no prediction (a final 1xx or 3xx status)."""

    def copy(self) -> RequestStats:
        """A snapshot for a reader in another thread."""
        return RequestStats(
            {name: counts.copy() for name, counts in list(self.models.items())},
            self.sampled_out,
            self.model_errors,
            self.no_prediction,
        )


class Recorder:
    """The capture's side of the request path: request metrics, the spool append.

    Args:
        model: The model's name for the metrics' ``model`` label; default: the path's.
        decoders: The payload formats, whose paths name models.
        spool: Where exchanges go.
        stats: Where requests are counted (written by this recorder only).
        strip: Header lines cut from both heads before they are spooled
            (:func:`strip_pattern`; default: the credentials).
        policy: Set where a field policy is configured: each exchange is decoded here
            and only its (policed) events are spooled, never its bodies or heads.
    """

    def __init__(
        self,
        model: str | None,
        decoders: tuple[Decoder, ...],
        spool: Spool,
        stats: RequestStats,
        *,
        strip: re.Pattern[bytes] | None = None,
        policy: ExchangeDecoder | None = None,
    ) -> None:
        self._model = model
        self._decoders = decoders
        self._append = spool.append
        self.stats = stats
        self._strip = (strip or strip_pattern()).sub
        self._policy = policy
        self._prefix = "sc-" + os.urandom(6).hex() + "-"
        self._ids = itertools.count()
        self._by_target: dict[bytes, ModelCounts] = {}
        self._wall_offset = 0.0
        self.tick()

    def tick(self) -> None:
        """Take the wall clock again (called twice a second): wall times are derived from
        ``time.perf_counter()``, read once per request, and this offset."""
        self._wall_offset = time.time() - time.perf_counter()

    def finished(
        self,
        request_head: bytes,
        request_body: list[bytes] | None,
        response_head: bytes,
        response_body: list[bytes] | None,
        status: int,
        started: float,
        ended: float,
        sampled: bool,
        model: str = "",
    ) -> None:
        """Count a finished exchange and spool it if it is to be captured.

        Args:
            request_head: The request's head as received.
            request_body: Its body's pieces; None if over the capture limit.
            response_head: The response's head as received.
            response_body: Its body's pieces; None if over the limit or not kept.
            status: The response's status code.
            started: ``time.perf_counter()`` when the request's head arrived.
            ended: ``time.perf_counter()`` when the response ended.
            sampled: Whether the exchange was sampled in.
            model: The model, where the caller knows it (the tap).

        Only a ``2xx`` exchange can be a prediction: any other is counted (the model's
        4xx and 5xx as ``model_error``) and never spooled.
        """
        latency = ended - started
        target = request_head[request_head.find(b" ") + 1 : request_head.find(b" HTTP/")]
        counts = self._by_target.get(target) or self._counts(target, model)
        counts.codes[status // 100 if status < 600 else 5] += 1
        counts.buckets[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
        counts.latency_sum += latency
        if not 200 <= status < 300:
            if status >= 400:
                self.stats.model_errors += 1
            else:
                self.stats.no_prediction += 1
        elif sampled:
            ident = self._prefix + str(next(self._ids))
            wall = started + self._wall_offset
            request = None if request_body is None else b"".join(request_body)
            response = None if response_body is None else b"".join(response_body)
            if self._policy is not None:
                self._spool_events(Exchange(ident, wall, latency, status, sampled, request_head,
                                            request, response_head, response, model))  # fmt: skip
                return
            request_head = self._strip(b"", request_head)
            response_head = self._strip(b"", response_head)
            record = encode_exchange(ident, wall, latency, status, sampled, model,
                                     request_head, request, response_head, response)  # fmt: skip
            if len(record) > MAX_RECORD_BYTES:  # bodies left out: decoding counts too_large
                record = encode_exchange(ident, wall, latency, status, sampled, model,
                                         request_head, None, response_head, None)  # fmt: skip
            self._append(record)  # a shed append is counted by the spool
        else:
            self.stats.sampled_out += 1

    def _spool_events(self, exchange: Exchange) -> None:
        assert self._policy is not None
        for event in self._policy.exchange_events(exchange):
            if len(event) <= MAX_RECORD_BYTES:
                self._append(event)  # a shed append is counted by the spool
            else:
                self._policy.count_dropped("too_large")

    def _counts(self, target: bytes, model: str) -> ModelCounts:
        name = self._model or model or model_in_path(self._decoders, target_path(target))[1]
        models = self.stats.models
        if name is None:
            label = "unknown"
        elif name in models or (
            len(models) < MAX_MODEL_LABELS and _NAME.match(name) and len(name) <= 128
        ):
            label = name
        else:
            label = "other"
        counts = models.get(label)
        if counts is None:
            counts = models[label] = ModelCounts()
        if len(self._by_target) < 1024:  # a cache of targets seen, bounded
            self._by_target[target] = counts
        return counts

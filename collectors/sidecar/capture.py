"""Capture: a finished exchange in, a spool record out; later, that record in, events out.

The proxy's event loop does the least it can on the request's path: once a response
has ended, :class:`Recorder` counts it and appends the exchange to the spool as raw
bytes (both heads as received less their credentials, both bodies:
:func:`encode_exchange`), so what the model served is durable within microseconds of
being served and survives ``kill -9``. Everything else happens in the shipper process,
when the record is shipped: :class:`ExchangeDecoder` reads the heads, decompresses
(with a cap), decodes, applies the field policy and checks the event contract. Event
ids derive from the exchange's id, so a record shipped twice yields the same events
and the monitor stores them once.

Nothing secret is written to disk: credential headers (:data:`ALWAYS_STRIPPED` and
those configured) are cut from the heads before the record is made, and where a field
policy is configured (deny, redact or allow lists) the recorder decodes the exchange
itself and spools only the policed events, never the bodies. That costs the decoding
on the event loop, so only sidecars with a policy pay it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from collectors.contract import NAME_PATTERN
from collectors.forward import EXCHANGE, PREDICTION
from collectors.sidecar.decode import Decoded, DecodeError, Decoder, Message
from collectors.sidecar.policy import FieldPolicy, clean_name
from collectors.sidecar.trace import parse_traceparent
from collectors.spool import MAX_RECORD_BYTES, Spool

logger = logging.getLogger("sidewatch.sidecar")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,100}$")
_NAME = re.compile(NAME_PATTERN)
_HEADER_NAME = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_LINE = re.compile(rb"\r\n(" + _HEADER_NAME + rb")[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)")
ALWAYS_STRIPPED = ("authorization", "proxy-authorization", "cookie", "set-cookie")
"""Credential headers never written to the spool, whatever the settings say."""
_VERSION = 2
_HEADER = struct.Struct(">BddHB6I")
"""Format version, wall time, latency, status, flags, lengths of the six fields."""
_SAMPLED, _REQUEST_CUT, _RESPONSE_CUT = 1, 2, 4


def encode_exchange(
    exchange_id: str,
    wall_time: float,
    latency: float,
    status: int,
    sampled: bool,
    model: str,
    request_head: bytes,
    request_body: bytes | None,
    response_head: bytes,
    response_body: bytes | None,
) -> bytes:
    """The spool record of an exchange: kind byte, fixed header, the fields' bytes.

    A body is None when it went over the capture limit (or, for a response, when the
    exchange was sampled out and only its inputs are kept).
    """
    flags = (
        (_SAMPLED if sampled else 0)
        | (_REQUEST_CUT if request_body is None else 0)
        | (_RESPONSE_CUT if response_body is None else 0)
    )
    ident = exchange_id.encode()
    name = model.encode()
    request_body = request_body or b""
    response_body = response_body or b""
    header = _HEADER.pack(_VERSION, wall_time, latency, status, flags, len(ident), len(name),
                          len(request_head), len(request_body), len(response_head),
                          len(response_body))  # fmt: skip
    return b"".join((EXCHANGE, header, ident, name, request_head, request_body, response_head,
                     response_body))  # fmt: skip


@dataclass(slots=True)
class Exchange:
    """One request and its response as recorded: the heads raw, the bodies whole."""

    exchange_id: str
    wall_time: float
    latency: float
    status: int
    sampled: bool
    request_head: bytes
    request_body: bytes | None
    """None when the body went over the capture limit."""
    response_head: bytes
    response_body: bytes | None
    """None when over the capture limit, or not kept (sampled out)."""
    model: str = ""
    """Set by the tap receiver, which learns the model from CloudEvents headers."""

    def encode(self) -> bytes:
        """This exchange's spool record (:func:`encode_exchange`)."""
        return encode_exchange(self.exchange_id, self.wall_time, self.latency, self.status,
                               self.sampled, self.model, self.request_head, self.request_body,
                               self.response_head, self.response_body)  # fmt: skip

    @property
    def method(self) -> bytes:
        """The request's method."""
        return self.request_head.split(b" ", 1)[0]

    @property
    def path(self) -> str:
        """The request target's path (query left out; absolute form made relative)."""
        return target_path(request_target(self.request_head))


def decode_exchange(record: bytes, correlation_header: bytes = b"x-request-id") -> Exchange:
    """The exchange in a spool record made by :func:`encode_exchange`, or by a sidecar
    before it (format 1, see :func:`_decode_format_1`), so an upgrade loses nothing.

    Raises:
        ValueError: The record is not an exchange record of either format.
    """
    if record[:1] != EXCHANGE:
        raise ValueError("not an exchange record")
    if record[1:2] != bytes((_VERSION,)):
        return _decode_format_1(record, correlation_header)
    _, wall, latency, status, flags, *lengths = _HEADER.unpack_from(record, 1)
    pos = 1 + _HEADER.size
    values = []
    for n in lengths:
        values.append(record[pos : pos + n])
        pos += n
    if pos != len(record):
        raise ValueError("exchange record of the wrong length")
    ident, model, request_head, request_body, response_head, response_body = values
    return Exchange(
        exchange_id=ident.decode(),
        wall_time=wall,
        latency=latency,
        status=status,
        sampled=bool(flags & _SAMPLED),
        request_head=request_head,
        request_body=None if flags & _REQUEST_CUT else request_body,
        response_head=response_head,
        response_body=None if flags & _RESPONSE_CUT else response_body,
        model=model.decode(),
    )


_FORMAT_1 = struct.Struct(">ddHB13I")
"""Wall time, latency, status, flags, lengths of 13 fields: the records of the sidecar
before heads were kept raw. A record's second byte is then the wall time's first (0x41
for any epoch time from 2001 to 2242), never format 2's version byte."""


def _decode_format_1(record: bytes, correlation_header: bytes) -> Exchange:
    # Fields: id, method, path, request type, request encoding, trace id, parent span,
    # correlation key, response type, response encoding, model, request body, response
    # body. The heads are rebuilt from them, so the shipper reads them as it reads heads.
    wall, latency, status, flags, *lengths = _FORMAT_1.unpack_from(record, 1)
    pos = 1 + _FORMAT_1.size
    values = []
    for n in lengths:
        values.append(record[pos : pos + n])
        pos += n
    if pos != len(record):
        raise ValueError("exchange record of the wrong length")
    (ident, method, path, request_type, request_encoding, trace_id, span_id, correlation,
     response_type, response_encoding, model, request_body, response_body) = values  # fmt: skip
    request_lines = [method + b" " + path + b" HTTP/1.1"]
    if request_type:
        request_lines.append(b"content-type: " + request_type)
    if request_encoding:
        request_lines.append(b"content-encoding: " + request_encoding)
    if trace_id:
        request_lines.append(b"traceparent: 00-" + trace_id + b"-" + span_id + b"-01")
    if correlation:
        request_lines.append(correlation_header + b": " + correlation)
    response_lines = [b"HTTP/1.1 %d -" % status]
    if response_type:
        response_lines.append(b"content-type: " + response_type)
    if response_encoding:
        response_lines.append(b"content-encoding: " + response_encoding)
    return Exchange(
        exchange_id=ident.decode(),
        wall_time=wall,
        latency=latency,
        status=status,
        sampled=bool(flags & _SAMPLED),
        request_head=b"\r\n".join(request_lines) + b"\r\n\r\n",
        request_body=None if flags & _REQUEST_CUT else request_body,
        response_head=b"\r\n".join(response_lines) + b"\r\n\r\n",
        response_body=None if flags & _RESPONSE_CUT else response_body,
        model=model.decode(),
    )


def header_lines(*names: bytes) -> re.Pattern[bytes]:
    """A pattern that finds the lines of the headers ``names`` in a raw head (names are
    case-insensitive): faster than parsing every header when few are wanted."""
    alternatives = b"|".join(re.escape(name) for name in names)
    return re.compile(_HEADER_LINE.pattern.replace(_HEADER_NAME, alternatives), re.IGNORECASE)


def strip_pattern(names: Iterable[str] = ()) -> re.Pattern[bytes]:
    """A pattern matching whole lines (continuation lines included) of the headers
    :data:`ALWAYS_STRIPPED` and ``names`` in a raw head; ``sub(b"", head)`` cuts them.
    About a microsecond per head."""
    wanted = sorted({*ALWAYS_STRIPPED, *(n.lower() for n in names)})
    alternatives = b"|".join(re.escape(n.encode("latin-1")) for n in wanted)
    return re.compile(rb"\r\n(?i:" + alternatives + rb")[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")


def head_fields(head: bytes, lines: re.Pattern[bytes] | None = None) -> dict[bytes, bytes]:
    """The headers of a raw head (those ``lines`` finds, default all): the last value of
    each, by lower-cased name."""
    return {name.lower(): value for name, value in (lines or _HEADER_LINE).findall(head)}


def request_target(head: bytes) -> bytes:
    """The request target in a raw request head (empty if the line is malformed)."""
    line = head[: head.find(b"\r\n")]
    parts = line.split(b" ")
    return parts[1] if len(parts) == 3 else b""


def target_path(target: bytes) -> str:
    """The path of a request target (query left out; absolute form made relative)."""
    path = target.split(b"?", 1)[0].decode("latin-1")
    if path.startswith(("http://", "https://")):  # absolute form
        path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
    return path


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


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """What the decoder needs to turn exchanges into events."""

    model: str | None
    version: str | None
    decoders: tuple[Decoder, ...]
    policy: FieldPolicy
    max_decoded_bytes: int
    """Largest body after decompression; beyond it the capture is skipped."""
    correlation_header: bytes = b"x-request-id"
    """Request header whose value becomes the events' correlation key (lower case)."""


def model_in_path(decoders: tuple[Decoder, ...], path: str) -> tuple[Decoder | None, str | None]:
    """The decoder that claims ``path`` and the model the path names, if any."""
    for decoder in decoders:
        match = decoder.claims(path)
        if match:
            return decoder, match.group(1) if match.re.groups else None
    return None, None


class ExchangeDecoder:
    """Turns exchange records into encoded prediction events, counting what it skips.

    Thread-safe counters; :meth:`events` runs in the forwarding thread.
    """

    def __init__(self, config: CaptureConfig) -> None:
        self._config = config
        self._request_lines = header_lines(
            b"content-type", b"content-encoding", b"traceparent", config.correlation_header
        )
        self._response_lines = header_lines(b"content-type", b"content-encoding")
        self._lock = threading.Lock()
        self.captured: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """Copies of (events captured by model, captures dropped by reason)."""
        with self._lock:
            return Counter(self.captured), Counter(self.dropped)

    def events(self, record: bytes) -> list[bytes]:
        """The prediction events (each prefixed by its spool kind) of one record."""
        try:
            exchange = decode_exchange(record, self._config.correlation_header)
        except (ValueError, struct.error, UnicodeDecodeError):
            self.count_dropped("corrupt_record")
            return []
        return self.exchange_events(exchange)

    def exchange_events(self, exchange: Exchange) -> list[bytes]:
        """The prediction events (each prefixed by its spool kind) of one exchange."""
        try:
            return self._events(exchange)
        except DecodeError as exc:
            self.count_dropped(exc.reason)
        except Exception:  # one bad exchange must not stop shipping (nor the proxy)
            logger.exception("capture failed for one exchange")
            self.count_dropped("internal_error")
        return []

    def _events(self, exchange: Exchange) -> list[bytes]:
        config = self._config
        path = exchange.path
        decoder, _ = model_in_path(config.decoders, path)
        if decoder is None:
            raise DecodeError("unknown_format")
        status = exchange.status
        if not 200 <= status < 300:  # records of an older sidecar, which spooled errors
            raise DecodeError("model_error" if status >= 400 else "no_prediction")
        request_headers = head_fields(exchange.request_head, self._request_lines)
        decoded = self._decode(decoder, exchange, path, request_headers)
        model = config.model or exchange.model or decoded.model
        version = config.version or decoded.version
        if not model or not version:
            raise DecodeError("no_model")
        rows = decoded.rows
        correlation = request_headers.get(config.correlation_header, b"")
        key = correlation.decode("latin-1") or decoded.request_id
        if key is not None and not _ID.match(key):
            key = None
        trace = parse_traceparent(request_headers.get(b"traceparent"))
        out = []
        invalid = 0
        for i, row in enumerate(rows):
            event: dict[str, Any] = {
                "event_id": f"{exchange.exchange_id}-{i}",
                "model": model,
                "model_version": version,
                "timestamp": exchange.wall_time,
                "features": _clean_names(config.policy.apply(row.features)),
                "outputs": row.outputs,
                "latency_seconds": min(exchange.latency, 3600.0),
            }
            if trace is not None:
                event["trace_id"] = trace.trace_id
                event["parent_span_id"] = trace.parent_span_id
            if key is not None:
                event["correlation_key"] = key if len(rows) == 1 else f"{key}:{i}"
            # Events that break the contract are shipped all the same: the monitor
            # rejects each with its reason, and it is quarantined, not dropped here.
            try:
                out.append(PREDICTION + orjson.dumps(event))
            except orjson.JSONEncodeError:  # an integer beyond 64 bits: nothing to keep
                invalid += 1
        with self._lock:
            if invalid:
                self.dropped["unencodable"] += invalid
            if out:
                self.captured[model] += len(out)
        return out

    def _decode(
        self,
        decoder: Decoder,
        exchange: Exchange,
        path: str,
        request_headers: dict[bytes, bytes],
    ) -> Decoded:
        if exchange.request_body is None:
            raise DecodeError("too_large")
        request = Message(
            self._body(exchange.request_body, request_headers.get(b"content-encoding", b"")),
            request_headers.get(b"content-type", b"").decode("latin-1").lower(),
        )
        if exchange.response_body is None:
            raise DecodeError("too_large")
        headers = head_fields(exchange.response_head, self._response_lines)
        response = Message(
            self._body(exchange.response_body, headers.get(b"content-encoding", b"")),
            headers.get(b"content-type", b"").decode("latin-1").lower(),
        )
        return decoder.decode(path, request, response)

    def _body(self, body: bytes, encoding: bytes) -> bytes:
        coding = encoding.strip().lower()
        if not coding or coding == b"identity":
            return body
        if coding not in (b"gzip", b"x-gzip", b"deflate"):
            raise DecodeError("unsupported_encoding")
        wbits = 47 if coding != b"deflate" else 15  # 47: gzip or zlib header
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, self._config.max_decoded_bytes + 1)
        except zlib.error:
            raise DecodeError("bad_compression") from None
        if len(out) > self._config.max_decoded_bytes or inflater.unconsumed_tail:
            raise DecodeError("too_large")
        return out

    def count_dropped(self, reason: str) -> None:
        """Count one capture skipped for ``reason`` (a metric label value)."""
        with self._lock:
            self.dropped[reason] += 1


def _clean_names(features: dict[str, Any]) -> dict[str, Any]:
    """Feature names made valid for the contract (``mean radius`` → ``mean_radius``)."""
    if all(isinstance(n, str) and _NAME.match(n) and len(n) <= 128 for n in features):
        return features
    return {clean_name(str(name)): value for name, value in features.items()}

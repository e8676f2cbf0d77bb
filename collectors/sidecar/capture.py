"""Capture: a finished exchange in, a spool record out; later, that record in, events out.

The proxy's event loop does the least it can on the request's path: once a response
has ended it appends the exchange, as raw bytes (:func:`encode_exchange`), to the
spool, so what the model served is durable within microseconds of being served and
survives ``kill -9``. Everything else happens in the forwarding thread, when the
record is shipped: :class:`ExchangeDecoder` decompresses (with a cap), decodes,
applies the field policy and checks the event contract. Event ids derive from the
exchange's id, so a record shipped twice yields the same events and the monitor
stores them once.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import re
import struct
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from collectors.contract import MAX_FEATURES, NAME_PATTERN
from collectors.forward import EXCHANGE, PREDICTION
from collectors.sidecar.decode import Decoded, DecodeError, Decoder, Message
from collectors.sidecar.policy import FieldPolicy
from collectors.spool import Spool

logger = logging.getLogger("sidewatch.sidecar")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,100}$")
_NAME = re.compile(NAME_PATTERN)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_FIELDS = 13
_HEADER = struct.Struct(f">ddHB{_FIELDS}I")
_SAMPLED, _REQUEST_CUT, _RESPONSE_CUT = 1, 2, 4
_INT64 = (-(2**63), 2**63)


@dataclass(slots=True)
class Exchange:
    """One request and its response, as the proxy (or the tap) saw them."""

    exchange_id: str
    method: bytes
    path: str
    wall_time: float
    started: float
    """``time.perf_counter()`` when the request's head arrived."""
    sampled: bool
    request_type: bytes = b""
    request_encoding: bytes = b""
    trace_id: str = ""
    parent_span_id: str = ""
    correlation: bytes = b""
    request_body: list[bytes] | None = field(default_factory=list)
    """Body pieces; None once the body went over the capture limit."""
    request_size: int = 0
    status: int = 0
    response_type: bytes = b""
    response_encoding: bytes = b""
    response_body: list[bytes] | None = field(default_factory=list)
    response_size: int = 0
    latency: float = 0.0
    model: str = ""
    """Set by the tap receiver, which learns the model from CloudEvents headers."""


def encode_exchange(ex: Exchange) -> bytes:
    """The spool record of an exchange (kind byte, fixed header, length-prefixed fields)."""
    flags = (
        (_SAMPLED if ex.sampled else 0)
        | (_REQUEST_CUT if ex.request_body is None else 0)
        | (_RESPONSE_CUT if ex.response_body is None else 0)
    )
    fields = (
        ex.exchange_id.encode(),
        ex.method,
        ex.path.encode("latin-1", "replace"),
        ex.request_type,
        ex.request_encoding,
        ex.trace_id.encode(),
        ex.parent_span_id.encode(),
        ex.correlation,
        ex.response_type,
        ex.response_encoding,
        ex.model.encode(),
        b"".join(ex.request_body or ()),
        b"".join(ex.response_body or ()),
    )
    header = _HEADER.pack(ex.wall_time, ex.latency, ex.status, flags, *map(len, fields))
    return b"".join((EXCHANGE, header, *fields))


def decode_exchange(record: bytes) -> Exchange:
    """The exchange in a spool record made by :func:`encode_exchange`."""
    if record[:1] != EXCHANGE:
        raise ValueError("not an exchange record")
    wall, latency, status, flags, *lengths = _HEADER.unpack_from(record, 1)
    pos = 1 + _HEADER.size
    values = []
    for n in lengths:
        values.append(record[pos : pos + n])
        pos += n
    if pos != len(record):
        raise ValueError("exchange record of the wrong length")
    return Exchange(
        exchange_id=values[0].decode(),
        method=values[1],
        path=values[2].decode("latin-1"),
        wall_time=wall,
        started=0.0,
        sampled=bool(flags & _SAMPLED),
        request_type=values[3],
        request_encoding=values[4],
        trace_id=values[5].decode(),
        parent_span_id=values[6].decode(),
        correlation=values[7],
        response_type=values[8],
        response_encoding=values[9],
        model=values[10].decode(),
        request_body=None if flags & _REQUEST_CUT else [values[11]],
        request_size=len(values[11]),
        status=status,
        response_body=None if flags & _RESPONSE_CUT else [values[12]],
        response_size=len(values[12]),
        latency=latency,
    )


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_MODEL_LABELS = 32
"""Distinct ``model`` label values kept; later ones are counted as ``other``."""
_STATUS_CLASS = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass
class RequestStats:
    """Requests seen, by model and status class, and their latency (one writer)."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    latency_buckets: dict[str, list[int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)
    sampled_out: int = 0

    def copy(self) -> RequestStats:
        """A snapshot for a reader in another thread."""
        return RequestStats(
            dict(self.requests),
            {k: list(v) for k, v in self.latency_buckets.items()},
            dict(self.latency_sum),
            self.sampled_out,
        )


class Recorder:
    """The capture's side of the request path: ids, request metrics, the spool append.

    Args:
        model: The model's name for the metrics' ``model`` label; default: the path's.
        decoders: The payload formats, whose paths name models.
        spool: Where exchanges go.
        stats: Where requests are counted (written by this recorder only).
    """

    def __init__(
        self, model: str | None, decoders: tuple[Decoder, ...], spool: Spool, stats: RequestStats
    ) -> None:
        self._model = model
        self._decoders = decoders
        self._spool = spool
        self.stats = stats
        self._prefix = "sc-" + os.urandom(6).hex()
        self._ids = itertools.count()
        self._labels: dict[str, str] = {}
        self._models: set[str] = set()

    def new_id(self) -> str:
        """A unique exchange id (the events' ids derive from it)."""
        return f"{self._prefix}-{next(self._ids)}"

    def finished(self, exchange: Exchange) -> None:
        """Count a finished exchange and spool it if it is to be captured."""
        stats = self.stats
        label = self._label(exchange.path, exchange.model)
        key = (label, _STATUS_CLASS[exchange.status // 100] if exchange.status < 600 else "5xx")
        stats.requests[key] = stats.requests.get(key, 0) + 1
        buckets = stats.latency_buckets.get(label)
        if buckets is None:
            buckets = stats.latency_buckets[label] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect.bisect_left(LATENCY_BUCKETS, exchange.latency)] += 1
        stats.latency_sum[label] = stats.latency_sum.get(label, 0.0) + exchange.latency
        if exchange.sampled or exchange.status >= 400:
            self._spool.append(encode_exchange(exchange))  # a shed append is counted there
        else:
            stats.sampled_out += 1

    def _label(self, path: str, model: str) -> str:
        label = self._labels.get(path)
        if label is not None:
            return label
        name = self._model or model or model_in_path(self._decoders, path)[1]
        if name is None:
            label = "unknown"
        elif name in self._models or (
            len(self._models) < MAX_MODEL_LABELS and _NAME.match(name) and len(name) <= 128
        ):
            self._models.add(name)
            label = name
        else:
            label = "other"
        if len(self._labels) < 1024:  # a cache of paths seen, bounded
            self._labels[path] = label
        return label


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """What the decoder needs to turn exchanges into events."""

    model: str | None
    version: str | None
    decoders: tuple[Decoder, ...]
    policy: FieldPolicy
    max_decoded_bytes: int
    """Largest body after decompression; beyond it the capture is skipped."""


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
            exchange = decode_exchange(record)
        except (ValueError, struct.error, UnicodeDecodeError):
            self._drop("corrupt_record")
            return []
        try:
            return self._events(exchange)
        except DecodeError as exc:
            self._drop(exc.reason)
        except Exception:  # one bad exchange must not stop shipping
            logger.exception("capture failed for one exchange")
            self._drop("internal_error")
        return []

    def _events(self, exchange: Exchange) -> list[bytes]:
        config = self._config
        decoder, _ = model_in_path(config.decoders, exchange.path)
        if decoder is None:
            raise DecodeError("unknown_format")
        error = exchange.status >= 400
        decoded = self._decode(decoder, exchange, with_response=not error)
        model = config.model or exchange.model or decoded.model
        version = config.version or decoded.version
        if not model or not version:
            raise DecodeError("no_model")
        rows = decoded.rows
        key = exchange.correlation.decode("latin-1") or decoded.request_id
        if key is not None and not _ID.match(key):
            key = None
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
            if exchange.trace_id:
                event["trace_id"] = exchange.trace_id
                event["parent_span_id"] = exchange.parent_span_id
            if key is not None:
                event["correlation_key"] = key if len(rows) == 1 else f"{key}:{i}"
            if not _valid(event):
                invalid += 1
                continue
            out.append(PREDICTION + orjson.dumps(event))
        with self._lock:
            if invalid:
                self.dropped["invalid_event"] += invalid
            if out:
                self.captured[model] += len(out)
        return out

    def _decode(self, decoder: Decoder, exchange: Exchange, *, with_response: bool) -> Decoded:
        if exchange.request_body is None:
            raise DecodeError("too_large")
        request = Message(
            self._body(exchange.request_body, exchange.request_encoding),
            exchange.request_type.decode("latin-1").lower(),
        )
        response = None
        if with_response:
            if exchange.response_body is None:
                raise DecodeError("too_large")
            response = Message(
                self._body(exchange.response_body, exchange.response_encoding),
                exchange.response_type.decode("latin-1").lower(),
            )
        return decoder.decode(exchange.path, request, response)

    def _body(self, pieces: list[bytes], encoding: bytes) -> bytes:
        body = b"".join(pieces)
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

    def _drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1


def _clean_names(features: dict[str, Any]) -> dict[str, Any]:
    """Feature names made valid for the contract (``mean radius`` → ``mean_radius``)."""
    if all(isinstance(n, str) and _NAME.match(n) and len(n) <= 128 for n in features):
        return features
    cleaned = {}
    for name, value in features.items():
        fixed = _NAME_BAD.sub("_", str(name))[:128] or "_"
        if not _NAME.match(fixed):
            fixed = f"_{fixed}"[:128]
        cleaned[fixed] = value
    return cleaned


def _scalar_ok(value: Any, max_text: int) -> bool:
    if value is None or isinstance(value, bool | float):
        return True  # decoded JSON holds no NaN or Infinity (orjson refuses them)
    if isinstance(value, int):
        return _INT64[0] <= value < _INT64[1]
    return isinstance(value, str) and len(value) <= max_text


def _valid(event: dict[str, Any]) -> bool:
    """The event contract's limits, checked without building the pydantic model.

    The forwarder ships batches; one invalid event would make the monitor refuse its
    whole batch, so each event is checked here (tests check this agrees with
    :class:`~collectors.contract.PredictionEvent`).
    """
    features = event["features"]
    if len(features) > MAX_FEATURES or not all(_scalar_ok(v, 1024) for v in features.values()):
        return False
    outputs = event["outputs"]
    klass = outputs.get("predicted_class")
    if klass is not None and (
        isinstance(klass, float)
        or not _scalar_ok(klass, 256)
        or klass == ""
        or isinstance(klass, bool)
    ):
        return False
    for key in ("score", "value"):
        if key in outputs and not isinstance(outputs[key], float | int):
            return False
    probabilities = outputs.get("probabilities")
    return probabilities is None or (
        len(probabilities) <= 1000
        and all(len(k) <= 256 and isinstance(p, float | int) for k, p in probabilities.items())
    )

"""Decoder: spooled exchanges in, encoded prediction events out (the shipper's side).

Runs in the shipper process (:mod:`collectors.sidecar.shipping`), off the request
path: :class:`ExchangeDecoder` reads an exchange record
(:func:`~collectors.record.decode_exchange`), finds the payload format that claims its
path (:mod:`collectors.sidecar.decode`), reads the heads it needs (content type and
encoding, trace context, the correlation header), decompresses the bodies (with a
cap), decodes them into rows, applies the field policy and encodes one prediction
record (``p`` + JSON) per row. What it skips it counts by reason (the sidecar's
``/metrics``). Event ids derive from the exchange's id, so a record shipped twice
yields the same events and the monitor stores them once.

With a field policy, the proxy's :class:`~collectors.sidecar.recorder.Recorder` calls
:meth:`ExchangeDecoder.exchange_events` itself, so that only policed events reach the
disk.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from collectors.contract import NAME_PATTERN
from collectors.record import PREDICTION, Exchange, decode_exchange
from collectors.sidecar.decode import Decoded, DecodeError, Decoder, Message, model_in_path
from collectors.sidecar.policy import FieldPolicy, clean_name
from collectors.sidecar.trace import parse_traceparent

logger = logging.getLogger("sidewatch.sidecar")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,100}$")
_NAME = re.compile(NAME_PATTERN)
_HEADER_NAME = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_LINE = re.compile(rb"\r\n(" + _HEADER_NAME + rb")[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)")


def header_lines(*names: bytes) -> re.Pattern[bytes]:
    """A pattern that finds the lines of the headers ``names`` in a raw head (names are
    case-insensitive): faster than parsing every header when few are wanted."""
    alternatives = b"|".join(re.escape(name) for name in names)
    return re.compile(_HEADER_LINE.pattern.replace(_HEADER_NAME, alternatives), re.IGNORECASE)


def head_fields(head: bytes, lines: re.Pattern[bytes] | None = None) -> dict[bytes, bytes]:
    """The headers of a raw head (those ``lines`` finds, default all): the last value of
    each, by lower-cased name."""
    return {name.lower(): value for name, value in (lines or _HEADER_LINE).findall(head)}


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
    variant: str | None = None
    """Tags every event (``shadow``, or the A/B arm); None: untagged."""
    stage: str | None = None
    """Tags every event with the pipeline stage; None: untagged."""


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
            if config.variant is not None:
                event["variant"] = config.variant
            if config.stage is not None:
                event["stage"] = config.stage
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

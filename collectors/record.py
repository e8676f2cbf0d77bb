"""Record: the spool's record format, written by the capture and read by the forwarder.

A spool record is one byte of kind, then its content:

- ``p`` (:data:`PREDICTION`): one prediction event, encoded JSON;
- ``l`` (:data:`LABEL`): one label event, encoded JSON;
- ``x`` (:data:`EXCHANGE`): one request and its response as the sidecar's proxy or tap
  captured them (:class:`Exchange`), turned into prediction records only when it is
  shipped (:class:`~collectors.sidecar.decoder.ExchangeDecoder`).

An exchange record is a fixed header (format version, wall time, latency, status,
flags, the lengths of six fields) and the fields' bytes: the exchange id, the model,
both heads as received (credentials cut) and both bodies. Records of the sidecar
before it (format 1, heads parsed at capture time) still decode, so an upgrade with a
full spool loses nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collectors.transport import Kind

PREDICTION = b"p"
LABEL = b"l"
EXCHANGE = b"x"
KINDS: dict[bytes, Kind] = {PREDICTION: "predictions", LABEL: "labels"}
"""The event kind of each event record's first byte."""

_VERSION = 2
_HEADER = struct.Struct(">BddHB6I")
"""Format version, wall time, latency, status, flags, lengths of the six fields."""
_SAMPLED, _REQUEST_CUT, _RESPONSE_CUT = 1, 2, 4


def encode(kind: Kind, event: bytes) -> bytes:
    """The spool record of one encoded event."""
    return (PREDICTION if kind == "predictions" else LABEL) + event


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
    ident, model, request_head, request_body, response_head, response_body = _fields(
        record, 1 + _HEADER.size, lengths
    )
    return _exchange(ident, wall, latency, status, flags, model, request_head, request_body,
                     response_head, response_body)  # fmt: skip


def _exchange(
    ident: bytes,
    wall: float,
    latency: float,
    status: int,
    flags: int,
    model: bytes,
    request_head: bytes,
    request_body: bytes,
    response_head: bytes,
    response_body: bytes,
) -> Exchange:
    """The exchange of a record's fields, its flags applied."""
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


def _fields(record: bytes, pos: int, lengths: list[int]) -> list[bytes]:
    """The fields of ``lengths`` laid end to end from ``pos`` to the record's end.

    Raises:
        ValueError: They do not end where the record does.
    """
    values = []
    for n in lengths:
        values.append(record[pos : pos + n])
        pos += n
    if pos != len(record):
        raise ValueError("exchange record of the wrong length")
    return values


_FORMAT_1 = struct.Struct(">ddHB13I")
"""Wall time, latency, status, flags, lengths of 13 fields: the records of the sidecar
before heads were kept raw. A record's second byte is then the wall time's first (0x41
for any epoch time from 2001 to 2242), never format 2's version byte."""


def _decode_format_1(record: bytes, correlation_header: bytes) -> Exchange:
    # Fields: id, method, path, request type, request encoding, trace id, parent span,
    # correlation key, response type, response encoding, model, request body, response
    # body. The heads are rebuilt from them, so the shipper reads them as it reads heads.
    wall, latency, status, flags, *lengths = _FORMAT_1.unpack_from(record, 1)
    (ident, method, path, request_type, request_encoding, trace_id, span_id, correlation,
     response_type, response_encoding, model, request_body, response_body) = _fields(
        record, 1 + _FORMAT_1.size, lengths)  # fmt: skip
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
    request_head = b"\r\n".join(request_lines) + b"\r\n\r\n"
    response_head = b"\r\n".join(response_lines) + b"\r\n\r\n"
    return _exchange(ident, wall, latency, status, flags, model, request_head, request_body,
                     response_head, response_body)  # fmt: skip

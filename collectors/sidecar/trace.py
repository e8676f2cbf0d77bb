"""W3C trace context: the caller's ``traceparent`` in, the sidecar's child context out.

The sidecar acts as a server span between the caller and the model: it keeps the
caller's trace id, records the caller's span id as the event's parent, and passes a
new span id of its own upstream, so the model server's spans hang under the
sidecar's (https://www.w3.org/TR/trace-context/#traceparent-header).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(rb"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The caller's trace and the sidecar's own span in it."""

    trace_id: str
    parent_span_id: str
    """The caller's span id."""
    span_id: str
    """The sidecar's span id, passed upstream as the parent."""
    flags: str

    def child_header(self) -> bytes:
        """The ``traceparent`` value to pass upstream."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}".encode()


def parse_traceparent(value: bytes | None) -> TraceContext | None:
    """The context in a ``traceparent`` value, or None when absent or invalid."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = (
        g.decode() if g is not None else None for g in match.groups()
    )
    if version == "ff" or (version == "00" and rest):
        return None
    assert trace_id is not None and span_id is not None and flags is not None
    if trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    return TraceContext(trace_id, span_id, os.urandom(8).hex(), flags)

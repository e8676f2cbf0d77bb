"""The framer finds the same message boundaries as h11 (an independent HTTP/1.1 parser),
however the bytes are split into reads."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.sidecar.http1 import (
    Framer,
    Framing,
    FramingError,
    Head,
    request_framing,
    response_framing,
)


class Sink:
    def __init__(self, response_to: list[bytes] | None = None) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self._body = b""
        self._start = b""
        self._methods = response_to

    def on_head(self, head: Head) -> Framing:
        self._start, self._body = head.start_line, b""
        if self._methods is None:
            return request_framing(head)
        return response_framing(head, self._methods.pop(0))

    def on_body(self, data: bytes) -> None:
        self._body += data

    def on_end(self) -> None:
        self.messages.append((self._start, self._body))


def h11_requests(data: bytes) -> list[tuple[bytes, bytes]]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out, body, target = [], b"", b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            target, body = event.target, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((target, body))
            conn.send(h11.Response(status_code=204, headers=[]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        else:
            return out


bodies = st.binary(max_size=300)
messages = st.lists(st.tuples(bodies, st.booleans(), st.integers(1, 50)), min_size=1, max_size=5)


def encode(items: list[tuple[bytes, bool, int]]) -> bytes:
    data = b""
    for i, (body, chunked, size) in enumerate(items):
        if chunked:
            chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[j : j + size]), body[j : j + size])
                              for j in range(0, len(body), size))  # fmt: skip
            data += (b"POST /m%d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%s"
                     b"0\r\nTrailer: x\r\n\r\n" % (i, chunks))  # fmt: skip
        else:
            data += b"POST /m%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (
                i, len(body), body)  # fmt: skip
    return data


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_requests_framed_like_h11_across_any_split(
    items: list[tuple[bytes, bool, int]], cuts: list[int]
) -> None:
    data = encode(items)
    sink = Sink()
    passed: list[bytes] = []
    framer = Framer(sink, passthrough=passed.append)
    pos, i = 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        framer.feed(data[pos : pos + step])
        pos, i = pos + step, i + 1
    expected = h11_requests(data)
    assert [(start.split(b" ")[1], body) for start, body in sink.messages] == expected
    assert b"".join(passed) == data  # passed on byte for byte
    assert framer.idle


def test_responses_to_head_and_bodiless_statuses_have_no_body() -> None:
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"  # answer to HEAD: no body
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip
    sink = Sink(response_to=[b"HEAD", b"POST", b"POST", b"GET"])
    Framer(sink).feed(data)
    assert [s.split(b" ")[1] for s, _ in sink.messages] == [b"200", b"100", b"204", b"200"]
    assert sink.messages[-1][1] == b"ok"


def test_read_until_close_ends_at_eof() -> None:
    sink = Sink(response_to=[b"GET"])
    framer = Framer(sink)
    framer.feed(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    framer.feed(b"part two")
    assert sink.messages == []
    framer.eof()
    assert sink.messages == [(b"HTTP/1.1 200 OK", b"part one, part two")]


@pytest.mark.parametrize("bad", [
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\n folded: header\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
])  # fmt: skip
def test_what_cannot_be_framed_raises_and_keeps_the_rest(bad: bytes) -> None:
    passed: list[bytes] = []
    framer = Framer(Sink(), passthrough=passed.append)
    with pytest.raises(FramingError):
        framer.feed(bad)
    assert b"".join(passed) + framer.leftover == bad  # nothing lost for the blind relay

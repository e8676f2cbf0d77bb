"""Caps on request bodies: declared, streamed, and once decompressed."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.errors import InputError, PayloadTooLarge


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when a streamed body passes its cap."""


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body with its ``Content-Encoding`` (none or gzip) undone.

    The decompressed size is capped too, so a small gzip bomb cannot fill memory.

    Raises:
        InputError: An unsupported encoding or a body that is not valid gzip.
        PayloadTooLarge: The decompressed body is larger than ``limit``.
    """
    if encoding in (None, "", "identity"):
        return body
    if encoding != "gzip":
        raise InputError(
            "unsupported Content-Encoding",
            [("Content-Encoding", f"expected gzip or none, got {encoding!r}")],
        )
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InputError("the body is not valid gzip", [("body", "expected gzip data")]) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body is larger than {limit} bytes")
    if not inflater.eof:
        raise InputError("the gzip body is truncated", [("body", "expected complete gzip data")])
    return out


class BodySizeLimit:
    """ASGI middleware answering 413 when a body is larger than its path's cap.

    A declared ``Content-Length`` over the cap is refused before reading; a chunked
    body is counted as it streams and refused once it passes the cap.

    Args:
        app: The wrapped application.
        limit_for: Returns the cap in bytes for a request path.
        on_reject: Called once for each refused request (to count it).
    """

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int], on_reject: Callable[[], None]
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        self.on_reject()
        body = orjson.dumps(
            {
                "detail": f"request body is larger than {limit} bytes",
                "problems": [{"loc": "body", "msg": f"expected at most {limit} bytes"}],
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

"""Admin: ``/metrics``, ``/livez`` and ``/readyz`` on their own port, in a thread.

Ready means the proxy (or the tap) is listening and the spool is open; it never
depends on the monitor being reachable, so a monitor outage cannot take the pod out
of service (CONVENTIONS.md, Kubernetes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry


class AdminServer:
    """Serves health and metrics from a daemon thread."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
    ) -> None:
        handler = _handler(registry, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sidewatch-admin", daemon=True
        )

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _handler(
    registry: CollectorRegistry, ready: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/livez":
                self._reply(200, b'{"status": "live"}', "application/json")
            elif path == "/readyz":
                ok = ready()
                body = b'{"status": "ready"}' if ok else b'{"status": "starting"}'
                self._reply(200 if ok else 503, body, "application/json")
            else:
                self._reply(404, b"not found: try /metrics, /livez or /readyz\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # no access log: scrapes every few seconds would drown the real logs

    return Handler

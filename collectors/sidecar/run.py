"""Run: settings in, a running sidecar out (proxy, tap, capture, spool, shipping, admin).

:class:`Sidecar` builds the stateful parts from frozen settings and owns their order
of start and stop: what the proxy accepted is decoded and spooled before the process
exits, and what is spooled but not yet delivered stays on disk for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading

from prometheus_client.registry import CollectorRegistry

from collectors.forward import Forwarder
from collectors.settings import ClientSettings
from collectors.ship import HttpShipper
from collectors.sidecar.admin import AdminServer
from collectors.sidecar.capture import CaptureConfig, ExchangeDecoder, Recorder, RequestStats
from collectors.sidecar.decode import FieldMapping, OutputRules, build_decoders
from collectors.sidecar.metrics import SidecarCollector
from collectors.sidecar.policy import FieldPolicy
from collectors.sidecar.proxy import ProxyConfig, ProxyStats, start_proxy
from collectors.sidecar.settings import SidecarSettings, split_address
from collectors.sidecar.tap import TapReceiver
from collectors.spool import Spool

logger = logging.getLogger("sidewatch.sidecar")


def _capture_config(settings: SidecarSettings) -> CaptureConfig:
    rules = OutputRules(settings.task, settings.class_names, settings.feature_names)
    mapping = None
    if settings.map_path is not None and settings.map_features is not None:
        mapping = FieldMapping(
            settings.map_path,
            settings.map_features,
            predicted_class=settings.map_predicted_class,
            score=settings.map_score,
            value=settings.map_value,
            probabilities=settings.map_probabilities,
        )
    key = settings.redaction_key.get_secret_value().encode() if settings.redaction_key else b""
    policy = FieldPolicy(
        settings.allow_features,
        settings.deny_features,
        settings.redact_features,
        settings.redact_mode,
        key,
    )
    return CaptureConfig(
        model=settings.model,
        version=settings.model_version,
        decoders=tuple(build_decoders(rules, mapping)),
        policy=policy,
        max_decoded_bytes=settings.decoded_max_bytes,
    )


class Sidecar:
    """A sidecar built from its settings.

    Args:
        settings: The sidecar's settings.
        client: Where the monitor is (``SIDEWATCH_MONITOR_URL``, ``SIDEWATCH_TOKEN``).
    """

    def __init__(self, settings: SidecarSettings, client: ClientSettings) -> None:
        self.settings = settings
        self.proxy_stats = ProxyStats()
        self.requests = RequestStats()
        self.tap_requests = RequestStats()
        self.spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes)
        capture = _capture_config(settings)
        self.decoder = ExchangeDecoder(capture)
        token = client.token.get_secret_value() if client.token else None
        shipper = HttpShipper(str(client.monitor_url), token, client.timeout_seconds)
        self.forwarder = Forwarder(
            self.spool,
            shipper,
            batch_size=settings.batch_size,
            retry_initial_seconds=client.retry_initial_seconds,
            retry_max_seconds=client.retry_max_seconds,
            expand=self.decoder.events,
        )
        self._capture = capture
        self.tap: TapReceiver | None = None
        if settings.tap_listen is not None:
            host, port = split_address(settings.tap_listen, 9403)
            recorder = Recorder(settings.model, capture.decoders, self.spool, self.tap_requests)
            self.tap = TapReceiver(
                host,
                port,
                recorder,
                model=settings.model,
                max_body_bytes=settings.capture_max_bytes,
                sample_rate=settings.sample_rate,
            )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            SidecarCollector(
                lambda: [self.requests.copy(), self.tap_requests.copy()],
                self.decoder,
                self.proxy_stats,
                self.spool,
                settings.spool_max_bytes,
                self.forwarder,
                self._tap_dropped,
            )
        )
        host, port = split_address(settings.admin_listen, 9402)
        self._ready = threading.Event()
        self.admin = AdminServer(host, port, self.registry, self._ready.is_set)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _tap_dropped(self) -> dict[str, int]:
        if self.tap is None:
            return {}
        return {"tap_rejected": self.tap.rejected, "tap_unpaired": self.tap.unpaired}

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (or :meth:`stop`), then shut down in order."""
        # The capture and shipping threads share the interpreter lock with the event
        # loop: hand it back to the loop after at most 0.2 ms, not CPython's 5 ms, so a
        # busy capture thread cannot hold a request up for longer than that.
        sys.setswitchinterval(0.0002)
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop ships with the base install
            asyncio.run(self.serve())
        else:
            uvloop.run(self.serve())

    def stop(self) -> None:
        """Ask a running :meth:`serve` to shut down (from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self) -> None:
        """Start everything, wait for the stop signal, and shut down in order."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._stop.set)
        self.forwarder.start()
        self.admin.start()
        server = None
        s = self.settings
        if s.upstream is not None:
            up_host, up_port = s.upstream_address()
            config = ProxyConfig(
                up_host,
                up_port,
                capture_max_bytes=s.capture_max_bytes,
                sample_rate=s.sample_rate,
                correlation_header=s.correlation_header.lower().encode("latin-1"),
                model=s.model,
                decoders=self._capture.decoders,
            )
            host, port = split_address(s.listen, 8081)
            server = await start_proxy(
                config, self.spool, self.proxy_stats, self.requests, host, port
            )
            logger.info("sidecar proxying %s:%d -> %s; metrics on %s; spool %s",
                           host, port, s.upstream, s.admin_listen, s.spool_dir)  # fmt: skip
        if self.tap is not None:
            self.tap.start()
            logger.info("sidecar tap receiving CloudEvents on %s", s.tap_listen)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            self._ready.clear()
            if server is not None:
                server.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), 2.0)
            self.shutdown()

    def shutdown(self) -> None:
        """Stop taking traffic, stop shipping (the rest stays spooled), close the spool."""
        if self.tap is not None:
            self.tap.stop()
        self.forwarder.stop()
        self.admin.stop()
        self.spool.close()

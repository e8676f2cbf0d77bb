"""Run: settings in, a running sidecar out (proxy, tap, spool, shipper, admin).

:class:`Sidecar` builds the stateful parts from frozen settings and owns their order
of start and stop. This process proxies and appends each exchange to the spool; a
child process (``collectors.sidecar.shipping``) decodes and ships, and is restarted if
it dies. What is spooled but not yet delivered stays on disk for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
import sys
import threading

from prometheus_client.registry import CollectorRegistry

from collectors.settings import ClientSettings
from collectors.sidecar.admin import AdminServer
from collectors.sidecar.decoder import ExchangeDecoder
from collectors.sidecar.metrics import SidecarCollector
from collectors.sidecar.proxy import (
    ProxyConfig,
    ProxyStats,
    default_max_connections,
    start_proxy,
)
from collectors.sidecar.recorder import Recorder, RequestStats, strip_pattern
from collectors.sidecar.settings import SidecarSettings, split_address
from collectors.sidecar.shipping import capture_config, settings_document
from collectors.sidecar.tap import TapReceiver
from collectors.spool import Spool

logger = logging.getLogger("sidewatch.sidecar")


class Sidecar:
    """A sidecar built from its settings.

    Args:
        settings: The sidecar's settings.
        client: Where the monitor is (``SIDEWATCH_MONITOR_URL``, ``SIDEWATCH_TOKEN``).
    """

    def __init__(self, settings: SidecarSettings, client: ClientSettings) -> None:
        self.settings = settings
        self.client = client
        self.proxy_stats = ProxyStats()
        self.requests = RequestStats()
        self.tap_requests = RequestStats()
        # Appends happen on the event loop: fsync runs in a thread (_watch), not in them.
        self.spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, sync="none")
        config = capture_config(settings)
        self._decoders = config.decoders
        # With a field policy, exchanges are decoded and policed before the disk: only
        # what may leave the sidecar is ever spooled.
        self._policy = ExchangeDecoder(config) if config.policy.active else None
        strip = strip_pattern(settings.strip_headers)
        self._recorder = Recorder(settings.model, self._decoders, self.spool, self.requests,
                                  strip=strip, policy=self._policy)  # fmt: skip
        self._recorders = [self._recorder]
        self.tap: TapReceiver | None = None
        if settings.tap_listen is not None:
            host, port = split_address(settings.tap_listen, 9403)
            recorder = Recorder(settings.model, self._decoders, self.spool, self.tap_requests,
                                strip=strip, policy=self._policy)  # fmt: skip
            self._recorders.append(recorder)
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
                self.proxy_stats,
                self.spool,
                settings.spool_max_bytes,
                self._tap_dropped,
                self._policy.counts if self._policy is not None else None,
            )
        )
        host, port = split_address(settings.admin_listen, 9402)
        self._ready = threading.Event()
        self.admin = AdminServer(host, port, self.registry, self._ready.is_set)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shipper: subprocess.Popen[bytes] | None = None

    def _tap_dropped(self) -> dict[str, int]:
        if self.tap is None:
            return {}
        return {"tap_rejected": self.tap.rejected, "tap_unpaired": self.tap.unpaired}

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (or :meth:`stop`), then shut down in order."""
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop comes with the sidecar extra
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
        self._start_shipper()
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
                model=s.model,
                decoders=self._decoders,
                header_timeout=s.header_timeout_seconds,
                idle_timeout=s.idle_timeout_seconds,
                body_timeout=s.body_timeout_seconds,
                body_min_rate=s.body_min_rate_bytes,
                max_connections=s.max_connections or default_max_connections(),
            )
            host, port = split_address(s.listen, 8081)
            server = await start_proxy(config, self._recorder, self.proxy_stats, host, port)
            logger.info("sidecar proxying %s:%d -> %s; metrics on %s; spool %s",
                        host, port, s.upstream, s.admin_listen, s.spool_dir)  # fmt: skip
        if self.tap is not None:
            self.tap.start()
            logger.info("sidecar tap receiving CloudEvents on %s", s.tap_listen)
        # What start-up built lives as long as the process: out of the collector's sight,
        # so that a full collection never walks it in the middle of a request.
        gc.collect()
        gc.freeze()
        self._ready.set()
        watch = asyncio.get_running_loop().create_task(self._watch())
        try:
            await self._stop.wait()
        finally:
            watch.cancel()
            self._ready.clear()
            if server is not None:
                server.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), 2.0)
            self.shutdown()

    async def _watch(self) -> None:
        """Twice a second: sync the spool to disk and see what the shipper delivered (in
        a thread, off the event loop), take the wall clock again, restart the shipper if
        it died."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.5)
            await loop.run_in_executor(None, self._maintain_spool)
            for recorder in self._recorders:
                recorder.tick()
            shipper = self._shipper
            if shipper is not None and shipper.poll() is not None:
                logger.error("the shipper exited with %s; restarting it", shipper.returncode)
                self._start_shipper()

    def _maintain_spool(self) -> None:
        try:
            self.spool.sync()
            self.spool.refresh()
        except OSError as exc:  # a full disk: capture is shed and counted meanwhile
            logger.warning("spool maintenance failed (%s); retrying", exc)

    def _start_shipper(self) -> None:
        # -c rather than -m: the package already imported the module (runpy would warn).
        code = "from collectors.sidecar.shipping import main; main()"
        self._shipper = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        assert self._shipper.stdin is not None
        self._shipper.stdin.write(settings_document(self.settings, self.client))
        self._shipper.stdin.close()

    def shutdown(self) -> None:
        """Stop taking traffic, close the spool, stop the shipper (the rest stays spooled)."""
        if self.tap is not None:
            self.tap.stop()
        self.spool.close()
        if self._shipper is not None:
            self._shipper.terminate()
            try:
                self._shipper.wait(15)
            except subprocess.TimeoutExpired:
                self._shipper.kill()
                self._shipper.wait()
        self.admin.stop()

"""Shipping: the spool's exchange records in, events stored by the monitor out.

Runs in a child process of the sidecar (started by :class:`~collectors.sidecar.Sidecar`), so
that decoding and shipping never compete with the proxy's event loop for the
interpreter lock: the proxy only appends raw exchanges to the spool, and this process
reads them, turns them into events (:class:`~collectors.sidecar.decoder.ExchangeDecoder`)
and ships them with the :class:`~collectors.forward.Forwarder` (batches, gzip, retry
with backoff and jitter, acknowledged only once the monitor confirms).

The settings arrive as JSON on stdin (secrets included, so never in argv or the
environment of ``ps``). One shipper per spool: an exclusive lock on
``shipping.lock`` waits for a shipper whose sidecar was killed to notice and exit.
Counters go to ``shipping.json`` in the spool directory twice a second, where the
sidecar's ``/metrics`` reads them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from collectors.forward import Forwarder
from collectors.settings import ClientSettings
from collectors.sidecar.decode import FieldMapping, OutputRules, build_decoders
from collectors.sidecar.decoder import CaptureConfig, ExchangeDecoder
from collectors.sidecar.policy import FieldPolicy
from collectors.sidecar.settings import SidecarSettings
from collectors.spool import Spool
from collectors.transport import HttpTransport

logger = logging.getLogger("sidewatch.sidecar")

STATS_FILE = "shipping.json"
LOCK_FILE = "shipping.lock"


def capture_config(settings: SidecarSettings) -> CaptureConfig:
    """How exchanges become events, from the sidecar's settings."""
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
        variant=settings.variant,
        stage=settings.stage,
        decoders=tuple(build_decoders(rules, mapping)),
        policy=policy,
        max_decoded_bytes=settings.decoded_max_bytes,
        correlation_header=settings.correlation_header.lower().encode("latin-1"),
    )


@dataclass
class ShippingStats:
    """What the shipper counted since it started."""

    delivered: int = 0
    duplicates: int = 0
    failures: int = 0
    captured: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_full: int = 0
    corrupt_skipped: int = 0
    """Corrupt stretches the shipper's reader skipped (its bytes are quarantined)."""

    @classmethod
    def load(cls, spool_dir: Path) -> ShippingStats:
        """The last counters the shipper wrote (zeros before its first write)."""
        try:
            document = orjson.loads((spool_dir / STATS_FILE).read_bytes())
            known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()


def settings_document(settings: SidecarSettings, client: ClientSettings) -> bytes:
    """The settings as the shipper reads them from stdin, secrets in clear."""
    s = settings.model_dump(mode="json")
    s["redaction_key"] = (
        settings.redaction_key.get_secret_value() if settings.redaction_key else None
    )
    c = client.model_dump(mode="json")
    c["token"] = client.token.get_secret_value() if client.token else None
    return orjson.dumps({"settings": s, "client": c, "parent": os.getpid()})


def _write_stats(
    spool_dir: Path, forwarder: Forwarder, decoder: ExchangeDecoder, spool: Spool
) -> OSError | None:
    """Write the counters for the sidecar's ``/metrics``; the error if the disk refused."""
    f = forwarder.stats()
    captured, dropped = decoder.counts()
    stats = ShippingStats(
        f.delivered,
        f.duplicates,
        f.failures,
        dict(captured),
        dict(dropped),
        f.quarantined,
        forwarder.quarantine.dropped,
        spool.stats().corrupt_skipped,
    )
    tmp = spool_dir / f"{STATS_FILE}.tmp"
    try:
        tmp.write_bytes(orjson.dumps(asdict(stats)))
        os.replace(tmp, spool_dir / STATS_FILE)
    except OSError as exc:  # a full disk must not stop shipping (shipping frees it)
        return exc
    return None


def serve(document: dict[str, Any]) -> None:
    """Ship until SIGTERM, or until the sidecar that started this process is gone."""
    settings = SidecarSettings.model_validate(document["settings"])
    client = ClientSettings.model_validate(document["client"])
    parent = int(document["parent"])
    spool_dir = settings.spool_dir
    spool_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the sidecar, which stops us
    # Background work: on a busy node the model's requests (and the proxy relaying them)
    # go first; the spool absorbs what the shipper has not caught up with.
    os.nice(settings.shipper_nice)
    if settings.shipper_idle and hasattr(os, "SCHED_IDLE"):
        try:  # threads started from here on (the forwarder's) inherit the policy
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:
            logger.warning("SCHED_IDLE refused (%s): the shipper runs at nice %d", exc,
                           settings.shipper_nice)  # fmt: skip
    with open(spool_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a previous shipper may still be finishing
        spool = Spool(spool_dir, max_bytes=settings.spool_max_bytes, reader=True)
        decoder = ExchangeDecoder(capture_config(settings))
        token = client.token.get_secret_value() if client.token else None
        forwarder = Forwarder(
            spool,
            HttpTransport(str(client.monitor_url), token, client.timeout_seconds),
            batch_size=settings.batch_size,
            linger_seconds=settings.ship_linger_seconds,
            retry_initial_seconds=client.retry_initial_seconds,
            retry_max_seconds=client.retry_max_seconds,
            expand=decoder.events,
        )
        forwarder.start()
        failing = False
        try:
            while not stop.wait(0.5):
                error = _write_stats(spool_dir, forwarder, decoder, spool)
                if error is not None and not failing:
                    logger.warning("the shipper's counters cannot be written (%s); "
                                   "shipping goes on", error)  # fmt: skip
                failing = error is not None
                if os.getppid() != parent:
                    logger.warning("the sidecar is gone; the shipper stops")
                    break
        finally:
            forwarder.stop()
            _write_stats(spool_dir, forwarder, decoder, spool)


def main() -> None:
    """Entry point of the child process."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    serve(orjson.loads(sys.stdin.buffer.read()))


if __name__ == "__main__":
    main()

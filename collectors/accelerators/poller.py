"""Poll: NVML and libtpu readings in, one immutable snapshot out, in one thread.

Fast readings (utilization, memory, fan, power, clocks, GPM) are taken every poll; slow
ones (energy 3.7 ms, ECC, the process list up to 98 ms, MIG) every ``slow_every``
polls, so a slow call never delays the fast loop more than once in a while. A scrape
reads the latest snapshot and never calls NVML. A reading the GPU does not support is
not asked for again; a lost GPU is marked and the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from collectors.accelerators.nvml import (
    GpuIdentity,
    NvmlBackend,
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
)
from collectors.accelerators.tpu import TpuReader, TpuReading
from collectors.errors import MissingDependencyError

if TYPE_CHECKING:
    from collectors.accelerators.settings import AcceleratorSettings

logger = logging.getLogger("sidewatch.accelerators")

_T = TypeVar("_T")

SLOW_CALLS = ("energy_millijoules", "ecc_errors", "processes", "mig_memory")
"""The readings taken once every ``slow_every`` polls; the others are taken every poll."""


@dataclass(frozen=True)
class GpuReading:
    """The latest readings of one GPU; None where unsupported or not read yet."""

    identity: GpuIdentity
    lost: bool = False
    utilization: float | None = None
    memory_busy: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    fan_percent: float | None = None
    power_milliwatts: int | None = None
    temperature: int | None = None
    sm_clock_mhz: int | None = None
    clock_events: int | None = None
    gpm: dict[str, float] = field(default_factory=dict)
    energy_millijoules: int | None = None
    ecc: tuple[int, int] | None = None
    model_memory: int | None = None
    mig: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything a scrape exports, as of the last poll."""

    driver: str = ""
    gpus: tuple[GpuReading, ...] = ()
    tpus: tuple[TpuReading, ...] = ()
    xids: tuple[tuple[tuple[int, int], int], ...] = ()
    """((gpu, xid), count) since start."""
    idle: tuple[tuple[str, bool], ...] = ()
    cost: tuple[tuple[str, float], ...] = ()
    errors: tuple[tuple[str, int], ...] = ()
    poll_seconds: float = 0.0


class AcceleratorPoller:
    """Polls accelerators in a background thread; ``snapshot()`` is what scrapes read."""

    def __init__(
        self,
        settings: AcceleratorSettings,
        backend: NvmlBackend,
        *,
        tpu: TpuReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._tpu = tpu
        self._clock = clock
        self._snapshot = Snapshot()
        self._started = False
        self._available = False
        self._unsupported: set[tuple[int, str]] = set()
        self._errors: Counter[str] = Counter()
        self._xids: Counter[tuple[int, int]] = Counter()
        self._polls = 0
        self._readings: list[GpuReading] = []
        self._idle_since: dict[str, float | None] = {}
        self._cost: dict[str, float] = {}
        self._last_poll: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        """The latest readings (never calls NVML)."""
        return self._snapshot

    def start(self) -> None:
        """Find the accelerators and start polling in the background."""
        self._open()
        self._thread = threading.Thread(
            target=self._run, name="sidewatch-accelerators", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and release NVML."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._available:
            try:
                self._backend.shutdown()
            except Exception:  # stopping must not fail the sidecar's shutdown
                logger.exception("NVML shutdown failed")
        if self._tpu is not None:
            self._tpu.close()

    def _open(self) -> None:
        self._started = True
        try:
            driver, gpus = self._backend.init()
        except NvmlUnavailable as exc:
            logger.info("no NVIDIA GPU: %s", exc)
            driver, gpus = "", []
        except MissingDependencyError as exc:
            logger.warning("no NVIDIA GPU readings: %s", exc)
            driver, gpus = "", []
        except NvmlError as exc:  # NVML started but could not list the GPUs
            logger.error("no NVIDIA GPU readings: NVML failed at start-up: %s", exc)
            self._errors["init"] += 1
            driver, gpus = "", []
        self._available = bool(gpus) or driver != ""
        self._readings = [GpuReading(identity=g) for g in gpus]
        self._snapshot = Snapshot(driver=driver, gpus=tuple(self._readings))

    def poll_once(self) -> Snapshot:
        """Take one round of readings and publish the snapshot."""
        if not self._started:
            self._open()
        started = time.perf_counter()
        slow = self._polls % self.settings.slow_every == 0
        self._polls += 1
        self._readings = [self._read_gpu(r, slow) for r in self._readings]
        if self._available:
            try:
                xids = self._guard(-1, "xid_events", self._backend.xid_events) or []
            except NvmlGpuLost:  # counted; the GPU's own readings will mark it lost
                xids = []
            for gpu, xid in xids:
                self._xids[(gpu, xid)] += 1
        tpus = tuple(self._tpu.read()) if self._tpu is not None else ()
        now = self._clock()
        self._account(now, tpus)
        self._snapshot = Snapshot(
            driver=self._snapshot.driver,
            gpus=tuple(self._readings),
            tpus=tpus,
            xids=tuple(self._xids.items()),
            idle=tuple((k, self._is_idle(k, now)) for k in sorted(self._idle_since)),
            cost=tuple(sorted(self._cost.items())),
            errors=tuple(sorted(self._errors.items())),
            poll_seconds=time.perf_counter() - started,
        )
        return self._snapshot

    def _read_gpu(self, reading: GpuReading, slow: bool) -> GpuReading:
        if reading.lost:
            return reading
        i, b = reading.identity.index, self._backend
        try:
            changes: dict[str, object] = {}
            if (u := self._guard(i, "utilization", b.utilization, i)) is not None:
                changes["utilization"], changes["memory_busy"] = u
            if (m := self._guard(i, "memory", b.memory, i)) is not None:
                changes["memory_used"], changes["memory_total"] = m
            changes["fan_percent"] = self._guard(i, "fan_speed", b.fan_speed, i)
            changes["power_milliwatts"] = self._guard(i, "power_milliwatts", b.power_milliwatts, i)
            changes["temperature"] = self._guard(i, "temperature_celsius", b.temperature_celsius, i)
            changes["sm_clock_mhz"] = self._guard(i, "sm_clock_mhz", b.sm_clock_mhz, i)
            changes["clock_events"] = self._guard(
                i, "clock_event_reasons", b.clock_event_reasons, i
            )
            gpm = self._guard(i, "gpm", b.gpm, i)
            changes["gpm"] = gpm if gpm else reading.gpm
            if slow:
                changes["energy_millijoules"] = self._guard(
                    i, "energy_millijoules", b.energy_millijoules, i
                )
                changes["ecc"] = self._guard(i, "ecc_errors", b.ecc_errors, i)
                processes = self._guard(i, "processes", b.processes, i)
                if processes is not None:
                    pids = self.settings.pids
                    changes["model_memory"] = sum(m for pid, m in processes if pid in pids)
                mig = self._guard(i, "mig_memory", b.mig_memory, i)
                changes["mig"] = tuple(mig) if mig else ()
            return replace(reading, **changes)  # type: ignore[arg-type]
        except NvmlGpuLost as exc:
            logger.error("GPU %d is lost (%s); still watching the others", i, exc)
            return replace(reading, lost=True)

    def _guard(self, gpu: int, call: str, read: Callable[..., _T], *args: object) -> _T | None:
        """One reading, or None: unsupported ones are remembered, errors counted."""
        if (gpu, call) in self._unsupported:
            return None
        try:
            return read(*args)
        except NvmlNotSupported:
            self._unsupported.add((gpu, call))
            return None
        except NvmlGpuLost:
            self._errors[call] += 1
            raise
        except NvmlError:
            # Counted under the poller's own call name: the same label values whichever
            # backend runs, and a bounded set.
            self._errors[call] += 1
            return None

    def _account(self, now: float, tpus: tuple[TpuReading, ...]) -> None:
        busy: dict[str, float | None] = {}
        for r in self._readings:
            if not r.lost:
                busy[f"gpu{r.identity.index}"] = (
                    r.utilization / 100 if r.utilization is not None else None
                )
        for t in tpus:
            busy[f"tpu{t.device}"] = t.duty_cycle_ratio
        elapsed = now - self._last_poll if self._last_poll is not None else 0.0
        self._last_poll = now
        for name, ratio in busy.items():
            if self.settings.price_per_hour is not None:
                self._cost[name] = (
                    self._cost.get(name, 0.0) + self.settings.price_per_hour * elapsed / 3600
                )
            if ratio is not None and ratio < self.settings.idle_ratio:
                since = self._idle_since.get(name)
                self._idle_since[name] = now if since is None else since
            else:
                self._idle_since[name] = None

    def _is_idle(self, name: str, now: float) -> bool:
        since = self._idle_since.get(name)
        return since is not None and now - since >= self.settings.idle_seconds

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # never let a bad reading end the polling (or the sidecar)
                logger.exception("accelerator poll failed")
                self._errors["poll"] += 1
            self._stop.wait(self.settings.poll_interval_seconds)

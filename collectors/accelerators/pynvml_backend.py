"""The real NVML backend: ``nvidia-ml-py`` calls in, plain readings or translated errors out.

``nvidia-ml-py`` (import name ``pynvml``) is imported only when :meth:`PynvmlBackend.init`
runs, so the sidecar imports without it. Every call goes through one wrapper that turns
``pynvml.NVMLError`` into the errors of ``collectors.accelerators.nvml``.
"""

from __future__ import annotations

import logging
from typing import Any

from collectors.accelerators.nvml import (
    GPM_METRICS,
    GpuIdentity,
    NvmlError,
    NvmlGpuLost,
    NvmlUnavailable,
    translate,
)
from collectors.errors import MissingDependencyError

logger = logging.getLogger("sidewatch.accelerators")


class PynvmlBackend:
    """The real NVML, through ``nvidia-ml-py``.

    Args:
        module: The ``pynvml`` module to call; imported on :meth:`init` when None.
            Tests pass ``fake_pynvml.FakePynvml``, which raises pynvml's own errors.
    """

    def __init__(self, module: Any = None) -> None:
        self._nvml: Any = module
        self._started = False
        self._handles: list[Any] = []
        self._uuids: dict[str, int] = {}
        self._gpm_previous: dict[int, Any] = {}
        self._events: Any = None

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, name)(*args)
        except Exception as exc:
            raise translate(name, exc) from exc

    def _handle(self, gpu: int) -> Any:
        handle = self._handles[gpu]
        if handle is None:
            raise NvmlGpuLost("nvmlDeviceGetHandleByIndex", "no handle since start-up")
        return handle

    def init(self) -> tuple[str, list[GpuIdentity]]:
        """Start NVML and list the GPUs (see ``NvmlBackend.init``)."""
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as exc:
                raise MissingDependencyError("nvidia-ml-py", "gpu") from exc
            self._nvml = pynvml
        try:
            self._call("nvmlInit")
        except NvmlError as exc:
            raise NvmlUnavailable(str(exc)) from exc
        self._started = True
        driver = str(self._call("nvmlSystemGetDriverVersion"))
        gpus = [self._identify(i) for i in range(int(self._call("nvmlDeviceGetCount")))]
        self._register_xid_events()
        return driver, gpus

    def _identify(self, index: int) -> GpuIdentity:
        # A GPU that fails here is kept under its index with a None handle: the poller
        # then marks it lost instead of the whole host losing its GPU metrics.
        try:
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            name = str(self._call("nvmlDeviceGetName", handle))
            uuid = str(self._call("nvmlDeviceGetUUID", handle))
        except NvmlError as exc:
            logger.error("GPU %d did not answer at start-up: %s", index, exc)
            self._handles.append(None)
            return GpuIdentity(index, "unknown", f"unknown-{index}")
        self._handles.append(handle)
        self._uuids[uuid] = index
        return GpuIdentity(index, name, uuid)

    def _register_xid_events(self) -> None:
        try:
            self._events = self._call("nvmlEventSetCreate")
            for handle in self._handles:
                if handle is not None:
                    self._call(
                        "nvmlDeviceRegisterEvents",
                        handle,
                        self._nvml.nvmlEventTypeXidCriticalError,
                        self._events,
                    )
        except NvmlError as exc:
            # XID events are optional: not every driver, GPU or container offers them.
            logger.info("no XID events from NVML: %s", exc)
            if self._events is not None:
                self._quietly("nvmlEventSetFree", self._events)
            self._events = None

    def _quietly(self, name: str, *args: Any) -> None:
        try:
            self._call(name, *args)
        except NvmlError as exc:
            logger.debug("%s failed at shutdown: %s", name, exc)

    def shutdown(self) -> None:
        """Free GPM samples and the event set, then shut NVML down; never raises."""
        if not self._started:
            return
        for sample in self._gpm_previous.values():
            self._quietly("nvmlGpmSampleFree", sample)
        self._gpm_previous.clear()
        if self._events is not None:
            self._quietly("nvmlEventSetFree", self._events)
            self._events = None
        self._quietly("nvmlShutdown")
        self._started = False

    def utilization(self, gpu: int) -> tuple[float, float]:
        rates = self._call("nvmlDeviceGetUtilizationRates", self._handle(gpu))
        return float(rates.gpu), float(rates.memory)

    def memory(self, gpu: int) -> tuple[int, int]:
        info = self._call("nvmlDeviceGetMemoryInfo", self._handle(gpu))
        return int(info.used), int(info.total)

    def fan_speed(self, gpu: int) -> float:
        return float(self._call("nvmlDeviceGetFanSpeed", self._handle(gpu)))

    def power_milliwatts(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetPowerUsage", self._handle(gpu)))

    def temperature_celsius(self, gpu: int) -> int:
        sensor = self._nvml.NVML_TEMPERATURE_GPU
        return int(self._call("nvmlDeviceGetTemperature", self._handle(gpu), sensor))

    def sm_clock_mhz(self, gpu: int) -> int:
        clock = self._nvml.NVML_CLOCK_SM
        return int(self._call("nvmlDeviceGetClockInfo", self._handle(gpu), clock))

    def clock_event_reasons(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetCurrentClocksEventReasons", self._handle(gpu)))

    def gpm(self, gpu: int) -> dict[str, float]:
        nvml, handle = self._nvml, self._handle(gpu)
        sample = self._call("nvmlGpmSampleAlloc")
        try:
            self._call("nvmlGpmSampleGet", handle, sample)
        except NvmlError:
            self._quietly("nvmlGpmSampleFree", sample)
            raise
        previous = self._gpm_previous.get(gpu)
        self._gpm_previous[gpu] = sample
        if previous is None:
            return {}  # GPM rates need two samples: the first poll has none yet
        request = nvml.c_nvmlGpmMetricsGet_t()
        request.version = nvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(GPM_METRICS)
        request.sample1 = previous
        request.sample2 = sample
        for slot, metric_id in enumerate(GPM_METRICS.values()):
            request.metrics[slot].metricId = metric_id
        try:
            self._call("nvmlGpmMetricsGet", request)
        finally:
            self._quietly("nvmlGpmSampleFree", previous)
        return {
            name: float(request.metrics[slot].value)
            for slot, name in enumerate(GPM_METRICS)
            if request.metrics[slot].nvmlReturn == nvml.NVML_SUCCESS
        }

    def energy_millijoules(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", self._handle(gpu)))

    def ecc_errors(self, gpu: int) -> tuple[int, int]:
        nvml, handle = self._nvml, self._handle(gpu)
        corrected, uncorrected = (
            int(self._call("nvmlDeviceGetTotalEccErrors", handle, kind, nvml.NVML_VOLATILE_ECC))
            for kind in (
                nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            )
        )
        return corrected, uncorrected

    def processes(self, gpu: int) -> list[tuple[int, int]]:
        found = self._call("nvmlDeviceGetComputeRunningProcesses", self._handle(gpu))
        # usedGpuMemory is None where the driver cannot tell (Windows WDDM, some MIG).
        return [(int(p.pid), int(p.usedGpuMemory or 0)) for p in found]

    def mig_memory(self, gpu: int) -> list[tuple[int, int, int]]:
        handle = self._handle(gpu)
        current, _pending = self._call("nvmlDeviceGetMigMode", handle)
        if current != self._nvml.NVML_DEVICE_MIG_ENABLE:
            return []
        instances = []
        for index in range(int(self._call("nvmlDeviceGetMaxMigDeviceCount", handle))):
            try:
                mig = self._call("nvmlDeviceGetMigDeviceHandleByIndex", handle, index)
            except NvmlGpuLost:
                raise
            except NvmlError:
                continue  # an empty slot (NotFound)
            info = self._call("nvmlDeviceGetMemoryInfo", mig)
            instances.append((index, int(info.used), int(info.total)))
        return instances

    def xid_events(self) -> list[tuple[int, int]]:
        if self._events is None:
            return []
        found: list[tuple[int, int]] = []
        while True:
            try:
                data = self._nvml.nvmlEventSetWait(self._events, 0)
            except self._nvml.NVMLError_Timeout:
                return found  # nothing more pending
            except Exception as exc:
                raise translate("nvmlEventSetWait", exc) from exc
            uuid = str(self._call("nvmlDeviceGetUUID", data.device))
            found.append((self._uuids.get(uuid, -1), int(data.eventData)))

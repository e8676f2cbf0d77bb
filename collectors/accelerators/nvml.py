"""NVML access: one small protocol, the real backend over ``nvidia-ml-py``, errors.

The poller talks to a :class:`NvmlBackend`; :class:`PynvmlBackend` is the real one and
``collectors/accelerators/fake.py`` a double built from readings of a real H100.
NVML's errors are translated here, at the boundary, into the three that the poller
acts on: not supported (stop asking), GPU lost (mark it), anything else (count it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from collectors.errors import SidewatchError


class NvmlError(SidewatchError):
    """An NVML call failed; ``call`` names it."""

    def __init__(self, call: str, detail: str) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call


class NvmlNotSupported(NvmlError):
    """This GPU or driver does not offer the reading."""


class NvmlGpuLost(NvmlError):
    """The GPU fell off the bus or stopped answering."""


class NvmlUnavailable(SidewatchError):
    """No NVML here: no driver, no library, or no GPU."""


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    """What a GPU is."""

    index: int
    name: str
    uuid: str


GPM_METRICS = {"sm_active": 2, "sm_occupancy": 3, "tensor_active": 5, "dram_active": 10}
"""Hopper GPM metric ids (``NVML_GPM_METRIC_*``) of the readings Sidewatch exports."""


class NvmlBackend(Protocol):
    """The NVML readings the poller needs, per GPU index. Percentages are 0 to 100."""

    def init(self) -> tuple[str, list[GpuIdentity]]:
        """Start NVML; the driver version and the GPUs. Raises NvmlUnavailable."""
        ...

    def shutdown(self) -> None: ...
    def utilization(self, gpu: int) -> tuple[float, float]:
        """(GPU busy %, memory controller busy %)."""
        ...

    def memory(self, gpu: int) -> tuple[int, int]:
        """(used bytes, total bytes)."""
        ...

    def power_milliwatts(self, gpu: int) -> int: ...
    def temperature_celsius(self, gpu: int) -> int: ...
    def sm_clock_mhz(self, gpu: int) -> int: ...
    def clock_event_reasons(self, gpu: int) -> int:
        """Bitmask of ``nvmlClocksEventReason*``."""
        ...

    def gpm(self, gpu: int) -> dict[str, float]:
        """GPM metrics (``GPM_METRICS`` keys, in %) since the previous call."""
        ...

    def energy_millijoules(self, gpu: int) -> int: ...
    def ecc_errors(self, gpu: int) -> tuple[int, int]:
        """Volatile (corrected, uncorrected) ECC error counts."""
        ...

    def processes(self, gpu: int) -> list[tuple[int, int]]:
        """(pid, used bytes) of the compute processes on the GPU."""
        ...

    def mig_memory(self, gpu: int) -> list[tuple[int, int, int]]:
        """(MIG instance index, used bytes, total bytes); empty when MIG is off."""
        ...

    def xid_events(self) -> list[tuple[int, int]]:
        """(GPU index, XID) of critical errors reported since the previous call."""
        ...


def translate(call: str, exc: Exception) -> Exception:
    """Map a ``pynvml.NVMLError`` to this module's errors (others pass through)."""
    import pynvml

    if not isinstance(exc, pynvml.NVMLError):
        return exc
    code = exc.value
    if code in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
        return NvmlNotSupported(call, str(exc))
    if code == pynvml.NVML_ERROR_GPU_IS_LOST:
        return NvmlGpuLost(call, str(exc))
    if code in (
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_NO_PERMISSION,
    ):
        return NvmlUnavailable(f"{call}: {exc}")
    return NvmlError(call, str(exc))


class PynvmlBackend:
    """The real NVML, through ``nvidia-ml-py`` (import name ``pynvml``)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._gpm_previous: dict[int, Any] = {}
        self._events: Any = None

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, name)(*args)
        except Exception as exc:
            raise translate(name, exc) from exc

    def init(self) -> tuple[str, list[GpuIdentity]]:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlUnavailable(
                "nvidia-ml-py is not installed (pip install 'sidewatch[gpu]')"
            ) from exc
        self._nvml = pynvml
        try:
            self._call("nvmlInit")
        except NvmlError as exc:
            raise NvmlUnavailable(str(exc)) from exc
        driver = str(self._call("nvmlSystemGetDriverVersion"))
        count = int(self._call("nvmlDeviceGetCount"))
        self._handles = [self._call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
        gpus = [
            GpuIdentity(
                i,
                str(self._call("nvmlDeviceGetName", h)),
                str(self._call("nvmlDeviceGetUUID", h)),
            )
            for i, h in enumerate(self._handles)
        ]
        try:
            self._events = self._call("nvmlEventSetCreate")
            for h in self._handles:
                self._call(
                    "nvmlDeviceRegisterEvents",
                    h,
                    pynvml.nvmlEventTypeXidCriticalError,
                    self._events,
                )
        except NvmlError:
            self._events = None  # XID events are optional (not on every driver or GPU)
        return driver, gpus

    def shutdown(self) -> None:
        if self._nvml is not None:
            for sample in self._gpm_previous.values():
                self._call("nvmlGpmSampleFree", sample)
            self._call("nvmlShutdown")

    def utilization(self, gpu: int) -> tuple[float, float]:
        rates = self._call("nvmlDeviceGetUtilizationRates", self._handles[gpu])
        return float(rates.gpu), float(rates.memory)

    def memory(self, gpu: int) -> tuple[int, int]:
        info = self._call("nvmlDeviceGetMemoryInfo", self._handles[gpu])
        return int(info.used), int(info.total)

    def power_milliwatts(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetPowerUsage", self._handles[gpu]))

    def temperature_celsius(self, gpu: int) -> int:
        sensor = self._nvml.NVML_TEMPERATURE_GPU
        return int(self._call("nvmlDeviceGetTemperature", self._handles[gpu], sensor))

    def sm_clock_mhz(self, gpu: int) -> int:
        return int(
            self._call("nvmlDeviceGetClockInfo", self._handles[gpu], self._nvml.NVML_CLOCK_SM)
        )

    def clock_event_reasons(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetCurrentClocksEventReasons", self._handles[gpu]))

    def gpm(self, gpu: int) -> dict[str, float]:
        nvml = self._nvml
        sample = self._call("nvmlGpmSampleAlloc")
        try:
            self._call("nvmlGpmSampleGet", self._handles[gpu], sample)
        except NvmlError:
            self._call("nvmlGpmSampleFree", sample)
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
            self._call("nvmlGpmSampleFree", previous)
        return {
            name: float(request.metrics[slot].value)
            for slot, name in enumerate(GPM_METRICS)
            if request.metrics[slot].nvmlReturn == nvml.NVML_SUCCESS
        }

    def energy_millijoules(self, gpu: int) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", self._handles[gpu]))

    def ecc_errors(self, gpu: int) -> tuple[int, int]:
        nvml, h = self._nvml, self._handles[gpu]
        counts = [
            self._call("nvmlDeviceGetTotalEccErrors", h, kind, nvml.NVML_VOLATILE_ECC)
            for kind in (
                nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            )
        ]
        return int(counts[0]), int(counts[1])

    def processes(self, gpu: int) -> list[tuple[int, int]]:
        found = self._call("nvmlDeviceGetComputeRunningProcesses", self._handles[gpu])
        return [(int(p.pid), int(p.usedGpuMemory or 0)) for p in found]

    def mig_memory(self, gpu: int) -> list[tuple[int, int, int]]:
        current, _pending = self._call("nvmlDeviceGetMigMode", self._handles[gpu])
        if current != self._nvml.NVML_DEVICE_MIG_ENABLE:
            return []
        instances = []
        for index in range(int(self._call("nvmlDeviceGetMaxMigDeviceCount", self._handles[gpu]))):
            try:
                mig = self._call("nvmlDeviceGetMigDeviceHandleByIndex", self._handles[gpu], index)
            except NvmlError:
                continue  # an empty slot
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
            except Exception:  # NVML_ERROR_TIMEOUT: nothing pending
                return found
            uuid = self._call("nvmlDeviceGetUUID", data.device)
            index = next(
                (
                    i
                    for i, h in enumerate(self._handles)
                    if self._call("nvmlDeviceGetUUID", h) == uuid
                ),
                -1,
            )
            found.append((index, int(data.eventData)))

"""A stand-in for the ``pynvml`` module, so the real backend runs where no GPU is.

:class:`FakePynvml` answers the ``nvml*`` functions that ``PynvmlBackend`` calls from a
:class:`~collectors.accelerators.fake.FakeNvml` (real H100 readings, its loads and its
injected failures), and fails the way ``nvidia-ml-py`` does: with ``pynvml.NVMLError``
subclasses (``NVMLError_NotSupported``, ``NVMLError_GpuIsLost``, ...). Constants and
ctypes structures are pynvml's own, so the GPM request is built on the real
``c_nvmlGpmMetricsGet_t`` and GPM samples are real opaque pointers. It checks what the
real library would reject: GPM metrics from two samples of different GPUs or in the
wrong order, freeing a sample twice; ``live_samples`` shows leaks.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from collectors.accelerators.fake import DRIVER, FakeNvml
from collectors.accelerators.nvml import (
    GPM_METRICS,
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
)

MAX_MIG_DEVICES = 7


@dataclass(frozen=True)
class _Device:
    gpu: int
    mig: int | None = None


class FakePynvml:
    """The subset of ``pynvml`` that ``PynvmlBackend`` uses, over a :class:`FakeNvml`.

    Args:
        fake: Where the readings, loads and failures come from.
        xid_events: False: registering for XID events fails with NotSupported, as in
            containers without the capability.
    """

    def __init__(self, fake: FakeNvml, *, xid_events: bool = True) -> None:
        import pynvml

        self._pynvml = pynvml
        self.fake = fake
        self.xid_events = xid_events
        self.live_samples: dict[int, tuple[int, int, dict[str, float]] | None] = {}
        self._buffers: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self._sequence = itertools.count()
        self._pending: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        # Constants, structures and error classes are pynvml's own.
        return getattr(self._pynvml, name)

    def _error(self, code: int) -> Exception:
        return self._pynvml.NVMLError(code)  # type: ignore[no-any-return]

    def _run(self, read: Callable[..., Any], *args: Any) -> Any:
        p = self._pynvml
        try:
            return read(*args)
        except NvmlNotSupported as exc:
            raise self._error(p.NVML_ERROR_NOT_SUPPORTED) from exc
        except NvmlGpuLost as exc:
            raise self._error(p.NVML_ERROR_GPU_IS_LOST) from exc
        except NvmlError as exc:
            raise self._error(p.NVML_ERROR_UNKNOWN) from exc
        except NvmlUnavailable as exc:
            raise self._error(p.NVML_ERROR_LIBRARY_NOT_FOUND) from exc

    # -- library and devices -------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._identities = self._run(self.fake.init)[1]

    def nvmlShutdown(self) -> None:
        self.fake.shutdown()

    def nvmlSystemGetDriverVersion(self) -> str:
        return DRIVER

    def nvmlDeviceGetCount(self) -> int:
        return len(self._identities)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Device:
        if index in self.fake.lost:
            raise self._error(self._pynvml.NVML_ERROR_GPU_IS_LOST)
        return _Device(index)

    def nvmlDeviceGetName(self, device: _Device) -> str:
        return str(self._identities[device.gpu].name)

    def nvmlDeviceGetUUID(self, device: _Device) -> str:
        return str(self._identities[device.gpu].uuid)

    # -- fast readings -------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, device: _Device) -> SimpleNamespace:
        gpu, memory = self._run(self.fake.utilization, device.gpu)
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, device: _Device) -> SimpleNamespace:
        if device.mig is not None:
            _, used, total = self._mig(device.gpu)[device.mig]
        else:
            used, total = self._run(self.fake.memory, device.gpu)
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetFanSpeed(self, device: _Device) -> float:
        return float(self._run(self.fake.fan_speed, device.gpu))

    def nvmlDeviceGetPowerUsage(self, device: _Device) -> int:
        return int(self._run(self.fake.power_milliwatts, device.gpu))

    def nvmlDeviceGetTemperature(self, device: _Device, sensor: int) -> int:
        assert sensor == self._pynvml.NVML_TEMPERATURE_GPU
        return int(self._run(self.fake.temperature_celsius, device.gpu))

    def nvmlDeviceGetClockInfo(self, device: _Device, clock: int) -> int:
        assert clock == self._pynvml.NVML_CLOCK_SM
        return int(self._run(self.fake.sm_clock_mhz, device.gpu))

    def nvmlDeviceGetCurrentClocksEventReasons(self, device: _Device) -> int:
        return int(self._run(self.fake.clock_event_reasons, device.gpu))

    # -- GPM: opaque samples, metrics between two of them ---------------------------------

    def nvmlGpmSampleAlloc(self) -> Any:
        buffer = ctypes.create_string_buffer(8)
        address = ctypes.addressof(buffer)
        self._buffers[address] = buffer
        self.live_samples[address] = None
        return ctypes.cast(buffer, self._pynvml.c_nvmlGpmSample_t)

    def _address(self, sample: Any) -> int:
        address = ctypes.cast(sample, ctypes.c_void_p).value or 0
        if address not in self.live_samples:
            raise self._error(self._pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return address

    def nvmlGpmSampleGet(self, device: _Device, sample: Any) -> Any:
        address = self._address(sample)
        values = self._run(self.fake.gpm, device.gpu)
        self.live_samples[address] = (device.gpu, next(self._sequence), values)
        return sample

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        address = self._address(sample)
        del self.live_samples[address]
        del self._buffers[address]

    def nvmlGpmMetricsGet(self, request: Any) -> Any:
        p = self._pynvml
        first = self.live_samples[self._address(request.sample1)]
        second = self.live_samples[self._address(request.sample2)]
        if (
            request.version != p.NVML_GPM_METRICS_GET_VERSION
            or first is None
            or second is None
            or first[0] != second[0]
            or first[1] >= second[1]
        ):
            raise self._error(p.NVML_ERROR_INVALID_ARGUMENT)
        by_id = {metric_id: name for name, metric_id in GPM_METRICS.items()}
        for slot in range(request.numMetrics):
            metric = request.metrics[slot]
            name = by_id.get(metric.metricId)
            if name is None or name not in second[2]:
                metric.nvmlReturn = p.NVML_ERROR_NOT_SUPPORTED
            else:
                metric.value = second[2][name]
                metric.nvmlReturn = p.NVML_SUCCESS
        return request

    # -- slow readings -------------------------------------------------------------------

    def nvmlDeviceGetTotalEnergyConsumption(self, device: _Device) -> int:
        return int(self._run(self.fake.energy_millijoules, device.gpu))

    def nvmlDeviceGetTotalEccErrors(self, device: _Device, kind: int, counter: int) -> int:
        p = self._pynvml
        assert counter == p.NVML_VOLATILE_ECC
        corrected, uncorrected = self._run(self.fake.ecc_errors, device.gpu)
        return int(corrected if kind == p.NVML_MEMORY_ERROR_TYPE_CORRECTED else uncorrected)

    def nvmlDeviceGetComputeRunningProcesses(self, device: _Device) -> list[SimpleNamespace]:
        found = self._run(self.fake.processes, device.gpu)
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in found]

    def _mig(self, gpu: int) -> dict[int, tuple[int, int, int]]:
        return {entry[0]: entry for entry in self._run(self.fake.mig_memory, gpu)}

    def nvmlDeviceGetMigMode(self, device: _Device) -> list[int]:
        enabled = int(bool(self._mig(device.gpu)))
        return [enabled, enabled]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: _Device) -> int:
        return MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: _Device, index: int) -> _Device:
        if index not in self._mig(device.gpu):
            raise self._error(self._pynvml.NVML_ERROR_NOT_FOUND)
        return _Device(device.gpu, index)

    # -- XID events ------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> object:
        return object()

    def nvmlEventSetFree(self, event_set: object) -> None:
        return None

    def nvmlDeviceRegisterEvents(self, device: _Device, types: int, event_set: object) -> None:
        if not self.xid_events:
            raise self._error(self._pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlEventSetWait(self, event_set: object, timeout_ms: int) -> SimpleNamespace:
        self._pending.extend(self.fake.xid_events())
        if not self._pending:
            raise self._error(self._pynvml.NVML_ERROR_TIMEOUT)
        gpu, xid = self._pending.pop(0)
        return SimpleNamespace(
            device=_Device(gpu),
            eventType=self._pynvml.nvmlEventTypeXidCriticalError,
            eventData=xid,
        )

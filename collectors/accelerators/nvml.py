"""NVML access: the protocol the poller reads through, and NVML's errors.

The poller talks to a :class:`NvmlBackend`: ``pynvml_backend.PynvmlBackend`` is the
real one (over ``nvidia-ml-py``), ``fake.FakeNvml`` a double built from readings of a
real H100. NVML's errors are translated by :func:`translate`, at the boundary, into the
three that the poller acts on::

    SidewatchError
    ├── NvmlError            a call failed: counted by call name, asked again next poll
    │   ├── NvmlNotSupported this GPU or driver lacks the reading: absent, not asked again
    │   └── NvmlGpuLost      the GPU fell off the bus: marked lost, the others go on
    └── NvmlUnavailable      no driver, library or GPU: the collector reports kind none
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
        """Start NVML.

        Returns:
            The driver version and the GPUs found.

        Raises:
            NvmlUnavailable: No NVML library, driver or GPU on this host.
            MissingDependencyError: ``nvidia-ml-py`` is not installed.
        """
        ...

    def shutdown(self) -> None:
        """Release NVML; never raises."""
        ...

    def utilization(self, gpu: int) -> tuple[float, float]:
        """(GPU busy %, memory controller busy %)."""
        ...

    def memory(self, gpu: int) -> tuple[int, int]:
        """(used bytes, total bytes)."""
        ...

    def fan_speed(self, gpu: int) -> float:
        """Fan speed, % of the maximum (NotSupported on passively cooled GPUs)."""
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

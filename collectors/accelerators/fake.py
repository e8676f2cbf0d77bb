"""A fake NVML built from real readings of an NVIDIA H100 (driver 580.159.04).

The values and call costs below are copied from ``shared/reference/gpu_probe_h100.jsonl``
and ``gpm_probe_h100.jsonl`` (``tests/collectors/accelerators`` checks that they still
match): plain utilization followed the duty cycle (100% → 98.65, 50% → 48.8, idle 0);
GPM told a tensor-core load (tensor 91.7%, DRAM 23.4%) from a memory-bound one (tensor
0%, DRAM 86.7%) that plain utilization showed alike (98 vs 97); the fan reading was
NotSupported. (The probe's per-process utilization returned NotFound, so the collector
never asks for it and attributes memory, not utilization, to the model.) Loads, GPU
count and failures are set by the test; a call can be made to cost its real time.
``fake_pynvml.FakePynvml`` serves the same readings through pynvml's own API and errors.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Literal

from collectors.accelerators.nvml import (
    GpuIdentity,
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
)

Load = Literal["idle", "busy", "duty50", "tensor", "memory"]

DRIVER = "580.159.04"
NAME = "NVIDIA H100 80GB HBM3"
UUID = "GPU-b4b1f67a-40fa-41dd-44c1-91a0f6ee1047"
MIB = 1024 * 1024
MEMORY_TOTAL = 81_559 * MIB
MEMORY_USED_IDLE = 847 * MIB  # nvidia-smi at idle
POWER_MW = 124_170
ENERGY_MJ = 2_304_059
TEMPERATURE_C = 36
SM_CLOCK_MHZ = 900
CLOCK_EVENTS_IDLE = 0x1  # nvmlClocksEventReasonGpuIdle
LOAD_PID, LOAD_BYTES = 414, 878_706_688

UTILIZATION: dict[Load, float] = {
    "idle": 0.0,
    "busy": 98.65,
    "duty50": 48.825,
    "tensor": 98.0,
    "memory": 97.0,
}
GPM: dict[Load, dict[str, float]] = {
    "idle": {"sm_active": 0.0, "sm_occupancy": 0.0, "tensor_active": 0.0, "dram_active": 0.0},
    "tensor": {"sm_active": 94.4, "sm_occupancy": 13.9, "tensor_active": 91.7, "dram_active": 23.4},
    "memory": {"sm_active": 96.4, "sm_occupancy": 82.2, "tensor_active": 0.0, "dram_active": 86.7},
    "duty50": {"sm_active": 43.0, "sm_occupancy": 6.4, "tensor_active": 41.8, "dram_active": 13.1},
}
GPM["busy"] = GPM["tensor"]  # the probe's busy load was a matmul loop

COST_SECONDS = {
    "utilization": 0.85e-6,
    "memory": 5.05e-6,
    "power_milliwatts": 0.91e-6,
    "energy_millijoules": 3712.44e-6,
    "temperature_celsius": 7.63e-6,
    "sm_clock_mhz": 1.77e-6,
    "clock_event_reasons": 1.69e-6,
    "ecc_errors": 157.27e-6,
    "mig_memory": 164.69e-6,
    "processes": 9.02e-6,
    "gpm": 253.5e-6,
}
"""Median cost of each call on the H100 (the process list reached 13.6 ms at p99)."""

Failure = Literal["not_supported", "error"]


class FakeNvml:
    """An :class:`~collectors.accelerators.nvml.NvmlBackend` with H100 readings.

    Args:
        gpus: How many identical GPUs to simulate.
        available: False simulates a host without NVML (no driver or library).
        real_cost: Make the slow calls (over 100 us) take their measured time.
        sleep: Used for ``real_cost``.
    """

    def __init__(
        self,
        gpus: int = 1,
        *,
        available: bool = True,
        real_cost: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.loads: list[Load] = ["idle"] * gpus
        self.available = available
        self.real_cost = real_cost
        self._sleep = sleep
        self.calls: Counter[str] = Counter()
        self.failures: dict[tuple[int, str], Failure] = {}
        self.lost: set[int] = set()
        self.mig: dict[int, list[tuple[int, int, int]]] = {}
        self.pending_xids: list[tuple[int, int]] = []
        self.energy = [ENERGY_MJ] * gpus
        self.ecc = [(0, 0)] * gpus
        self.fan_percent: float | None = None
        """None: no fan reading, as on the H100 (passively cooled)."""

    def set_load(self, gpu: int, load: Load) -> None:
        """What GPU ``gpu`` runs from now on."""
        self.loads[gpu] = load

    def fail(self, gpu: int, call: str, failure: Failure) -> None:
        """Make ``call`` on ``gpu`` fail from now on."""
        self.failures[(gpu, call)] = failure

    def lose(self, gpu: int) -> None:
        """GPU ``gpu`` falls off the bus: every call on it fails from now on."""
        self.lost.add(gpu)

    def _enter(self, call: str, gpu: int | None = None) -> None:
        self.calls[call] += 1
        if gpu is not None:
            if gpu in self.lost:
                raise NvmlGpuLost(call, "GPU is lost")
            failure = self.failures.get((gpu, call))
            if failure == "not_supported":
                raise NvmlNotSupported(call, "Not Supported")
            if failure == "error":
                raise NvmlError(call, "Unknown Error")
        cost = COST_SECONDS.get(call, 0.0)
        if self.real_cost and cost > 100e-6:
            self._sleep(cost)

    def init(self) -> tuple[str, list[GpuIdentity]]:
        self._enter("init")
        if not self.available:
            raise NvmlUnavailable("nvmlInit: NVML Shared Library Not Found")
        gpus = [
            GpuIdentity(i, NAME, UUID if i == 0 else f"{UUID[:-2]}{i:02d}")
            for i in range(len(self.loads))
        ]
        return DRIVER, gpus

    def shutdown(self) -> None:
        self._enter("shutdown")

    def utilization(self, gpu: int) -> tuple[float, float]:
        self._enter("utilization", gpu)
        # Not in the probe: the memory-bound load's GPM DRAM reading, 20% for the others.
        memory_busy = {"idle": 0.0, "memory": 86.7}.get(self.loads[gpu], 20.0)
        return UTILIZATION[self.loads[gpu]], memory_busy

    def memory(self, gpu: int) -> tuple[int, int]:
        self._enter("memory", gpu)
        used = MEMORY_USED_IDLE + (LOAD_BYTES if self.loads[gpu] != "idle" else 0)
        return used, MEMORY_TOTAL

    def fan_speed(self, gpu: int) -> float:
        self._enter("fan_speed", gpu)
        if self.fan_percent is None:  # the H100 probe: NVMLError_NotSupported
            raise NvmlNotSupported("fan_speed", "Not Supported")
        return self.fan_percent

    def power_milliwatts(self, gpu: int) -> int:
        self._enter("power_milliwatts", gpu)
        return POWER_MW

    def temperature_celsius(self, gpu: int) -> int:
        self._enter("temperature_celsius", gpu)
        return TEMPERATURE_C

    def sm_clock_mhz(self, gpu: int) -> int:
        self._enter("sm_clock_mhz", gpu)
        return SM_CLOCK_MHZ

    def clock_event_reasons(self, gpu: int) -> int:
        self._enter("clock_event_reasons", gpu)
        return CLOCK_EVENTS_IDLE if self.loads[gpu] == "idle" else 0

    def gpm(self, gpu: int) -> dict[str, float]:
        self._enter("gpm", gpu)
        return dict(GPM[self.loads[gpu]])

    def energy_millijoules(self, gpu: int) -> int:
        self._enter("energy_millijoules", gpu)
        return self.energy[gpu]

    def ecc_errors(self, gpu: int) -> tuple[int, int]:
        self._enter("ecc_errors", gpu)
        return self.ecc[gpu]

    def processes(self, gpu: int) -> list[tuple[int, int]]:
        self._enter("processes", gpu)
        return [] if self.loads[gpu] == "idle" else [(LOAD_PID, LOAD_BYTES)]

    def mig_memory(self, gpu: int) -> list[tuple[int, int, int]]:
        self._enter("mig_memory", gpu)
        return self.mig.get(gpu, [])

    def xid_events(self) -> list[tuple[int, int]]:
        self._enter("xid_events")
        found, self.pending_xids = self.pending_xids, []
        return found

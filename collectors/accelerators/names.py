"""Every metric the accelerator collector exports (see CONVENTIONS.md for the rules)."""

from __future__ import annotations

from collectors.naming import MetricName


def _g(name: str, help: str, *labels: str) -> MetricName:
    return MetricName(name, "gauge", help, labels)


def _c(name: str, help: str, *labels: str) -> MetricName:
    return MetricName(name, "counter", help, labels)


INFO = _g(
    "sidewatch_accelerator_info",
    "Accelerators found (kind none: no GPU or TPU).",
    "kind",
    "count",
    "driver",
)
GPU_INFO = _g("sidewatch_gpu_info", "One GPU: its model name and UUID.", "gpu", "name", "uuid")
GPU_LOST = _g("sidewatch_gpu_lost", "1 if the GPU stopped answering (fell off the bus).", "gpu")
UTILIZATION = _g("sidewatch_gpu_utilization_ratio", "Share of time a kernel ran (NVML).", "gpu")
MEMORY_BUSY = _g(
    "sidewatch_gpu_memory_utilization_ratio", "Share of time memory was read or written.", "gpu"
)
MEMORY_USED = _g("sidewatch_gpu_memory_used_bytes", "GPU memory in use.", "gpu")
MEMORY_TOTAL = _g("sidewatch_gpu_memory_total_bytes", "GPU memory installed.", "gpu")
FAN_SPEED = _g(
    "sidewatch_gpu_fan_speed_ratio", "Fan speed over its maximum (absent without a fan).", "gpu"
)
POWER = _g("sidewatch_gpu_power_watts", "Power draw.", "gpu")
ENERGY = _c("sidewatch_gpu_energy_joules_total", "Energy used since the driver loaded.", "gpu")
TEMPERATURE = _g("sidewatch_gpu_temperature_celsius", "GPU core temperature.", "gpu")
SM_CLOCK = _g("sidewatch_gpu_sm_clock_hertz", "Streaming-multiprocessor clock.", "gpu")
CLOCK_EVENT = _g(
    "sidewatch_gpu_clock_event_active",
    "1 while a clock-event (throttle) reason holds.",
    "gpu",
    "reason",
)
ECC = _c("sidewatch_gpu_ecc_errors_total", "Volatile ECC errors, by type.", "gpu", "type")
XID = _c(
    "sidewatch_gpu_xid_errors_total", "Critical XID errors reported by the driver.", "gpu", "xid"
)
SM_ACTIVE = _g("sidewatch_gpu_sm_active_ratio", "Share of SMs busy (Hopper GPM).", "gpu")
SM_OCCUPANCY = _g("sidewatch_gpu_sm_occupancy_ratio", "Active warps over the maximum (GPM).", "gpu")
TENSOR_ACTIVE = _g(
    "sidewatch_gpu_tensor_active_ratio", "Share of time tensor cores worked (GPM).", "gpu"
)
DRAM_ACTIVE = _g(
    "sidewatch_gpu_dram_active_ratio", "DRAM bandwidth used over the peak (GPM).", "gpu"
)
MIG_MEMORY_USED = _g(
    "sidewatch_gpu_mig_memory_used_bytes", "Memory in use per MIG instance.", "gpu", "mig_instance"
)
MIG_MEMORY_TOTAL = _g(
    "sidewatch_gpu_mig_memory_total_bytes", "Memory of each MIG instance.", "gpu", "mig_instance"
)
PROCESS_MEMORY = _g(
    "sidewatch_gpu_process_memory_bytes",
    "GPU memory of the served model's processes.",
    "gpu",
    "model",
)
TPU_DUTY = _g("sidewatch_tpu_duty_cycle_ratio", "Share of time the TensorCores were busy.", "tpu")
TPU_HBM_USED = _g("sidewatch_tpu_hbm_used_bytes", "TPU high-bandwidth memory in use.", "tpu")
TPU_HBM_TOTAL = _g("sidewatch_tpu_hbm_total_bytes", "TPU high-bandwidth memory installed.", "tpu")
IDLE = _g(
    "sidewatch_accelerator_idle",
    "1 if allocated but under the idle threshold for the idle period.",
    "model",
    "accelerator",
)
COST = _c(
    "sidewatch_accelerator_cost_total",
    "Cost accrued at the configured price per accelerator-hour.",
    "model",
    "accelerator",
)
ERRORS = _c("sidewatch_accelerator_errors_total", "Failed readings, by call.", "call")
POLL_DURATION = _g("sidewatch_accelerator_poll_duration_seconds", "How long the last poll took.")

ALL: dict[str, MetricName] = {
    m.name: m
    for m in (
        INFO,
        GPU_INFO,
        GPU_LOST,
        UTILIZATION,
        MEMORY_BUSY,
        MEMORY_USED,
        MEMORY_TOTAL,
        FAN_SPEED,
        POWER,
        ENERGY,
        TEMPERATURE,
        SM_CLOCK,
        CLOCK_EVENT,
        ECC,
        XID,
        SM_ACTIVE,
        SM_OCCUPANCY,
        TENSOR_ACTIVE,
        DRAM_ACTIVE,
        MIG_MEMORY_USED,
        MIG_MEMORY_TOTAL,
        PROCESS_MEMORY,
        TPU_DUTY,
        TPU_HBM_USED,
        TPU_HBM_TOTAL,
        IDLE,
        COST,
        ERRORS,
        POLL_DURATION,
    )
}
"""Every family, by name (counters by their ``_total`` name)."""

"""Export: the poller's latest snapshot in, Prometheus metric families out.

Registered on a registry the sidecar owns; ``collect()`` only reads the snapshot, so a
scrape costs microseconds and never touches NVML.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collectors.accelerators import names
from collectors.accelerators.poller import AcceleratorPoller, GpuReading
from collectors.naming import MetricName

CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
"""NVML's clock-event (throttle) reasons: a bounded label set."""

_GPM = {
    "sm_active": names.SM_ACTIVE,
    "sm_occupancy": names.SM_OCCUPANCY,
    "tensor_active": names.TENSOR_ACTIVE,
    "dram_active": names.DRAM_ACTIVE,
}


def _family(m: MetricName) -> GaugeMetricFamily | CounterMetricFamily:
    if m.type == "counter":
        return CounterMetricFamily(m.name.removesuffix("_total"), m.help, labels=m.labels)
    return GaugeMetricFamily(m.name, m.help, labels=m.labels)


class AcceleratorCollector(Collector):
    """Prometheus view of an :class:`AcceleratorPoller`."""

    def __init__(self, poller: AcceleratorPoller) -> None:
        self._poller = poller

    def collect(self) -> Iterator[Metric]:
        """Families from the latest snapshot (called on each scrape)."""
        snap = self._poller.snapshot()
        model = self._poller.settings.model
        f = {name: _family(m) for name, m in names.ALL.items()}
        kind = "gpu" if snap.gpus else "tpu" if snap.tpus else "none"
        count = len(snap.gpus) or len(snap.tpus)
        f[names.INFO.name].add_metric([kind, str(count), snap.driver], 1)
        for r in snap.gpus:
            self._gpu(f, r, model)
        for (gpu, xid), n in snap.xids:
            f[names.XID.name].add_metric([str(gpu), str(xid)], n)
        for t in snap.tpus:
            tpu = [str(t.device)]
            if t.duty_cycle_ratio is not None:
                f[names.TPU_DUTY.name].add_metric(tpu, t.duty_cycle_ratio)
            if t.hbm_used_bytes is not None:
                f[names.TPU_HBM_USED.name].add_metric(tpu, t.hbm_used_bytes)
            if t.hbm_total_bytes is not None:
                f[names.TPU_HBM_TOTAL.name].add_metric(tpu, t.hbm_total_bytes)
        for accelerator, idle in snap.idle:
            f[names.IDLE.name].add_metric([model, accelerator], float(idle))
        for accelerator, cost in snap.cost:
            f[names.COST.name].add_metric([model, accelerator], cost)
        for call, n in snap.errors:
            f[names.ERRORS.name].add_metric([call], n)
        f[names.POLL_DURATION.name].add_metric([], snap.poll_seconds)
        yield from f.values()

    @staticmethod
    def _gpu(
        f: dict[str, GaugeMetricFamily | CounterMetricFamily], r: GpuReading, model: str
    ) -> None:
        gpu = str(r.identity.index)
        f[names.GPU_INFO.name].add_metric([gpu, r.identity.name, r.identity.uuid], 1)
        f[names.GPU_LOST.name].add_metric([gpu], float(r.lost))
        if r.lost:
            return
        values = (
            (names.UTILIZATION, r.utilization, 0.01),
            (names.MEMORY_BUSY, r.memory_busy, 0.01),
            (names.MEMORY_USED, r.memory_used, 1),
            (names.MEMORY_TOTAL, r.memory_total, 1),
            (names.FAN_SPEED, r.fan_percent, 0.01),
            (names.POWER, r.power_milliwatts, 0.001),
            (names.ENERGY, r.energy_millijoules, 0.001),
            (names.TEMPERATURE, r.temperature, 1),
            (names.SM_CLOCK, r.sm_clock_mhz, 1e6),
        )
        for metric, value, scale in values:
            if value is not None:
                f[metric.name].add_metric([gpu], value * scale)
        for key, metric in _GPM.items():
            if key in r.gpm:
                f[metric.name].add_metric([gpu], r.gpm[key] / 100)
        if r.clock_events is not None:
            for bit, reason in CLOCK_EVENT_REASONS.items():
                f[names.CLOCK_EVENT.name].add_metric(
                    [gpu, reason], float(bool(r.clock_events & bit))
                )
        if r.ecc is not None:
            f[names.ECC.name].add_metric([gpu, "corrected"], r.ecc[0])
            f[names.ECC.name].add_metric([gpu, "uncorrected"], r.ecc[1])
        if r.model_memory is not None:
            f[names.PROCESS_MEMORY.name].add_metric([gpu, model], r.model_memory)
        for index, used, total in r.mig:
            f[names.MIG_MEMORY_USED.name].add_metric([gpu, str(index)], used)
            f[names.MIG_MEMORY_TOTAL.name].add_metric([gpu, str(index)], total)

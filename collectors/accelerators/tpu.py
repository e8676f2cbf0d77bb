"""TPU: libtpu's runtime metrics over gRPC in, per-device readings out.

libtpu serves ``tpu.monitoring.runtime.RuntimeMetricService`` on ``localhost:8431``
while a TPU program runs; the ``tpu-info`` package carries its generated client. Each
metric answers one value per device, keyed by the device id in its attribute. A reader
that finds no server says so once and reports no devices: no TPU is not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from collectors.errors import MissingDependencyError

logger = logging.getLogger("sidewatch.accelerators.tpu")

DUTY_CYCLE = "tpu.runtime.tensorcore.dutycycle.percent"
HBM_USED = "tpu.runtime.hbm.memory.usage.bytes"
HBM_TOTAL = "tpu.runtime.hbm.memory.total.bytes"
DEFAULT_ADDRESS = "localhost:8431"


@dataclass(frozen=True, slots=True)
class TpuReading:
    """One TPU device's latest readings; None where the runtime did not report one."""

    device: int
    duty_cycle_ratio: float | None
    """Share of time the TensorCores were busy, 0 to 1."""
    hbm_used_bytes: int | None
    hbm_total_bytes: int | None


def _proto() -> tuple[Any, Any, Any]:
    try:
        import grpc
        from tpu_info.proto import tpu_metric_service_pb2 as messages
        from tpu_info.proto import tpu_metric_service_pb2_grpc as services
    except ImportError as exc:
        raise MissingDependencyError("tpu-info", "tpu") from exc
    return grpc, messages, services


class TpuReader:
    """Reads duty cycle and HBM per device from libtpu's metric service.

    Args:
        address: ``host:port`` of the runtime's metric service.
        timeout_seconds: Deadline of each call.

    Raises:
        MissingDependencyError: ``tpu-info`` (the ``tpu`` extra) is not installed.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, timeout_seconds: float = 1.0) -> None:
        grpc, messages, services = _proto()
        self._grpc = grpc
        self._messages = messages
        self._timeout = timeout_seconds
        self.address = address
        # libtpu accepts local credentials only: the connection never leaves the host.
        self._channel = grpc.secure_channel(address, grpc.local_channel_credentials())
        self._stub = services.RuntimeMetricServiceStub(self._channel)
        self._said_absent = False
        self.errors = 0
        """Calls that failed for another reason than an absent runtime."""

    def read(self) -> list[TpuReading]:
        """The devices' current readings; empty when no TPU runtime answers."""
        try:
            duty = self._metric(DUTY_CYCLE)
            used = self._metric(HBM_USED)
            total = self._metric(HBM_TOTAL)
        except _Absent:
            if not self._said_absent:
                logger.info("no TPU runtime answers on %s: no TPU metrics", self.address)
                self._said_absent = True
            return []
        self._said_absent = False
        devices = sorted(set(duty) | set(used) | set(total))
        return [
            TpuReading(
                device=d,
                duty_cycle_ratio=duty[d] / 100 if d in duty else None,
                hbm_used_bytes=int(used[d]) if d in used else None,
                hbm_total_bytes=int(total[d]) if d in total else None,
            )
            for d in devices
        ]

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _metric(self, name: str) -> dict[int, float]:
        request = self._messages.MetricRequest(metric_name=name)
        try:
            response = self._stub.GetRuntimeMetric(request, timeout=self._timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _Absent from exc
            self.errors += 1
            if code != self._grpc.StatusCode.NOT_FOUND:
                logger.warning("TPU metric %s failed: %s", name, code.name)
            return {}
        values = {}
        for metric in response.metric.metrics:
            gauge = metric.gauge
            kind = gauge.WhichOneof("value")
            value = gauge.as_double if kind == "as_double" else float(gauge.as_int)
            values[int(metric.attribute.value.int_attr)] = value
        return values


class _Absent(Exception):
    """No TPU runtime answers at the address."""

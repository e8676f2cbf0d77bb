"""A local stand-in for libtpu's metric service, speaking the same gRPC protocol.

It serves ``GetRuntimeMetric`` from the generated servicer of ``tpu-info`` with values
set by the test, so the real client path (channel, local credentials, messages,
status codes) runs end to end without a TPU. A metric with no values answers
NOT_FOUND, as a runtime that does not support it does.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

from collectors.accelerators.tpu import _proto


class FakeTpuRuntime:
    """A gRPC server on ``127.0.0.1`` answering TPU runtime metrics.

    Args:
        values: Metric name → device id → value (duty cycle in percent, HBM in bytes).
    """

    def __init__(self, values: dict[str, dict[int, float]]) -> None:
        self.values = values
        self.calls = 0
        self._server: Any = None
        self.address = ""

    def start(self) -> str:
        """Start serving on a free port; returns its ``host:port``."""
        grpc, messages, services = _proto()
        runtime = self

        servicer_base: Any = services.RuntimeMetricServiceServicer

        class Servicer(servicer_base):  # type: ignore[misc]
            def GetRuntimeMetric(self, request: Any, context: Any) -> Any:  # noqa: N802
                runtime.calls += 1
                per_device = runtime.values.get(request.metric_name) or {}
                if not per_device:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"{request.metric_name} unsupported")
                metrics = []
                for device, value in sorted(per_device.items()):
                    gauge = (
                        messages.Gauge(as_int=int(value))
                        if request.metric_name.endswith(".bytes")
                        else messages.Gauge(as_double=float(value))
                    )
                    attribute = messages.Attribute(
                        key="device-id", value=messages.AttrValue(int_attr=device)
                    )
                    metrics.append(messages.Metric(attribute=attribute, gauge=gauge))
                metric = messages.TPUMetric(name=request.metric_name, metrics=metrics)
                return messages.MetricResponse(metric=metric)

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        services.add_RuntimeMetricServiceServicer_to_server(Servicer(), self._server)
        port = self._server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials())
        self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self.address

    def stop(self) -> None:
        """Stop serving at once."""
        if self._server is not None:
            self._server.stop(grace=None).wait()

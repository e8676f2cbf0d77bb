"""The TPU reader against a local server that speaks libtpu's metric protocol."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from collectors.accelerators.tpu import DUTY_CYCLE, HBM_TOTAL, HBM_USED, TpuReader, TpuReading
from collectors.accelerators.tpu_fake import FakeTpuRuntime
from tests.conftest import free_port

GIB = 1024**3


@pytest.fixture
def runtime() -> Iterator[FakeTpuRuntime]:
    fake = FakeTpuRuntime(
        {
            DUTY_CYCLE: {0: 87.5, 1: 12.0},
            HBM_USED: {0: 6 * GIB, 1: 1 * GIB},
            HBM_TOTAL: {0: 16 * GIB, 1: 16 * GIB},
        }
    )
    fake.start()
    yield fake
    fake.stop()


def test_readings_per_device(runtime: FakeTpuRuntime) -> None:
    reader = TpuReader(runtime.address)
    try:
        assert reader.read() == [
            TpuReading(0, 0.875, 6 * GIB, 16 * GIB),
            TpuReading(1, 0.12, 1 * GIB, 16 * GIB),
        ]
        assert runtime.calls == 3
    finally:
        reader.close()


def test_an_unsupported_metric_is_absent_not_fatal(runtime: FakeTpuRuntime) -> None:
    del runtime.values[HBM_TOTAL]
    reader = TpuReader(runtime.address)
    try:
        readings = reader.read()
        assert [r.hbm_total_bytes for r in readings] == [None, None]
        assert [r.duty_cycle_ratio for r in readings] == [0.875, 0.12]
        assert reader.errors == 1
    finally:
        reader.close()


def test_no_runtime_means_no_devices_said_once(caplog: pytest.LogCaptureFixture) -> None:
    reader = TpuReader(f"127.0.0.1:{free_port()}", timeout_seconds=0.5)
    try:
        with caplog.at_level(logging.INFO, logger="sidewatch.accelerators.tpu"):
            assert reader.read() == []
            assert reader.read() == []
        assert len([r for r in caplog.records if "no TPU runtime" in r.getMessage()]) == 1
        assert reader.errors == 0
    finally:
        reader.close()

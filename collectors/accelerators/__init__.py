"""Accelerators: NVML (GPU) and libtpu (TPU) readings in, Prometheus metrics out.

``AcceleratorSettings().build()`` makes the poller (one background thread);
``AcceleratorCollector(poller)`` exports its latest snapshot at scrape time. With no
GPU or TPU the collector says so once and exports ``sidewatch_accelerator_info``
with ``kind="none"``.
"""

from collectors.accelerators.exporter import AcceleratorCollector
from collectors.accelerators.fake import FakeNvml
from collectors.accelerators.nvml import NvmlBackend
from collectors.accelerators.poller import AcceleratorPoller, Snapshot
from collectors.accelerators.pynvml_backend import PynvmlBackend
from collectors.accelerators.settings import AcceleratorSettings

__all__ = [
    "AcceleratorCollector",
    "AcceleratorPoller",
    "AcceleratorSettings",
    "FakeNvml",
    "NvmlBackend",
    "PynvmlBackend",
    "Snapshot",
]

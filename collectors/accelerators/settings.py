"""Settings of the accelerator collector: environment in, a frozen object that builds the poller.

Values come from explicit arguments, then ``SIDEWATCH_ACCELERATOR_*`` environment
variables, then the defaults below, and are validated when the object is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from collectors.accelerators.nvml import NvmlBackend
from collectors.accelerators.poller import AcceleratorPoller
from collectors.accelerators.pynvml_backend import PynvmlBackend
from collectors.accelerators.tpu import TpuReader


class AcceleratorSettings(BaseSettings):
    """What the accelerator collector watches and how often (``SIDEWATCH_ACCELERATOR_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SIDEWATCH_ACCELERATOR_", frozen=True, extra="ignore"
    )

    poll_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    slow_every: int = Field(default=10, ge=1, le=10_000)
    """Take the slow readings once every this many polls."""
    model: str = "unknown"
    """The model the sidecar serves: the ``model`` label of cost, idle and process memory."""
    pids: frozenset[int] = frozenset()
    """Processes of the served model, for its GPU memory (JSON list in the environment)."""
    price_per_hour: float | None = Field(default=None, ge=0)
    """Price of one accelerator-hour; cost is exported when it is set."""
    idle_ratio: float = Field(default=0.05, ge=0, le=1)
    """Utilization under which an accelerator counts as idle."""
    idle_seconds: float = Field(default=600.0, gt=0)
    """How long under ``idle_ratio`` before ``sidewatch_accelerator_idle`` is 1."""
    tpu_address: str | None = None
    """libtpu's metric service (``localhost:8431`` on a TPU VM); None: no TPU polling."""
    fake_gpus: int = Field(default=0, ge=0, le=64)
    """Simulate this many H100s from recorded readings instead of NVML (demos and tests
    on machines without a GPU); 0 uses the real NVML."""

    def build(
        self, backend: NvmlBackend | None = None, clock: Callable[[], float] = time.monotonic
    ) -> AcceleratorPoller:
        """The poller these settings describe, not started yet.

        Args:
            backend: Where readings come from; by default the real NVML, or
                ``fake_gpus`` simulated H100s when that is set.
            clock: Monotonic seconds, for idle time and cost (tests inject one).
        """
        from collectors.accelerators.fake import FakeNvml

        tpu = TpuReader(self.tpu_address) if self.tpu_address else None
        if backend is None:
            backend = FakeNvml(self.fake_gpus) if self.fake_gpus else PynvmlBackend()
        return AcceleratorPoller(self, backend, tpu=tpu, clock=clock)

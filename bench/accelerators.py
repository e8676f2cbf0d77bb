"""Accelerator collector cost: CPU per poll and per scrape with eight simulated GPUs.

The poller runs the real NVML backend (``PynvmlBackend``, its ctypes GPM structures
included) over ``FakePynvml``, which answers with a real H100's readings and makes the
calls measured at over 100 us (total energy 3.7 ms, ECC, MIG, GPM sampling) take their
measured time, so the poll's wall time is realistic. ``time.process_time`` counts the
CPU of the collector's Python code (and of the fake, so it errs high). NVML's own time
inside each call cannot be simulated as CPU: it is added from the H100 costs as an upper
bound (as if every microsecond a call took were CPU, though the slow ones mostly wait
on the GPU). Baseline in the same run: the same poller taking every reading, slow ones
included, on every poll (what a naive collector does).

Last line: ``cpu_pct_of_core=X poll_ms=P scrape_ms=S naive_poll_ms=N ...``: X is the
measured CPU plus that NVML bound, at a 1 s poll and a 15 s scrape. Target: under 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from collectors.accelerators import (  # noqa: E402
    AcceleratorCollector,
    AcceleratorSettings,
    FakeNvml,
    PynvmlBackend,
)
from collectors.accelerators.fake import COST_SECONDS  # noqa: E402
from collectors.accelerators.fake_pynvml import FakePynvml  # noqa: E402
from collectors.accelerators.poller import SLOW_CALLS  # noqa: E402

GPUS = 8
POLLS = 200
SCRAPES = 200
SLOW_EVERY = 10
SCRAPE_INTERVAL_SECONDS = 15.0  # Prometheus' usual; DCGM's exporter collects every 30 s


def measure(slow_every: int) -> dict[str, float]:
    """Seconds per poll and per scrape, CPU and wall, and the scrape's size."""
    fake = FakeNvml(gpus=GPUS, real_cost=True)
    for gpu in range(GPUS):
        fake.set_load(gpu, ("busy", "tensor", "memory", "duty50", "idle")[gpu % 5])
    settings = AcceleratorSettings(
        slow_every=slow_every, price_per_hour=2.5, model="bench", pids=frozenset({414})
    )
    poller = settings.build(backend=PynvmlBackend(FakePynvml(fake)))
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    poller.poll_once()  # start-up (nvmlInit, handles) is not a poll
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(POLLS):
        poller.poll_once()
    out = {
        "poll_cpu": (time.process_time() - cpu) / POLLS,
        "poll_wall": (time.perf_counter() - wall) / POLLS,
    }
    calls_before = sum(fake.calls.values())
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(SCRAPES):
        body = generate_latest(registry)
    out["scrape_cpu"] = (time.process_time() - cpu) / SCRAPES
    out["scrape_wall"] = (time.perf_counter() - wall) / SCRAPES
    out["scrape_bytes"] = len(body)
    out["scrape_nvml_calls"] = sum(fake.calls.values()) - calls_before
    poller.stop()
    return out


def nvml_seconds_per_poll(slow_every: int) -> float:
    """NVML's own time per poll from the H100 call costs (an upper bound on its CPU)."""
    fast = sum(cost for call, cost in COST_SECONDS.items() if call not in SLOW_CALLS)
    slow = sum(COST_SECONDS[call] for call in SLOW_CALLS)
    return GPUS * (fast + slow / slow_every)


def main() -> None:
    ours = measure(SLOW_EVERY)
    naive = measure(1)
    python_pct = (ours["poll_cpu"] + ours["scrape_cpu"] / SCRAPE_INTERVAL_SECONDS) * 100
    nvml_pct = nvml_seconds_per_poll(SLOW_EVERY) * 100
    naive_pct = naive["poll_cpu"] * 100 + nvml_seconds_per_poll(1) * 100
    assert ours["scrape_nvml_calls"] == 0, "a scrape must never call NVML"
    print(
        f"{GPUS} GPUs, slow readings every {SLOW_EVERY} polls: poll "
        f"{ours['poll_cpu'] * 1e3:.3f} ms CPU / {ours['poll_wall'] * 1e3:.3f} ms wall; "
        f"scrape {ours['scrape_cpu'] * 1e3:.3f} ms CPU, {ours['scrape_bytes']:.0f} bytes, "
        f"{ours['scrape_nvml_calls']:.0f} NVML calls"
    )
    print(
        f"baseline, every reading every poll: poll {naive['poll_cpu'] * 1e3:.3f} ms CPU / "
        f"{naive['poll_wall'] * 1e3:.3f} ms wall"
    )
    print(
        f"cpu_pct_of_core={python_pct + nvml_pct:.3f} poll_ms={ours['poll_wall'] * 1e3:.3f} "
        f"scrape_ms={ours['scrape_wall'] * 1e3:.3f} naive_poll_ms={naive['poll_wall'] * 1e3:.3f} "
        f"python_cpu_pct={python_pct:.3f} nvml_cpu_pct_bound={nvml_pct:.3f} "
        f"naive_cpu_pct_of_core={naive_pct:.3f} gpus={GPUS}"
    )


if __name__ == "__main__":
    main()

"""Accelerator collector cost: CPU per poll and per scrape with eight simulated GPUs.

The fake NVML holds a real H100's readings and makes the slow calls (total energy
3.7 ms, ECC, MIG, GPM sampling) take their measured time, so the poll's wall time is
realistic; the CPU figures count only what the collector itself computes. Baseline in
the same run: the same poller taking every reading, slow ones included, on every poll
(what a naive collector does).

Last line: ``cpu_pct_of_core=X poll_ms=P scrape_ms=S naive_poll_ms=N``. Target: under 1
percent of a core at a 1 s poll.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from collectors.accelerators import AcceleratorCollector, AcceleratorSettings, FakeNvml

GPUS = 8
POLLS = 200
SCRAPES = 200


def measure(slow_every: int) -> tuple[float, float, float, float]:
    """(CPU s per poll, wall s per poll, CPU s per scrape, wall s per scrape)."""
    fake = FakeNvml(gpus=GPUS, real_cost=True)
    for gpu in range(GPUS):
        fake.set_load(gpu, ("busy", "tensor", "memory", "duty50", "idle")[gpu % 5])
    poller = AcceleratorSettings(slow_every=slow_every, price_per_hour=2.5, model="bench").build(
        backend=fake
    )
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(POLLS):
        poller.poll_once()
    poll_cpu, poll_wall = (time.process_time() - cpu) / POLLS, (time.perf_counter() - wall) / POLLS
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(SCRAPES):
        generate_latest(registry)
    scrape_cpu = (time.process_time() - cpu) / SCRAPES
    scrape_wall = (time.perf_counter() - wall) / SCRAPES
    return poll_cpu, poll_wall, scrape_cpu, scrape_wall


def main() -> None:
    poll_cpu, poll_wall, scrape_cpu, scrape_wall = measure(slow_every=10)
    _, naive_wall, _, _ = measure(slow_every=1)
    # At a 1 s poll and Prometheus' usual 15 s scrape interval.
    cpu_pct = (poll_cpu + scrape_cpu / 15) * 100
    print(
        f"{GPUS} GPUs: poll {poll_cpu * 1e3:.3f} ms CPU / {poll_wall * 1e3:.3f} ms wall; "
        f"scrape {scrape_cpu * 1e3:.3f} ms CPU; naive poll (slow calls every time) "
        f"{naive_wall * 1e3:.3f} ms wall"
    )
    print(
        f"cpu_pct_of_core={cpu_pct:.3f} poll_ms={poll_wall * 1e3:.3f} "
        f"scrape_ms={scrape_wall * 1e3:.3f} naive_poll_ms={naive_wall * 1e3:.3f}"
    )


if __name__ == "__main__":
    main()

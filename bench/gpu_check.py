"""Real-GPU check of the accelerator collector: run known loads, read what it exports.

On a machine with an NVIDIA GPU and PyTorch:

    python bench/gpu_check.py            # about 45 seconds

runs on GPU 0, for a few seconds each, idle, a 100% busy matmul loop (fp32), a 50% duty
cycle (100 ms busy, 100 ms asleep), a tensor-core matmul (bf16) and a memory-bound copy
(512 MiB tensors), while the real collector (NVML via nvidia-ml-py) polls every 0.25 s.
Every value is read from the collector's Prometheus exposition, as Prometheus would see
it. It prints one JSON line per load, a table, and PASS/FAIL for: utilization within
±15 points of the duty cycle; tensor-core activity high only under the bf16 matmul;
DRAM activity high under the copy; the load's memory attributed to this process's PID.
Exit code 0 if all pass, 1 if a check fails, 2 if there is no GPU or no torch.

``--dry-run`` runs the same logic on the real backend over the fake NVML module (the
H100 readings), without a GPU or torch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from collectors.accelerators import (  # noqa: E402
    AcceleratorCollector,
    AcceleratorPoller,
    AcceleratorSettings,
    FakeNvml,
    PynvmlBackend,
    names,
)
from collectors.accelerators import fake as h100  # noqa: E402
from collectors.accelerators.fake_pynvml import FakePynvml  # noqa: E402

LOADS = ("idle", "busy", "duty50", "tensor", "memory")
DUTY = {"idle": 0.0, "busy": 1.0, "duty50": 0.5, "tensor": 1.0, "memory": 1.0}
READ = {
    "utilization_pct": names.UTILIZATION.name,
    "sm_active_pct": names.SM_ACTIVE.name,
    "tensor_pct": names.TENSOR_ACTIVE.name,
    "dram_pct": names.DRAM_ACTIVE.name,
    "power_w": names.POWER.name,
}
Run = Callable[[str, threading.Event], None]


def torch_load(name: str, stop: threading.Event) -> None:
    """Run one load on GPU 0 until ``stop`` is set."""
    import torch

    device = torch.device("cuda:0")
    if name == "idle":
        stop.wait()
        return
    if name == "memory":
        a = torch.empty(512 * 1024 * 1024 // 4, device=device)
        b = torch.empty_like(a)
        while not stop.is_set():
            b.copy_(a)
            torch.cuda.synchronize()
        return
    dtype = torch.bfloat16 if name == "tensor" else torch.float32
    x = torch.randn(8192, 8192, device=device, dtype=dtype)
    while not stop.is_set():
        started = time.monotonic()
        while time.monotonic() - started < 0.1:
            x @ x  # noqa: B018 (the work is the point)
            torch.cuda.synchronize()
        if name == "duty50":
            time.sleep(0.1)


def exported(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """(metric, gpu label) → value, parsed from the exposition text."""
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("gpu", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def measure(
    load: str,
    run: Run,
    poller: AcceleratorPoller,
    registry: CollectorRegistry,
    seconds: float,
    settle: float,
) -> dict[str, Any]:
    """Run ``load`` and average what the collector exports for GPU 0 meanwhile."""
    stop, failure = threading.Event(), []

    def worker() -> None:
        try:
            run(load, stop)
        except Exception as exc:  # reported in the row; the checks then fail
            failure.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=worker, name=f"load-{load}")
    thread.start()
    time.sleep(settle)  # let the load start (CUDA context, allocations)
    poller.poll_once()  # GPM rates span two polls: drop the one reaching into the last load
    samples: dict[str, list[float]] = {key: [] for key in READ}
    model_memory = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        poller.poll_once()
        values = exported(registry)
        for key, metric in READ.items():
            if (metric, "0") in values:
                samples[key].append(values[(metric, "0")])
        model_memory = max(model_memory, values.get((names.PROCESS_MEMORY.name, "0"), 0.0))
    stop.set()
    thread.join()
    row: dict[str, Any] = {"load": load, "duty": DUTY[load]}
    for key, found in samples.items():
        scale = 1.0 if key == "power_w" else 100.0  # ratios shown as percent
        row[key] = round(statistics.fmean(found) * scale, 2) if found else None
    row["model_memory_bytes"] = int(model_memory)
    row["error"] = failure[0] if failure else None
    return row


def checks(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool]]:
    out = []
    for load in ("idle", "busy", "duty50"):
        util, duty = rows[load]["utilization_pct"], rows[load]["duty"] * 100
        ok = util is not None and abs(util - duty) <= 15
        out.append((f"{load}: utilization {util} within 15 points of {duty:.0f}", ok))
    tensor = {k: rows[k]["tensor_pct"] for k in rows}
    dram = {k: rows[k]["dram_pct"] for k in rows}
    if all(v is not None for v in (*tensor.values(), *dram.values())):
        out.append((f"tensor activity high under the bf16 matmul: {tensor}", tensor["tensor"] > 50))
        out.append(
            (
                "tensor activity low under the copy and idle (< 10%)",
                tensor["memory"] < 10 and tensor["idle"] < 10,
            )
        )
        out.append(
            (
                f"DRAM activity high under the copy (> 50%) and above the matmul's: {dram}",
                dram["memory"] > 50 and dram["memory"] > dram["tensor"],
            )
        )
    else:
        out.append(("GPM metrics available (Hopper or later)", False))
    memory = rows["memory"]["model_memory_bytes"]
    out.append((f"the load's memory ({memory} bytes) is attributed to this PID", memory > 2**28))
    out.append(("every load ran", not any(row["error"] for row in rows.values())))
    return out


def table(rows: dict[str, dict[str, Any]]) -> str:
    keys = ("utilization_pct", "sm_active_pct", "tensor_pct", "dram_pct", "power_w")
    lines = [f"{'load':8}" + "".join(f"{k:>19}" for k in (*keys, "model_memory_bytes"))]
    for load, row in rows.items():
        cells = [row[k] for k in (*keys, "model_memory_bytes")]
        lines.append(f"{load:8}" + "".join(f"{'-' if c is None else c:>19}" for c in cells))
    return "\n".join(lines)


def setup(dry_run: bool) -> tuple[AcceleratorPoller, Run, PynvmlBackend]:
    if dry_run:
        fake = FakeNvml()
        backend = PynvmlBackend(FakePynvml(fake))
        pid = h100.LOAD_PID  # the fake's load runs as the PID the H100 probe saw

        def run(load: str, stop: threading.Event) -> None:
            fake.set_load(0, load)  # type: ignore[arg-type]
            stop.wait()
    else:
        backend, pid, run = PynvmlBackend(), os.getpid(), torch_load
    settings = AcceleratorSettings(pids=frozenset({pid}), slow_every=1, model="gpu-check")
    return settings.build(backend=backend), run, backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per load (default 6)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds before measuring a load (default 1)"
    )
    parser.add_argument("--dry-run", action="store_true", help="fake NVML, no GPU or torch")
    args = parser.parse_args()
    if not args.dry_run:
        try:
            import torch
        except ImportError:
            print(json.dumps({"error": "PyTorch is not installed (pip install torch)"}))
            return 2
        if not torch.cuda.is_available():
            print(json.dumps({"error": "torch sees no CUDA device"}))
            return 2
    poller, run, backend = setup(args.dry_run)
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    snapshot = poller.poll_once()
    if not snapshot.gpus:
        print(json.dumps({"error": "no GPU found by NVML"}))
        return 2
    gpu = snapshot.gpus[0].identity
    print(json.dumps({"gpu": gpu.name, "uuid": gpu.uuid, "driver": snapshot.driver}))
    rows = {}
    for load in LOADS:
        rows[load] = measure(load, run, poller, registry, args.seconds, args.settle)
        if load == "memory":  # whose memory NVML reports, to diagnose a PID mismatch
            rows[load]["nvml_pids"] = [pid for pid, _ in backend.processes(0)]
        print(json.dumps(rows[load]), flush=True)
    poller.stop()
    print(table(rows))
    results = checks(rows)
    for text, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    passed = sum(ok for _, ok in results)
    print(f"checks_passed={passed} checks_total={len(results)}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Real-GPU check of the accelerator collector: run known loads, read what it exports.

On a machine with an NVIDIA GPU and PyTorch:

    python bench/gpu_check.py            # about a minute

runs, for a few seconds each, idle, a 100% busy matmul loop, a 50% duty cycle
(100 ms busy, 100 ms asleep), a tensor-core matmul (bf16) and a memory-bound copy,
while the real collector (NVML via nvidia-ml-py) polls at 0.25 s; then prints one JSON
line per load and PASS/FAIL for: utilization within ±15 points of the duty cycle;
tensor-core activity high only under the matmul loads; DRAM activity high under the
copy; the load's memory attributed to this process's PID. Exit code 0 if all pass.

``--dry-run`` runs the same logic on the fake NVML (H100 readings), without torch.
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

from collectors.accelerators import AcceleratorSettings, FakeNvml  # noqa: E402

LOADS = ("idle", "busy", "duty50", "tensor", "memory")
DUTY = {"idle": 0.0, "busy": 1.0, "duty50": 0.5, "tensor": 1.0, "memory": 1.0}


def torch_load(name: str, stop: threading.Event) -> None:
    """Run one load on GPU 0 until ``stop`` is set."""
    import torch

    device = torch.device("cuda:0")
    if name == "idle":
        stop.wait()
        return
    if name == "memory":
        a = torch.empty(512 * 1024 * 1024 // 4, device=device)  # 512 MiB
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


def measure(
    load: str, run: Callable[[str, threading.Event], None], poller: Any, seconds: float
) -> dict[str, Any]:
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(load, stop))
    worker.start()
    time.sleep(1.0)  # let the load settle
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(poller.poll_once().gpus[0])
        time.sleep(0.25)
    stop.set()
    worker.join()

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.fmean(present) if present else None

    return {
        "load": load,
        "duty": DUTY[load],
        "utilization_pct": mean([s.utilization for s in samples]),
        "tensor_pct": mean([s.gpm.get("tensor_active") for s in samples]),
        "dram_pct": mean([s.gpm.get("dram_active") for s in samples]),
        "sm_pct": mean([s.gpm.get("sm_active") for s in samples]),
        "model_memory_bytes": max((s.model_memory or 0) for s in samples),
    }


def checks(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool]]:
    out = []
    for load in ("idle", "busy", "duty50"):
        util = rows[load]["utilization_pct"]
        out.append(
            (
                f"{load}: utilization {util} within 15 of {rows[load]['duty'] * 100:.0f}",
                util is not None and abs(util - rows[load]["duty"] * 100) <= 15,
            )
        )
    tensor = {k: rows[k]["tensor_pct"] for k in rows}
    if all(v is not None for v in tensor.values()):
        out.append(("tensor activity high under the bf16 matmul (> 50%)", tensor["tensor"] > 50))
        out.append(
            (
                "tensor activity low under the copy and idle (< 10%)",
                tensor["memory"] < 10 and tensor["idle"] < 10,
            )
        )
        dram = {k: rows[k]["dram_pct"] for k in rows}
        out.append(
            (
                "DRAM activity high under the copy (> 50%) and above the matmul's",
                dram["memory"] > 50 and dram["memory"] > dram["tensor"],
            )
        )
    else:
        out.append(("GPM metrics available (Hopper or later)", False))
    out.append(
        (
            "the load's memory is attributed to this PID",
            rows["memory"]["model_memory_bytes"] > 256 * 1024 * 1024,
        )
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per load (default 6)")
    parser.add_argument("--dry-run", action="store_true", help="fake NVML, no torch")
    args = parser.parse_args()
    if args.dry_run:
        fake = FakeNvml()
        # The fake's load runs as the PID the H100 probe saw.
        settings = AcceleratorSettings(pids=frozenset({414}), slow_every=1, model="check")
        poller = settings.build(backend=fake)

        def run(load: str, stop: threading.Event) -> None:
            fake.set_load(0, load)  # type: ignore[arg-type]
            stop.wait()
    else:
        settings = AcceleratorSettings(pids=frozenset({os.getpid()}), slow_every=1, model="check")
        poller = settings.build()
        run = torch_load
    snapshot = poller.poll_once()
    if not snapshot.gpus:
        print(json.dumps({"error": "no GPU found by NVML"}))
        return 2
    print(json.dumps({"gpu": snapshot.gpus[0].identity.name, "driver": snapshot.driver}))
    rows = {}
    for load in LOADS:
        rows[load] = measure(load, run, poller, args.seconds)
        print(json.dumps(rows[load]), flush=True)
    results = checks(rows)
    for text, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    passed = sum(ok for _, ok in results)
    print(f"checks_passed={passed} checks_total={len(results)}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

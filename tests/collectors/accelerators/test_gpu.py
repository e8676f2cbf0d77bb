"""The GPU collector on a fake NVML built from real H100 readings, and on the real
NVML library where it runs (here: no GPU, so the real path must degrade cleanly)."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.accelerators import (
    AcceleratorCollector,
    AcceleratorSettings,
    FakeNvml,
    PynvmlBackend,
    names,
)
from collectors.accelerators import fake as h100
from collectors.accelerators.nvml import (
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
    translate,
)
from collectors.accelerators.poller import SLOW_CALLS
from collectors.accelerators.tpu import DUTY_CYCLE, HBM_TOTAL, HBM_USED
from collectors.accelerators.tpu_fake import FakeTpuRuntime

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(poller) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def make(fake: FakeNvml, clock: Clock | None = None, **settings):
    return AcceleratorSettings(**settings).build(backend=fake, clock=clock or Clock())


def test_the_fake_holds_the_reference_readings() -> None:
    probe = [
        json.loads(line) for line in (REFERENCE / "gpu_probe_h100.jsonl").read_text().splitlines()
    ]
    calls = {p["call"]: p for p in probe if "call" in p}
    assert probe[0]["driver"] == h100.DRIVER
    assert probe[1] == {"name": h100.NAME, "uuid": h100.UUID}
    assert int(calls["power_mw"]["value"]) == h100.POWER_MW
    assert int(calls["energy_mj"]["value"]) == h100.ENERGY_MJ
    assert int(calls["temp"]["value"]) == h100.TEMPERATURE_C
    assert int(calls["sm_clock"]["value"]) == h100.SM_CLOCK_MHZ
    assert int(calls["throttle"]["value"]) == h100.CLOCK_EVENTS_IDLE
    assert calls["energy_mj"]["us"] / 1e6 == h100.COST_SECONDS["energy_millijoules"]
    duty = {p["duty"]: p["util_mean"] for p in probe if "duty" in p}
    assert (duty[1.0], duty[0.5], duty[0.0]) == (
        h100.UTILIZATION["busy"],
        h100.UTILIZATION["duty50"],
        h100.UTILIZATION["idle"],
    )
    assert [p["procs"] for p in probe if "duty" in p][0] == [[h100.LOAD_PID, h100.LOAD_BYTES]]
    for line in (REFERENCE / "gpm_probe_h100.jsonl").read_text().splitlines():
        row = json.loads(line)
        gpm = h100.GPM[row["load"]]
        assert (gpm["sm_active"], gpm["sm_occupancy"]) == (row["sm_util"], row["sm_occupancy"])
        assert (gpm["tensor_active"], gpm["dram_active"]) == (
            row["tensor_util"],
            row["dram_bw_util"],
        )


def test_readings_are_exported_in_base_units() -> None:
    fake = FakeNvml()
    fake.set_load(0, "busy")
    poller = make(fake, pids=frozenset({h100.LOAD_PID}), model="credit")
    poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_accelerator_info", kind="gpu", count="1", driver=h100.DRIVER) == 1
    assert value(s, "sidewatch_gpu_info", gpu="0", name=h100.NAME, uuid=h100.UUID) == 1
    assert value(s, "sidewatch_gpu_utilization_ratio", gpu="0") == pytest.approx(0.9865)
    assert value(s, "sidewatch_gpu_power_watts", gpu="0") == pytest.approx(124.17)
    assert value(s, "sidewatch_gpu_energy_joules_total", gpu="0") == pytest.approx(2304.059)
    assert value(s, "sidewatch_gpu_sm_clock_hertz", gpu="0") == 900e6
    assert value(s, "sidewatch_gpu_temperature_celsius", gpu="0") == 36
    assert value(s, "sidewatch_gpu_memory_total_bytes", gpu="0") == h100.MEMORY_TOTAL
    assert (
        value(s, "sidewatch_gpu_memory_used_bytes", gpu="0")
        == h100.MEMORY_USED_IDLE + h100.LOAD_BYTES
    )
    assert (
        value(s, "sidewatch_gpu_process_memory_bytes", gpu="0", model="credit") == h100.LOAD_BYTES
    )
    assert value(s, "sidewatch_gpu_ecc_errors_total", gpu="0", type="uncorrected") == 0
    assert value(s, "sidewatch_gpu_clock_event_active", gpu="0", reason="gpu_idle") == 0
    fake.set_load(0, "idle")
    poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_gpu_clock_event_active", gpu="0", reason="gpu_idle") == 1
    assert value(s, "sidewatch_gpu_utilization_ratio", gpu="0") == 0


def test_gpm_tells_tensor_work_from_memory_bound_work() -> None:
    fake = FakeNvml()
    poller = make(fake)
    seen = {}
    for load in ("tensor", "memory"):
        fake.set_load(0, load)
        poller.poll_once()
        s = scrape(poller)
        seen[load] = {
            k: value(s, f"sidewatch_gpu_{k}_ratio", gpu="0")
            for k in ("utilization", "tensor_active", "dram_active")
        }
    assert abs(seen["tensor"]["utilization"] - seen["memory"]["utilization"]) < 0.02
    assert seen["tensor"]["tensor_active"] == pytest.approx(0.917)
    assert seen["memory"]["tensor_active"] == 0
    assert seen["memory"]["dram_active"] == pytest.approx(0.867)
    assert seen["tensor"]["dram_active"] == pytest.approx(0.234)


def test_slow_calls_stay_off_the_fast_poll_and_scrapes_call_nothing() -> None:
    fake = FakeNvml(gpus=2)
    poller = make(fake, slow_every=5)
    for _ in range(20):
        poller.poll_once()
    slow = {call: fake.calls[call] for call in SLOW_CALLS}
    assert slow == dict.fromkeys(SLOW_CALLS, 8)  # 2 GPUs x polls 0, 5, 10, 15
    fast = {call: n for call, n in fake.calls.items() if call not in (*SLOW_CALLS, "init")}
    assert fast == {
        "utilization": 40,
        "memory": 40,
        "fan_speed": 2,  # NotSupported on the H100: asked once per GPU
        "power_milliwatts": 40,
        "temperature_celsius": 40,
        "sm_clock_mhz": 40,
        "clock_event_reasons": 40,
        "gpm": 40,
        "xid_events": 20,
    }
    before = sum(fake.calls.values())
    for _ in range(50):
        scrape(poller)
    assert sum(fake.calls.values()) == before


def test_unsupported_readings_are_absent_and_not_asked_again() -> None:
    fake = FakeNvml()
    fake.fail(0, "gpm", "not_supported")
    fake.fail(0, "ecc_errors", "not_supported")
    poller = make(fake, slow_every=1)
    for _ in range(3):
        poller.poll_once()
    s = scrape(poller)
    assert fake.calls["gpm"] == 1 and fake.calls["ecc_errors"] == 1
    assert not any(name == "sidewatch_gpu_tensor_active_ratio" for name, _ in s)
    assert not any(name == "sidewatch_gpu_ecc_errors_total" for name, _ in s)
    assert value(s, "sidewatch_gpu_power_watts", gpu="0") == pytest.approx(124.17)


def test_a_lost_gpu_is_marked_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml(gpus=2)
    poller = make(fake)
    poller.poll_once()
    fake.lose(1)
    with caplog.at_level(logging.ERROR):
        poller.poll_once()
        poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_gpu_lost", gpu="1") == 1
    assert value(s, "sidewatch_gpu_lost", gpu="0") == 0
    assert ("sidewatch_gpu_power_watts", (("gpu", "1"),)) not in s
    assert value(s, "sidewatch_gpu_power_watts", gpu="0") == pytest.approx(124.17)
    assert len([r for r in caplog.records if "GPU 1 is lost" in r.getMessage()]) == 1


def test_other_errors_are_counted_by_call() -> None:
    fake = FakeNvml()
    fake.fail(0, "power_milliwatts", "error")
    poller = make(fake)
    poller.poll_once()
    poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_accelerator_errors_total", call="power_milliwatts") == 2
    assert fake.calls["power_milliwatts"] == 2, "a transient error is retried next poll"


def test_no_nvml_library_means_kind_none_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sidewatch.accelerators"):
        poller = make(FakeNvml(available=False))
        for _ in range(3):
            poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_accelerator_info", kind="none", count="0", driver="") == 1
    assert len([r for r in caplog.records if "no NVIDIA GPU" in r.getMessage()]) == 1


def test_the_real_nvml_on_a_machine_without_a_gpu() -> None:
    backend = PynvmlBackend()
    with pytest.raises(NvmlUnavailable):
        backend.init()
    poller = AcceleratorSettings().build()  # the real backend, no GPU here
    poller.start()
    try:
        s = scrape(poller)
        assert value(s, "sidewatch_accelerator_info", kind="none", count="0", driver="") == 1
    finally:
        poller.stop()


def test_pynvml_errors_are_translated_at_the_boundary() -> None:
    import pynvml

    def err(code: int) -> Exception:
        return translate("call", pynvml.NVMLError(code))

    assert isinstance(err(pynvml.NVML_ERROR_NOT_SUPPORTED), NvmlNotSupported)
    assert isinstance(err(pynvml.NVML_ERROR_GPU_IS_LOST), NvmlGpuLost)
    assert isinstance(err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), NvmlUnavailable)
    other = err(pynvml.NVML_ERROR_UNKNOWN)
    assert type(other) is NvmlError and other.call == "call"
    plain = ValueError("x")
    assert translate("call", plain) is plain


def test_idle_detection_and_cost_follow_the_clock() -> None:
    fake, clock = FakeNvml(gpus=2), Clock()
    fake.set_load(1, "busy")
    poller = make(fake, clock, price_per_hour=3.6, idle_seconds=600, model="credit")
    for _ in range(11):  # every minute for ten minutes
        poller.poll_once()
        clock.now += 60
    s = scrape(poller)
    assert value(s, "sidewatch_accelerator_idle", model="credit", accelerator="gpu0") == 1
    assert value(s, "sidewatch_accelerator_idle", model="credit", accelerator="gpu1") == 0
    assert value(
        s, "sidewatch_accelerator_cost_total", model="credit", accelerator="gpu0"
    ) == pytest.approx(0.6)
    fake.set_load(0, "busy")
    poller.poll_once()
    assert (
        value(scrape(poller), "sidewatch_accelerator_idle", model="credit", accelerator="gpu0") == 0
    )


def test_mig_instances_and_xid_errors() -> None:
    fake = FakeNvml()
    fake.mig[0] = [(0, 1 * 2**30, 10 * 2**30), (1, 2 * 2**30, 10 * 2**30)]
    fake.pending_xids = [(0, 79), (0, 79), (0, 48)]
    poller = make(fake, slow_every=1)
    poller.poll_once()
    s = scrape(poller)
    assert value(s, "sidewatch_gpu_mig_memory_used_bytes", gpu="0", mig_instance="1") == 2 * 2**30
    assert value(s, "sidewatch_gpu_xid_errors_total", gpu="0", xid="79") == 2
    assert value(s, "sidewatch_gpu_xid_errors_total", gpu="0", xid="48") == 1


def test_tpus_are_read_over_grpc_with_the_gpus() -> None:
    runtime = FakeTpuRuntime(
        {DUTY_CYCLE: {0: 2.0}, HBM_USED: {0: 2**30}, HBM_TOTAL: {0: 16 * 2**30}}
    )
    address = runtime.start()
    clock = Clock()
    poller = AcceleratorSettings(tpu_address=address, idle_seconds=60, model="m").build(
        backend=FakeNvml(available=False), clock=clock
    )
    try:
        poller.poll_once()
        clock.now += 61
        poller.poll_once()
        s = scrape(poller)
    finally:
        poller.stop()
        runtime.stop()
    assert value(s, "sidewatch_accelerator_info", kind="tpu", count="1", driver="") == 1
    assert value(s, "sidewatch_tpu_duty_cycle_ratio", tpu="0") == 0.02
    assert value(s, "sidewatch_tpu_hbm_total_bytes", tpu="0") == 16 * 2**30
    assert value(s, "sidewatch_accelerator_idle", model="m", accelerator="tpu0") == 1


def test_the_background_thread_polls_until_stopped() -> None:
    fake = FakeNvml()
    poller = AcceleratorSettings(poll_interval_seconds=0.01).build(backend=fake)
    poller.start()
    deadline = time.monotonic() + 10
    while fake.calls["utilization"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop()
    assert fake.calls["utilization"] >= 5
    calls = fake.calls["utilization"]
    time.sleep(0.05)
    assert fake.calls["utilization"] == calls and fake.calls["shutdown"] == 1


UNIT_SUFFIX = re.compile(
    r"_(ratio|bytes|watts|joules|celsius|hertz|seconds|info|total|active|lost|idle)$"
)


def test_metric_names_follow_the_conventions() -> None:
    fake = FakeNvml(gpus=2)
    fake.mig[0] = [(0, 1, 2)]
    fake.pending_xids = [(0, 79)]
    fake.fan_percent = 30.0
    fake.set_load(1, "busy")
    fake.fail(1, "temperature_celsius", "error")
    poller = make(fake, slow_every=1, price_per_hour=1.0, pids=frozenset({h100.LOAD_PID}))
    poller.poll_once()
    fake.lose(1)
    poller.poll_once()
    samples = scrape(poller)
    exported = {name for name, _ in samples}
    assert exported <= set(names.ALL), exported - set(names.ALL)
    tpu_only = {n for n in names.ALL if n.startswith("sidewatch_tpu_")}
    assert exported == set(names.ALL) - tpu_only, "every GPU family is exported"
    for (name, labels), _ in samples.items():
        assert tuple(sorted(k for k, _ in labels)) == tuple(sorted(names.ALL[name].labels)), name
    for name, metric in names.ALL.items():
        assert re.fullmatch(r"sidewatch_[a-z0-9_]+", name), name
        assert UNIT_SUFFIX.search(name), name
        assert (metric.type == "counter") == name.endswith("_total"), name
        assert "percent" not in name and ":" not in name
    assert value(samples, "sidewatch_gpu_fan_speed_ratio", gpu="0") == 0.3


def test_the_public_names_are_what_we_meant() -> None:
    import collectors.accelerators as package

    assert set(package.__all__) == {
        "AcceleratorCollector",
        "AcceleratorPoller",
        "AcceleratorSettings",
        "FakeNvml",
        "NvmlBackend",
        "PynvmlBackend",
        "Snapshot",
    }
    for name in package.__all__:
        assert getattr(package, name).__module__.startswith("collectors.accelerators.")


def test_the_real_gpu_check_script_is_ready_to_run() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[3] / "bench" / "gpu_check.py"
    help_text = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--dry-run" in help_text
    result = subprocess.run(
        [sys.executable, str(script), "--dry-run", "--seconds", "0.3", "--settle", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "checks_passed=8 checks_total=8", result.stdout
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_load = {row["load"]: row for row in rows[1:]}
    assert by_load["duty50"]["utilization_pct"] == 48.83
    assert by_load["memory"]["nvml_pids"] == [h100.LOAD_PID]
    no_gpu = subprocess.run(
        [sys.executable, str(script), "--seconds", "0.1"], capture_output=True, text=True
    )
    assert no_gpu.returncode == 2, no_gpu.stdout + no_gpu.stderr
    assert "error" in json.loads(no_gpu.stdout.splitlines()[-1])


def test_the_accelerators_command_serves_metrics_without_a_gpu() -> None:
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "accelerators", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        assert "no NVIDIA GPU" in lines[0], lines
        assert "accelerator metrics on" in lines[1], lines
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
        assert 'sidewatch_accelerator_info{count="0",driver="",kind="none"} 1.0' in text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert process.stdout is not None
        process.stdout.close()

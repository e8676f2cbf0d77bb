"""The real NVML backend, its pynvml calls and error translation, run without a GPU.

``FakePynvml`` answers pynvml's functions from the H100 readings and raises pynvml's own
``NVMLError`` subclasses, so everything below ``PynvmlBackend`` that would otherwise run
only on a GPU host (GPM requests on the real ctypes structures, MIG, XID events, error
translation, start-up failures) runs here; the last test uses the real library itself.
"""

from __future__ import annotations

import logging
import sys

import pynvml
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.accelerators import AcceleratorCollector, AcceleratorSettings, FakeNvml
from collectors.accelerators import fake as h100
from collectors.accelerators.fake_pynvml import FakePynvml
from collectors.accelerators.nvml import NvmlGpuLost, NvmlNotSupported, NvmlUnavailable
from collectors.accelerators.poller import AcceleratorPoller
from collectors.accelerators.pynvml_backend import PynvmlBackend
from collectors.errors import MissingDependencyError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(poller: AcceleratorPoller) -> Samples:
    registry = CollectorRegistry()
    registry.register(AcceleratorCollector(poller))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name != "sidewatch_accelerator_poll_duration_seconds"
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def real(fake: FakeNvml, **kwargs: bool) -> tuple[PynvmlBackend, FakePynvml]:
    module = FakePynvml(fake, **kwargs)
    return PynvmlBackend(module), module


def poller(backend: object, **settings: object) -> AcceleratorPoller:
    return AcceleratorSettings(**settings).build(backend=backend, clock=lambda: 0.0)  # type: ignore[arg-type]


def test_the_real_backend_exports_what_the_fake_backend_does() -> None:
    """Same readings, same metrics, whether through pynvml's API or the protocol."""
    loads = ("busy", "tensor", "memory", "idle")
    outputs = []
    for via_pynvml in (False, True):
        fake = FakeNvml(gpus=4)
        fake.mig[3] = [(0, 2**30, 10 * 2**30), (2, 3 * 2**30, 20 * 2**30)]
        fake.ecc[1] = (5, 1)
        for gpu, load in enumerate(loads):
            fake.set_load(gpu, load)
        backend = real(fake)[0] if via_pynvml else fake
        p = poller(backend, slow_every=1, pids=frozenset({h100.LOAD_PID}), model="m")
        p.poll_once()
        p.poll_once()  # GPM needs two samples
        fake.pending_xids = [(2, 79), (2, 79), (0, 48)]
        p.poll_once()
        outputs.append(scrape(p))
        p.stop()
    assert outputs[0] == outputs[1]
    s = outputs[1]
    assert value(s, "sidewatch_gpu_info", gpu="0", name=h100.NAME, uuid=h100.UUID) == 1
    assert value(s, "sidewatch_accelerator_info", kind="gpu", count="4", driver=h100.DRIVER) == 1
    assert value(s, "sidewatch_gpu_utilization_ratio", gpu="0") == pytest.approx(0.9865)
    assert value(s, "sidewatch_gpu_power_watts", gpu="1") == pytest.approx(124.17)
    assert value(s, "sidewatch_gpu_energy_joules_total", gpu="1") == pytest.approx(2304.059)
    assert value(s, "sidewatch_gpu_sm_clock_hertz", gpu="1") == 900e6
    assert value(s, "sidewatch_gpu_tensor_active_ratio", gpu="1") == pytest.approx(0.917)
    assert value(s, "sidewatch_gpu_dram_active_ratio", gpu="2") == pytest.approx(0.867)
    assert value(s, "sidewatch_gpu_sm_occupancy_ratio", gpu="2") == pytest.approx(0.822)
    assert value(s, "sidewatch_gpu_ecc_errors_total", gpu="1", type="corrected") == 5
    assert value(s, "sidewatch_gpu_ecc_errors_total", gpu="1", type="uncorrected") == 1
    assert value(s, "sidewatch_gpu_process_memory_bytes", gpu="0", model="m") == h100.LOAD_BYTES
    assert value(s, "sidewatch_gpu_process_memory_bytes", gpu="3", model="m") == 0
    mig = value(s, "sidewatch_gpu_mig_memory_total_bytes", gpu="3", mig_instance="2")
    assert mig == 20 * 2**30
    assert value(s, "sidewatch_gpu_xid_errors_total", gpu="2", xid="79") == 2
    assert value(s, "sidewatch_gpu_xid_errors_total", gpu="0", xid="48") == 1
    assert not any(name == "sidewatch_gpu_fan_speed_ratio" for name, _ in s)  # H100: no fan


def test_gpm_samples_pair_up_and_are_freed() -> None:
    fake = FakeNvml(gpus=2)
    fake.set_load(0, "tensor")
    backend, module = real(fake)
    p = poller(backend)
    first = p.poll_once()
    assert first.gpus[0].gpm == {}, "one sample gives no rate yet"
    for _ in range(5):
        snap = p.poll_once()
    assert snap.gpus[0].gpm["tensor_active"] == 91.7
    assert snap.gpus[1].gpm["tensor_active"] == 0.0
    assert len(module.live_samples) == 2, "one sample kept per GPU, the rest freed"
    assert dict(p.snapshot().errors) == {}, "the fake rejects mismatched or reused samples"
    p.stop()
    assert module.live_samples == {}
    assert fake.calls["shutdown"] == 1


def test_pynvml_not_supported_is_absent_and_not_asked_again() -> None:
    fake = FakeNvml(gpus=2)
    fake.fail(1, "gpm", "not_supported")  # a pre-Hopper GPU: GPM sampling unsupported
    backend, module = real(fake)
    p = poller(backend)
    for _ in range(4):
        p.poll_once()
    s = scrape(p)
    assert fake.calls["fan_speed"] == 2, "asked once per GPU (the H100 has no fan reading)"
    assert fake.calls["gpm"] == 4 + 1
    assert ("sidewatch_gpu_tensor_active_ratio", (("gpu", "1"),)) not in s
    assert value(s, "sidewatch_gpu_tensor_active_ratio", gpu="0") == 0
    assert len(module.live_samples) == 1, "the unsupported GPU's sample was freed"
    assert not any(name == "sidewatch_accelerator_errors_total" for name, _ in s)


def test_pynvml_errors_are_counted_by_the_pollers_call_name() -> None:
    fake = FakeNvml()
    fake.fail(0, "power_milliwatts", "error")  # NVMLError_Unknown from pynvml
    p = poller(real(fake)[0])
    p.poll_once()
    p.poll_once()
    s = scrape(p)
    assert value(s, "sidewatch_accelerator_errors_total", call="power_milliwatts") == 2
    assert value(s, "sidewatch_gpu_utilization_ratio", gpu="0") == 0


def test_a_gpu_lost_under_pynvml_is_marked_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeNvml(gpus=3)
    p = poller(real(fake)[0])
    p.poll_once()
    fake.lose(2)
    with caplog.at_level(logging.ERROR, logger="sidewatch.accelerators"):
        for _ in range(3):
            p.poll_once()
    s = scrape(p)
    assert [value(s, "sidewatch_gpu_lost", gpu=g) for g in "012"] == [0, 0, 1]
    assert value(s, "sidewatch_gpu_power_watts", gpu="1") == pytest.approx(124.17)
    assert ("sidewatch_gpu_power_watts", (("gpu", "2"),)) not in s
    assert len([r for r in caplog.records if "GPU 2 is lost" in r.getMessage()]) == 1
    p.stop()  # shutdown must not raise with a lost GPU holding a GPM sample


def test_a_gpu_lost_before_start_up_does_not_hide_the_others() -> None:
    fake = FakeNvml(gpus=2)
    fake.lose(0)
    p = poller(real(fake)[0])
    p.poll_once()
    s = scrape(p)
    assert value(s, "sidewatch_accelerator_info", kind="gpu", count="2", driver=h100.DRIVER) == 1
    assert value(s, "sidewatch_gpu_lost", gpu="0") == 1
    assert value(s, "sidewatch_gpu_info", gpu="0", name="unknown", uuid="unknown-0") == 1
    assert value(s, "sidewatch_gpu_utilization_ratio", gpu="1") == 0


def test_no_xid_events_in_this_container_is_skipped_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeNvml()
    fake.pending_xids = [(0, 79)]
    with caplog.at_level(logging.INFO, logger="sidewatch.accelerators"):
        p = poller(real(fake, xid_events=False)[0])
        p.poll_once()
    assert fake.calls["xid_events"] == 0
    assert [r.getMessage() for r in caplog.records] == [
        "no XID events from NVML: nvmlDeviceRegisterEvents: Not Supported"
    ]
    assert not any(n == "sidewatch_gpu_xid_errors_total" for n, _ in scrape(p))


def test_translation_of_pynvml_errors() -> None:
    fake = FakeNvml()
    backend, _ = real(fake)
    backend.init()
    fake.fail(0, "ecc_errors", "not_supported")
    with pytest.raises(NvmlNotSupported) as unsupported:
        backend.ecc_errors(0)
    assert isinstance(unsupported.value.__cause__, pynvml.NVMLError_NotSupported)
    assert unsupported.value.call == "nvmlDeviceGetTotalEccErrors"
    fake.lose(0)
    with pytest.raises(NvmlGpuLost) as lost:
        backend.power_milliwatts(0)
    assert isinstance(lost.value.__cause__, pynvml.NVMLError_GpuIsLost)
    backend.shutdown()


def test_no_nvml_library_through_pynvml_means_kind_none(caplog: pytest.LogCaptureFixture) -> None:
    backend, _ = real(FakeNvml(available=False))
    with caplog.at_level(logging.INFO, logger="sidewatch.accelerators"):
        p = poller(backend)
        p.poll_once()
        p.poll_once()
    s = scrape(p)
    assert value(s, "sidewatch_accelerator_info", kind="none", count="0", driver="") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["no NVIDIA GPU: nvmlInit: NVML Shared Library Not Found"]
    p.stop()


def test_nvidia_ml_py_not_installed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    with pytest.raises(MissingDependencyError) as missing:
        PynvmlBackend().init()
    assert (missing.value.package, missing.value.extra) == ("nvidia-ml-py", "gpu")
    with caplog.at_level(logging.INFO, logger="sidewatch.accelerators"):
        p = AcceleratorSettings().build()
        p.start()
        p.stop()
    s = scrape(p)
    assert value(s, "sidewatch_accelerator_info", kind="none", count="0", driver="") == 1
    assert len(caplog.records) == 1
    assert caplog.records[0].levelname == "WARNING"
    assert "sidewatch[gpu]" in caplog.records[0].getMessage()


def test_the_real_library_on_this_machine_degrades_to_no_gpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No mocks: nvidia-ml-py is installed, the NVIDIA driver is not."""
    with pytest.raises(NvmlUnavailable, match="NVML Shared Library Not Found"):
        PynvmlBackend().init()
    with caplog.at_level(logging.INFO, logger="sidewatch.accelerators"):
        p = AcceleratorSettings(poll_interval_seconds=0.01).build()
        p.start()
        p.poll_once()
        p.stop()
    s = scrape(p)
    assert value(s, "sidewatch_accelerator_info", kind="none", count="0", driver="") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "no NVIDIA GPU: nvmlInit: NVML Shared Library Not Found"
    ]


def test_the_fake_module_has_pynvmls_own_signatures() -> None:
    """A call the backend makes that nvidia-ml-py lacks would pass on the fake alone."""
    import inspect

    ours = [n for n in vars(FakePynvml) if n.startswith("nvml")]
    assert len(ours) == 28
    for name in ours:
        theirs = getattr(pynvml, name)
        mine = getattr(FakePynvml, name)
        want = [p for p in inspect.signature(theirs).parameters.values() if p.default is p.empty]
        got = list(inspect.signature(mine).parameters)[1:]  # without self
        assert len(got) == len(want), (name, got, want)

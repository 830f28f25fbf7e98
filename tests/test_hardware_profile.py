"""Detection wrappers (with a fake pynvml), fixtures, fingerprints and named targets."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from advisor.catalog.schema import HardwareTarget
from advisor.errors import UsageError
from advisor.hardware import cpu as cpu_mod
from advisor.hardware import nvml, profile, torch_info
from advisor.hardware.parse import parse_nvml
from advisor.hardware.profile import (
    TORCH_MISSING_NOTE,
    TORCH_UNCHECKED_NOTE,
    build_profile,
    detect_profile,
    load_fixture,
    restrict_targets,
    target_profile,
)
from advisor.hardware.schema import HardwareProfile, TorchInfo


@pytest.fixture(autouse=True)
def fresh_state():
    profile.clear_cache()
    nvml.reset()
    yield
    profile.clear_cache()
    nvml._STATE.clear()  # never nvmlShutdown a fake


class NVMLError(Exception):
    pass


class Mem:
    _fields_ = [("total", int), ("free", int), ("used", int)]

    def __init__(self, total, free):
        self.total, self.free, self.used = total, free, total - free


def fake_pynvml(broken: set[str] = frozenset(), init_error: str | None = None, count: int = 1):
    """A pynvml stand-in for a two-getter-deep H100; getters named in `broken` raise."""
    calls = {"init": 0}

    def getter(name, value):
        def fn(*args):
            if name in broken:
                raise NVMLError("Not Supported")
            return value(*args) if callable(value) else value
        return fn

    def init():
        calls["init"] += 1
        if init_error:
            raise NVMLError(init_error)

    energy = iter(range(1000, 10**6, 500))
    m = types.SimpleNamespace(
        NVMLError=NVMLError, NVML_CLOCK_MEM=2, NVML_CLOCK_SM=1, NVML_TEMPERATURE_GPU=0, calls=calls,
        nvmlInit=init, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=getter("driver", "580.159.04"),
        nvmlSystemGetNVMLVersion=getter("nvml", b"13.580.159.04"),
        nvmlSystemGetCudaDriverVersion=getter("cuda_driver", 13000),
        nvmlDeviceGetCount=getter("count", count),
        nvmlDeviceGetHandleByIndex=getter("handle", lambda i: f"h{i}"),
        nvmlDeviceGetName=getter("name", b"NVIDIA H100 80GB HBM3"),
        nvmlDeviceGetUUID=getter("uuid", "GPU-1"),
        nvmlDeviceGetMemoryInfo=getter("memory", lambda h: Mem(85520809984, 85017493504)),
        nvmlDeviceGetCudaComputeCapability=getter("cc", (9, 0)),
        nvmlDeviceGetArchitecture=getter("architecture", 9),
        nvmlDeviceGetMemoryBusWidth=getter("bus", 5120),
        nvmlDeviceGetMaxClockInfo=getter("max_clock", lambda h, kind: 2619 if kind == 2 else 1980),
        nvmlDeviceGetPowerManagementLimit=getter("power", 700000),
        nvmlDeviceGetEnforcedPowerLimit=getter("power", 700000),
        nvmlDeviceGetMigMode=getter("mig", [0, 0]),
        nvmlDeviceGetTotalEnergyConsumption=getter("energy", lambda h: next(energy)),
    )
    # Every other getter read_nvml calls: present, and unsupported, as on many cards.
    for attr in ("GetBAR1MemoryInfo", "GetClockInfo", "GetNumGpuCores", "GetPowerUsage", "GetTemperature",
                 "GetUtilizationRates", "GetMaxPcieLinkGeneration", "GetMaxPcieLinkWidth",
                 "GetPersistenceMode", "GetComputeMode", "GetBrand", "GetVbiosVersion",
                 "GetComputeRunningProcesses"):
        setattr(m, "nvmlDevice" + attr, getter(attr, None) if attr == "GetBrand" else _raise)
    return m


def _raise(*args):
    raise NVMLError("Not Supported")


def use_fake(monkeypatch, module):
    monkeypatch.setattr(nvml, "_import_pynvml", lambda: module)
    nvml._STATE.clear()


def test_read_nvml_with_fake_pynvml(monkeypatch):
    use_fake(monkeypatch, fake_pynvml())
    raw = nvml.read_nvml()
    json.dumps(raw)  # plain data, like the recorded fixtures
    assert raw["nvml"] == "13.580.159.04"           # bytes decoded
    dev = raw["devices"][0]
    assert dev["memory"] == {"total": 85520809984, "free": 85017493504, "used": 503316480}
    assert dev["cuda_compute_capability"] == [9, 0]
    assert dev["temperature_c"] == "error: NVMLError: Not Supported"
    [gpu] = parse_nvml(raw).gpus
    assert gpu.peak_bandwidth_gbs == pytest.approx(3352.3, abs=0.1)
    assert gpu.architecture == "hopper" and gpu.power_limit_w == 700 and gpu.mig_mode is False


def test_a_raising_getter_is_recorded_not_fatal(monkeypatch):
    use_fake(monkeypatch, fake_pynvml(broken={"mig", "bus"}))
    raw = nvml.read_nvml()
    dev = raw["devices"][0]
    assert dev["mig_mode"].startswith("error: NVMLError")
    assert dev["bus_width_bits"].startswith("error: ")
    [gpu] = parse_nvml(raw).gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.memory_total_bytes == 85520809984
    assert gpu.peak_bandwidth_gbs is None
    assert set(gpu.errors) == {"mig_mode", "bus_width_bits"}


def test_a_device_that_cannot_be_opened(monkeypatch):
    use_fake(monkeypatch, fake_pynvml(broken={"handle"}, count=2))
    raw = nvml.read_nvml()
    assert [d["handle"] for d in raw["devices"]] == ["error: NVMLError: Not Supported"] * 2
    assert [g.errors for g in parse_nvml(raw).gpus] == [{"handle": "NVMLError: Not Supported"}] * 2


def test_nvml_init_failure_gives_cpu_only_profile(monkeypatch):
    fake = fake_pynvml(init_error="Driver Not Loaded")
    use_fake(monkeypatch, fake)
    assert nvml.read_nvml() == {"init_error": "NVMLError: Driver Not Loaded"}
    nvml.read_nvml()
    assert fake.calls["init"] == 1                  # a failed init is not retried per call
    assert nvml.free_memory_bytes(0) is None and nvml.total_energy_mj(0) is None
    prof = detect_profile(include_torch=False)
    assert prof.gpu_count == 0 and prof.gpus == []
    assert any("Driver Not Loaded" in n and "CPU-only" in n for n in prof.notes)
    assert prof.cpu.logical_cores and prof.cpu.logical_cores > 0  # the host is still read


def test_pynvml_not_installed(monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")
    monkeypatch.setattr(nvml, "_import_pynvml", missing)
    nvml._STATE.clear()
    raw = nvml.read_nvml()
    assert "pynvml not importable" in raw["init_error"]
    prof = detect_profile(include_torch=False)
    assert prof.gpus == [] and any("nvidia-ml-py" in n for n in prof.notes)


def test_probe_helpers(monkeypatch):
    use_fake(monkeypatch, fake_pynvml())
    assert nvml.free_memory_bytes(0) == 85017493504
    first, second = nvml.total_energy_mj(0), nvml.total_energy_mj(0)
    assert second - first == 500
    use_fake(monkeypatch, fake_pynvml(broken={"energy", "memory"}))
    assert nvml.free_memory_bytes(0) is None and nvml.total_energy_mj(0) is None


def test_index_of_uuid(monkeypatch):
    fake = fake_pynvml(count=2)
    fake.nvmlDeviceGetUUID = lambda h: f"GPU-AAAA-{h}"
    use_fake(monkeypatch, fake)
    assert nvml.index_of_uuid("GPU-aaaa-h1") == 1
    assert nvml.index_of_uuid("aaaa-h0") == 0       # torch prints the uuid without "GPU-"
    assert nvml.index_of_uuid("GPU-other") is None
    use_fake(monkeypatch, fake_pynvml(init_error="no driver"))
    assert nvml.index_of_uuid("GPU-aaaa-h1") is None


def test_read_cpu_survives_psutil_failures(monkeypatch):
    import psutil

    def denied():
        raise psutil.AccessDenied()
    monkeypatch.setattr(psutil, "virtual_memory", denied)
    monkeypatch.setattr(psutil, "cpu_freq", denied)
    raw = cpu_mod.read_cpu()
    assert raw["ram_total_bytes"] is None and raw["max_frequency_mhz"] is None
    assert set(raw["errors"]) == {"ram_total_bytes", "ram_available_bytes", "max_frequency_mhz"}
    assert raw["logical_cores"] > 0
    prof = build_profile(None, raw, None)
    assert prof.cpu.ram_total_bytes is None
    assert any("host readings failed" in n for n in prof.notes)


def test_cpuinfo_fields():
    text = "processor\t: 0\nmodel name\t: AMD EPYC 7R32\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: other\n"
    fields = cpu_mod._cpuinfo_fields(text)
    assert fields["model name"] == "AMD EPYC 7R32" and fields["flags"] == "fpu avx2"


# --- fingerprint ----------------------------------------------------------------------------

def h100_doc(fixtures):
    return json.loads((fixtures / "hardware" / "gpu-80gb.json").read_text())


def fp(doc, torch=None):
    return build_profile(doc["nvml"], doc["cpu"], torch).fingerprint


def test_fingerprint_is_stable_and_ignores_what_drifts(fixtures):
    doc = h100_doc(fixtures)
    base = fp(doc)
    assert len(base) == 16 and int(base, 16) >= 0
    assert fp(json.loads(json.dumps(doc))) == base
    doc["nvml"]["devices"][0]["memory"]["free"] -= 10**9       # free memory moves
    doc["nvml"]["devices"][0]["clock_sm_mhz"] = 1980
    doc["cpu"]["hostname"] = "another-node"                    # a twin machine
    doc["cpu"]["ram_available_bytes"] //= 2
    doc["cpu"]["ram_total_bytes"] += 300_000_000               # rounds to the same GB
    assert fp(doc) == base


@pytest.mark.parametrize("change", [
    lambda d: d["nvml"]["devices"][0].update(name="NVIDIA H100 PCIe"),
    lambda d: d["nvml"]["devices"][0]["memory"].update(total=95 * 10**9),
    lambda d: d["nvml"]["devices"][0].update(cuda_compute_capability=[9, 1]),
    lambda d: d["nvml"].update(driver="590.1"),
    lambda d: d["nvml"].update(cuda_driver=13010),
    lambda d: d["nvml"]["devices"].append(dict(d["nvml"]["devices"][0], index=1)),
    lambda d: d["cpu"].update(model_name="AMD EPYC 9654"),
    lambda d: d["cpu"].update(logical_cores=112),
    lambda d: d["cpu"].update(ram_total_bytes=1000 * 10**9),
    lambda d: d["cpu"].update(os="Linux-6.9.0-x86_64-with-glibc2.39"),
])
def test_fingerprint_changes_with_hardware_and_drivers(fixtures, change):
    doc = h100_doc(fixtures)
    base = fp(doc)
    change(doc)
    assert fp(doc) != base


def test_fingerprint_is_one_machine_in_every_venv(fixtures):
    """Two venvs on one machine, with torch and without, are one machine in `advisor compare`
    (issue 18): the Python environment is not hardware. Probe caches key on torch themselves."""
    doc = h100_doc(fixtures)
    a = fp(doc, TorchInfo(installed=True, version="2.13.0"))
    assert a == fp(doc, TorchInfo(installed=True, version="2.13.0", backends_checked=False))
    assert a == fp(doc, TorchInfo(installed=True, version="2.12.1"))
    assert a == fp(doc, TorchInfo(installed=False)) == fp(doc)


# --- fixtures via ADVISOR_HARDWARE_FIXTURE --------------------------------------------------

@pytest.mark.parametrize("name, gpus, gb_each, ram_gb", [
    ("cpu-16gb.json", 0, None, 16),
    ("gpu-8gb.json", 1, 8.6, 32),
    ("gpu-24gb.json", 1, 24.1, 32),
    ("gpu-80gb.json", 1, 85.5, 2015),
    ("gpu-2x24gb.json", 2, 25.8, 128),
])
def test_scenario_fixtures(fixtures, monkeypatch, name, gpus, gb_each, ram_gb):
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(fixtures / "hardware" / name))
    prof = detect_profile()
    assert prof.source == "fixture"
    assert prof.gpu_count == len(prof.gpus) == gpus
    for g in prof.gpus:
        assert g.memory_total_bytes / 1e9 == pytest.approx(gb_each, abs=0.05)
        assert g.peak_bandwidth_gbs and g.compute_capability
    assert prof.cpu.ram_total_bytes / 1e9 == pytest.approx(ram_gb, abs=0.5)
    assert prof.torch is not None and prof.torch.cuda_available == (gpus > 0)
    if gpus == 0:
        assert any("CPU-only" in n for n in prof.notes)


def test_fixture_can_be_a_recorded_profile(fixtures, tmp_path, monkeypatch):
    doc = h100_doc(fixtures)
    recorded = build_profile(doc["nvml"], doc["cpu"], None)
    path = tmp_path / "p.json"
    path.write_text(recorded.model_dump_json())
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(path))
    prof = detect_profile()
    assert prof.source == "fixture"
    assert prof.gpus == recorded.gpus and prof.fingerprint == recorded.fingerprint


def test_fixture_can_be_a_bare_nvml_readout(fixtures):
    prof = load_fixture(str(fixtures / "hardware" / "nvml-h100.json"))
    assert prof.gpus[0].name == "NVIDIA H100 80GB HBM3" and prof.cpu.ram_total_bytes is None


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"gpus": "two"}', "gpus"),
    ('{"nvml": null, "cpu": {}, "torch": {"installed": "maybe"}}', "torch"),
])
def test_bad_fixture_is_a_usage_error(tmp_path, monkeypatch, content, message):
    path = tmp_path / "fixture.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(path))
    with pytest.raises(UsageError) as err:
        detect_profile()
    assert message in err.value.one_line() and "\n" not in err.value.one_line()


def test_empty_fixture_variable_means_detect(monkeypatch):
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", "")
    monkeypatch.setattr(nvml, "_import_pynvml", fake_pynvml)
    prof = detect_profile(include_torch=False)
    assert prof.source == "detected" and prof.gpus[0].name == "NVIDIA H100 80GB HBM3"


def test_detect_profile_is_cached_and_returns_copies(monkeypatch):
    reads = []
    monkeypatch.setattr(profile, "_raw_readouts", lambda: reads.append(1) or ({"init_error": "x"}, {}))
    first = detect_profile(include_torch=False)
    first.notes.append("mine")
    second = detect_profile(include_torch=False)
    assert "mine" not in second.notes and len(reads) == 1


# --- torch ----------------------------------------------------------------------------------

def test_torch_missing_is_a_note(monkeypatch):
    monkeypatch.setattr(torch_info, "torch_installed", lambda: False)
    monkeypatch.setattr(nvml, "_import_pynvml", fake_pynvml)
    prof = detect_profile()
    assert prof.torch == TorchInfo(installed=False)
    assert TORCH_MISSING_NOTE in prof.notes


def test_no_torch_reads_the_version_without_importing_torch():
    code = ("import sys; from advisor.hardware.profile import detect_profile; p = detect_profile(False); "
            "assert 'torch' not in sys.modules; print(p.torch.model_dump_json()); print(p.fingerprint)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = TorchInfo.model_validate_json(out.stdout.splitlines()[0])
    assert info.installed == torch_info.torch_installed()
    if info.installed:
        assert info.backends_checked is False and info.version
        assert info.cuda_available is None


@pytest.mark.skipif(not torch_info.torch_installed(), reason="torch not installed")
def test_torch_backends_checked():
    import torch

    info = torch_info.detect_torch()
    assert info.installed and info.backends_checked and info.version == torch.__version__
    assert info.cuda_available == torch.cuda.is_available()
    assert info.device_count == (torch.cuda.device_count() if info.cuda_available else 0)


def test_unchecked_torch_note(fixtures):
    doc = h100_doc(fixtures)
    prof = build_profile(doc["nvml"], doc["cpu"], TorchInfo(installed=True, version="2.13", backends_checked=False))
    assert TORCH_UNCHECKED_NOTE in prof.notes


# --- named targets --------------------------------------------------------------------------

def make_target(**kw):
    base = dict(id="h100-sxm-80gb", name="NVIDIA H100 SXM 80GB", kind="gpu", memory_gb=80,
                memory_bandwidth_gbs=3350, peak_tflops={"bf16": 989}, tdp_w=700, source="https://nvidia.com/h100")
    base.update(kw)
    return HardwareTarget(**base)


def test_target_profile_gpu():
    prof = target_profile(make_target(gpus=8))
    assert prof.source == "target" and prof.target_id == "h100-sxm-80gb"
    assert prof.gpu_count == 8 and [g.index for g in prof.gpus] == list(range(8))
    assert all(g.memory_total_bytes == 80 * 10**9 and g.peak_bandwidth_gbs == 3350 and g.power_limit_w == 700
               and g.matched_target == "h100-sxm-80gb" for g in prof.gpus)
    assert prof.torch is None and prof.cpu.ram_total_bytes is None
    assert prof.fingerprint != target_profile(make_target(gpus=4)).fingerprint
    HardwareProfile.model_validate_json(prof.model_dump_json())


def test_target_profile_cpu():
    prof = target_profile(make_target(id="cpu-64", kind="cpu", memory_gb=64, memory_bandwidth_gbs=200, tdp_w=None))
    assert prof.gpus == [] and prof.cpu.ram_total_bytes == 64 * 10**9
    assert prof.cpu.memory_bandwidth_gbs == 200


def test_restrict_targets(fixtures):
    doc = h100_doc(fixtures)
    prof = build_profile(doc["nvml"], doc["cpu"], None)
    assert restrict_targets(prof, {"h100-sxm-80gb"}).gpus[0].matched_target == "h100-sxm-80gb"
    assert restrict_targets(prof, set()).gpus[0].matched_target is None
    assert prof.gpus[0].matched_target == "h100-sxm-80gb"  # the input is left alone

"""The pure parsers (advisor.hardware.parse, .match) against recorded and hand-made readouts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.hardware.match import match_target
from advisor.hardware.parse import (
    BANDWIDTH_NOTE,
    architecture_name,
    compute_capability,
    cpu_notes,
    cuda_version_string,
    parse_cpu,
    parse_nvml,
    peak_bandwidth_gbs,
)


def load(fixtures, name):
    return json.loads((fixtures / "hardware" / name).read_text())


def test_real_h100_readout(fixtures):
    raw = load(fixtures, "nvml-h100.json")
    out = parse_nvml(raw)
    assert out.driver_version == "580.159.04"
    assert out.cuda_driver_version == "13.0"
    assert out.nvml_version == "13.580.159.04"
    [gpu] = out.gpus
    assert gpu.index == 0
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.memory_total_bytes == 85520809984
    assert gpu.memory_free_bytes == 85017493504
    assert gpu.memory_used_bytes == 503316480
    assert gpu.compute_capability == "9.0"
    assert gpu.architecture == "hopper"
    assert gpu.memory_bus_width_bits == 5120
    assert gpu.max_memory_clock_mhz == 2619
    # 5120 bits x 2619 MHz x 2 (DDR) / 8 = 3352.3 GB/s; the datasheet says 3.35 TB/s.
    assert gpu.peak_bandwidth_gbs == pytest.approx(3352.3, abs=0.1)
    assert gpu.max_sm_clock_mhz == 1980
    assert gpu.power_limit_w == 700.0
    assert gpu.mig_mode is False
    assert gpu.matched_target == "h100-sxm-80gb"
    assert gpu.errors == {}
    assert BANDWIDTH_NOTE in out.notes
    assert len(out.notes) == 1  # nothing else to say about a clean readout


def test_two_gpus(fixtures):
    out = parse_nvml(load(fixtures, "nvml-2x3090.json"))
    assert [g.index for g in out.gpus] == [0, 1]
    for g in out.gpus:
        assert g.name == "NVIDIA GeForce RTX 3090"
        assert g.memory_total_bytes == 24 * 1024**3
        assert g.compute_capability == "8.6"
        assert g.architecture == "ampere"
        assert g.peak_bandwidth_gbs == pytest.approx(936.1, abs=0.1)  # datasheet: 936 GB/s
        assert g.power_limit_w == 350.0
        assert g.matched_target == "rtx3090-24gb"
        # GeForce cards do not support MIG: off, and not a failure.
        assert g.mig_mode is False
        assert g.errors == {}
    assert out.cuda_driver_version == "12.8"
    assert len({g.uuid for g in out.gpus}) == 2
    assert not any(n.startswith("GPU ") for n in out.notes)


def test_failing_getters_give_a_partial_gpu(fixtures):
    out = parse_nvml(load(fixtures, "nvml-getter-error.json"))
    [gpu] = out.gpus
    assert set(gpu.errors) == {"max_clock_mem_mhz", "mig_mode", "enforced_power_limit_mw"}
    assert gpu.errors["mig_mode"] == "NVMLError_NoPermission: Insufficient Permissions"
    assert gpu.max_memory_clock_mhz is None
    assert gpu.peak_bandwidth_gbs is None       # cannot be derived without the memory clock
    assert gpu.mig_mode is None
    assert gpu.power_limit_w == 700.0           # falls back to the set limit
    assert gpu.memory_total_bytes == 85520809984
    assert gpu.compute_capability == "9.0"
    note = next(n for n in out.notes if n.startswith("GPU 0:"))
    assert "3 NVML reading(s) failed" in note and "max_clock_mem_mhz" in note
    assert BANDWIDTH_NOTE not in out.notes


def test_broken_readout_never_raises(fixtures):
    out = parse_nvml(load(fixtures, "nvml-broken.json"))
    assert out.driver_version is None           # a number where a string belongs
    assert out.cuda_driver_version is None      # a string where a number belongs
    assert len(out.gpus) == 2                   # the "garbage" entry is skipped
    first, lost = out.gpus
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert first.compute_capability is None and "cuda_compute_capability" in first.errors
    assert first.architecture is None and "architecture" in first.errors
    assert first.memory_bus_width_bits is None  # True is not a width
    assert first.max_memory_clock_mhz is None   # negative
    assert first.memory_total_bytes is None and "memory" in first.errors
    assert first.power_limit_w is None
    assert first.mig_mode is None
    assert first.errors["uuid"] == "missing from the readout"
    assert lost.index == 2
    assert lost.errors == {"handle": "NVMLError_GpuIsLost: GPU is lost"}
    assert any("entry 1 is not a mapping" in n for n in out.notes)
    assert any("counted 3 GPU(s) but 2" in n for n in out.notes)


def test_no_nvml_readout_is_cpu_only_with_a_reason():
    out = parse_nvml(None)
    assert out.gpus == [] and out.driver_version is None
    assert any("CPU-only" in n for n in out.notes)


def test_nvml_init_error_is_explained():
    out = parse_nvml({"init_error": "NVMLError_LibraryNotFound: NVML Shared Library Not Found"})
    assert out.gpus == []
    [note] = out.notes
    assert "NVMLError_LibraryNotFound" in note and "CPU-only" in note


def test_zero_gpus_from_nvml():
    out = parse_nvml({"driver": "570.1", "cuda_driver": 12080, "count": 0, "devices": []})
    assert out.gpus == [] and out.driver_version == "570.1"
    assert any("found no GPUs" in n for n in out.notes)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30)
device_keys = st.sampled_from(["index", "name", "memory", "cuda_compute_capability", "architecture",
                               "bus_width_bits", "max_clock_mem_mhz", "power_limit_mw",
                               "enforced_power_limit_mw", "mig_mode", "handle", "uuid"])


@settings(max_examples=200, deadline=None)
@given(top=json_values, devices=st.lists(st.dictionaries(device_keys, json_values, max_size=12), max_size=3))
def test_parser_survives_any_json(top, devices):
    parse_nvml(top)
    summary = parse_nvml({"driver": top, "cuda_driver": top, "count": top, "devices": devices})
    assert len(summary.gpus) == len(devices)
    parse_cpu(top)


@pytest.mark.parametrize("value, expected", [
    (13000, "13.0"), (12040, "12.4"), (12080, "12.8"), (11080, "11.8"), (10010, "10.1"),
    (0, None), (None, None), ("13000", None), (True, None), (-1, None),
])
def test_cuda_driver_version(value, expected):
    assert cuda_version_string(value) == expected


@pytest.mark.parametrize("value, expected", [
    (9, "hopper"), (7, "ampere"), (8, "ada"), (10, "blackwell"), (6, "turing"), (5, "volta"),
    (0xFFFFFFFF, None), ("9", None), (None, None),
])
def test_architecture_name(value, expected):
    assert architecture_name(value) == expected


def test_unnamed_architecture_keeps_its_number():
    assert architecture_name(99) == "unknown (99)"


@pytest.mark.parametrize("value, expected", [
    ([9, 0], "9.0"), ((8, 6), "8.6"), ([8, 9], "8.9"), ([9], None), ("9.0", None), ([9, "0"], None),
])
def test_compute_capability(value, expected):
    assert compute_capability(value) == expected


def test_peak_bandwidth_needs_both_inputs():
    assert peak_bandwidth_gbs(384, 9751) == pytest.approx(936.1, abs=0.1)
    assert peak_bandwidth_gbs(None, 2619) is None
    assert peak_bandwidth_gbs(5120, None) is None
    assert peak_bandwidth_gbs(5120, 0) is None


def test_cpu_flags_keep_inference_features_only():
    cpu = parse_cpu({"flags": "fpu sse2 avx avx2 fma f16c avx512f avx512_bf16 amx_tile smep sme pclmulqdq"})
    assert cpu.flags == ["amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "f16c", "fma"]
    arm = parse_cpu({"flags": ["fp", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16", "crc32"]})
    assert arm.flags == ["asimd", "asimddp", "bf16", "i8mm", "sve", "sve2"]


def test_cpu_unknowns_become_none():
    cpu = parse_cpu({"model_name": "", "physical_cores": None, "logical_cores": "8",
                     "max_frequency_mhz": 0.0, "ram_total_bytes": True, "ram_available_bytes": -3})
    assert cpu.model_name is None and cpu.physical_cores is None and cpu.logical_cores is None
    assert cpu.max_frequency_mhz is None and cpu.ram_total_bytes is None and cpu.ram_available_bytes is None
    assert parse_cpu(None).ram_total_bytes is None


def test_cpu_notes():
    raw = {"ram_total_bytes": 64_000_000_000, "memory_limit_bytes": 8_000_000_000,
           "errors": {"max_frequency_mhz": "PermissionError: denied"}}
    notes = cpu_notes(raw, parse_cpu(raw))
    assert any("max_frequency_mhz: PermissionError" in n for n in notes)
    assert any("cgroup limits this process to 8.0 GB" in n for n in notes)
    assert cpu_notes({}, parse_cpu({})) == ["total RAM unknown"]


# NVML names seen on real boards (memory in decimal GB of the NVML total). The rules are the
# nvml_names / nvml_memory_gb of catalog/hardware.yaml; a GPU with no target there matches nothing.
@pytest.mark.parametrize("name, memory_gb, expected", [
    ("NVIDIA H100 80GB HBM3", 85.5, "h100-sxm-80gb"),
    ("NVIDIA H100 PCIe", 85.5, "h100-pcie-80gb"),
    ("NVIDIA H100 NVL", 100, None),                 # no H100 NVL target
    ("NVIDIA H200", 150.8, "h200-141gb"),
    ("NVIDIA A100-SXM4-80GB", 85.1, "a100-80gb"),
    ("NVIDIA A100-SXM4-40GB", 42.4, "a100-40gb"),
    ("NVIDIA A100 80GB PCIe", 85.1, "a100-pcie-80gb"),
    ("NVIDIA A100-PCIE-40GB", 42.4, "a100-pcie-40gb"),
    ("NVIDIA A10G", 24.1, "a10g-24gb"),
    ("NVIDIA A10", 24.1, "a10-24gb"),
    ("Tesla T4", 15.8, "t4-16gb"),
    ("NVIDIA L4", 24.1, "l4-24gb"),
    ("NVIDIA L40S", 48.3, "l40s-48gb"),
    ("NVIDIA L40", 48.3, None),                     # the L40 is not the L40S
    ("Tesla V100-SXM2-16GB", 17.1, None),
    ("NVIDIA GeForce RTX 4090", 25.8, "rtx4090-24gb"),
    ("NVIDIA GeForce RTX 4060 Ti", 17.2, None),
    ("NVIDIA GeForce RTX 3090", 25.8, "rtx3090-24gb"),
    ("NVIDIA GeForce RTX 3090 Ti", 25.8, "rtx3090-24gb"),
    ("NVIDIA GeForce GTX 1080", 8.5, None),
    ("NVIDIA RTX 2000 Ada", 16.8, None),
    ("", 8, None),
])
def test_match_target(name, memory_gb, expected):
    assert match_target(name, int(memory_gb * 1e9)) == expected


def test_match_without_memory_and_against_a_catalog():
    assert match_target("NVIDIA A100-SXM4-80GB") == "a100-40gb"  # size unknown: the first rule in file order
    assert match_target(None, 80 * 10**9) is None
    assert match_target("NVIDIA A10G", None, known_ids={"a10g-24gb"}) == "a10g-24gb"
    assert match_target("NVIDIA A10G", None, known_ids={"t4-16gb"}) is None

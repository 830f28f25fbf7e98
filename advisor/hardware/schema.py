"""The hardware profile: what the advisor knows about a machine (detected or named)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PROFILE_SCHEMA_VERSION = 1


class GPUInfo(BaseModel):
    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_used_bytes: int | None = None
    compute_capability: str | None = None          # "9.0"
    architecture: str | None = None                # "hopper"
    memory_bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None
    peak_bandwidth_gbs: float | None = None        # bus width x max memory clock x 2 (DDR) / 8
    max_sm_clock_mhz: int | None = None
    cuda_cores: int | None = None                  # NVML num_cores; with the SM clock gives a CUDA-core peak
    power_limit_w: float | None = None
    mig_mode: bool | None = None
    matched_target: str | None = None              # hardware.yaml id whose peaks apply, if any
    errors: dict[str, str] = Field(default_factory=dict)   # getter -> why it failed


class CPUInfo(BaseModel):
    model_name: str | None = None
    architecture: str | None = None                # platform.machine()
    physical_cores: int | None = None
    logical_cores: int | None = None
    usable_cores: int | None = None                 # this process's CPU affinity (containers, taskset)
    max_frequency_mhz: float | None = None
    flags: list[str] = Field(default_factory=list)  # inference-relevant: avx2, avx512*, amx*, neon...
    ram_total_bytes: int | None = None
    ram_available_bytes: int | None = None
    memory_limit_bytes: int | None = None           # cgroup limit when one is set (containers)
    memory_bandwidth_gbs: float | None = None       # spec sheet, for named cpu targets only


class TorchInfo(BaseModel):
    installed: bool
    version: str | None = None
    cuda_available: bool | None = None
    cuda_version: str | None = None
    bf16_supported: bool | None = None
    mps_available: bool | None = None
    device_count: int | None = None
    backends_checked: bool | None = None            # False: only the installed version was read
    error: str | None = None                        # why torch could not be imported or queried


class HardwareProfile(BaseModel):
    schema_version: int = PROFILE_SCHEMA_VERSION
    source: Literal["detected", "target", "fixture"] = "detected"
    target_id: str | None = None                   # for named targets
    hostname: str | None = None
    os: str | None = None
    python: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None         # "13.0"
    nvml_version: str | None = None
    gpu_count: int = 0
    gpus: list[GPUInfo] = Field(default_factory=list)
    cpu: CPUInfo = Field(default_factory=CPUInfo)
    torch: TorchInfo | None = None
    notes: list[str] = Field(default_factory=list)  # why something is missing (no NVML, getter failed...)
    fingerprint: str = ""                           # stable hash of hardware + software versions

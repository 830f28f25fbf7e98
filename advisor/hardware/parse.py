"""Pure functions: raw readouts (advisor.hardware.nvml / .cpu, or recorded JSON) -> profile parts.

Nothing here touches the machine, so every branch is tested against recorded readouts. A value of
the wrong type or an "error: ..." string (a getter that raised) leaves its field None and is
recorded in GPUInfo.errors under the getter's key; a readout never makes these functions raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from advisor.hardware.match import match_target
from advisor.hardware.schema import CPUInfo, GPUInfo

ERROR_PREFIX = "error: "

# NVML's nvmlDeviceArchitecture_t values (nvml.h NVML_DEVICE_ARCH_*). Values missing here are
# looked up by name in pynvml, so a newer nvidia-ml-py names newer architectures.
ARCHITECTURES = {2: "kepler", 3: "maxwell", 4: "pascal", 5: "volta", 6: "turing", 7: "ampere",
                 8: "ada", 9: "hopper", 10: "blackwell", 13: "rubin"}
NVML_ARCH_UNKNOWN = 0xFFFFFFFF
NVML_MIG_ENABLE = 1

# CPU features that change how fast inference kernels run (x86 "flags", ARM "Features"); the rest
# of /proc/cpuinfo is noise. Whole names: "sme" is AMD memory encryption on x86, "smep" a guard.
CPU_FLAG_RE = re.compile(r"^(avx\w*|amx\w*|fma|f16c|asimd\w*|neon|sve\w*|bf16|i8mm|fphp)$")

BANDWIDTH_NOTE = ("peak_bandwidth_gbs is derived, not measured: memory bus width x max memory "
                  "clock x 2 (double data rate) / 8")


@dataclass
class NvmlSummary:
    gpus: list[GPUInfo] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    notes: list[str] = field(default_factory=list)


def is_error(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ERROR_PREFIX)


def _int(value: Any) -> int | None:
    # bool is an int subclass; a True memory size is a broken readout, not 1 byte.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and not is_error(value):
        return value.strip()
    return None


class _Reader:
    """Reads keys of one device dict, recording why a key gave nothing."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.errors: dict[str, str] = {}

    def optional(self, key: str, convert) -> Any:
        """A reading many cards do not support (e.g. CUDA core count): absence is not an error."""
        value = self.raw.get(key)
        return None if value is None or is_error(value) else convert(value)

    def get(self, key: str, convert) -> Any:
        if key not in self.raw:
            self.errors[key] = "missing from the readout"
            return None
        value = self.raw[key]
        if is_error(value):
            self.errors[key] = value[len(ERROR_PREFIX):]
            return None
        out = convert(value)
        if out is None:
            self.errors[key] = f"unexpected value {value!r}"[:120]
        return out


def cuda_version_string(value: Any) -> str | None:
    """NVML's integer CUDA driver version as "major.minor": 13000 -> "13.0", 12040 -> "12.4"."""
    v = _int(value)
    if v is None or v <= 0:
        return None
    return f"{v // 1000}.{(v % 1000) // 10}"


def architecture_name(value: Any) -> str | None:
    v = _int(value)
    if v is None or v == NVML_ARCH_UNKNOWN:
        return None
    if v in ARCHITECTURES:
        return ARCHITECTURES[v]
    try:  # pynvml is pure python; importing it loads no library
        import pynvml

        for name in dir(pynvml):
            if name.startswith("NVML_DEVICE_ARCH_") and getattr(pynvml, name) == v:
                return name.removeprefix("NVML_DEVICE_ARCH_").lower()
    except Exception:
        pass
    return f"unknown ({v})"


def compute_capability(value: Any) -> str | None:
    """[9, 0] -> "9.0"."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        major, minor = _int(value[0]), _int(value[1])
        if major is not None and minor is not None and major >= 0 and minor >= 0:
            return f"{major}.{minor}"
    return None


def peak_bandwidth_gbs(bus_width_bits: int | None, max_memory_clock_mhz: int | None) -> float | None:
    """Theoretical peak memory bandwidth in GB/s (1e9 bytes).

    bits x MHz x 2 / 8 / 1000: NVML reports the memory clock at half the data rate for HBM and
    GDDR6/6X alike, so x2 (double data rate) gives transfers per second; /8 turns bits into bytes.
    H100 SXM: 5120 x 2619 x 2 / 8 / 1000 = 3352 GB/s (spec sheet 3.35 TB/s). A derivation: measured
    copies reach about 90% of it.
    """
    if not bus_width_bits or not max_memory_clock_mhz or bus_width_bits <= 0 or max_memory_clock_mhz <= 0:
        return None
    return round(bus_width_bits * max_memory_clock_mhz * 2 / 8 / 1000, 1)


def _memory(value: Any) -> dict[str, int | None] | None:
    if not isinstance(value, dict):
        return None
    out = {k: _int(value.get(k)) for k in ("total", "free", "used")}
    return out if out["total"] is not None else None


def _mig(value: Any) -> bool | None:
    # nvmlDeviceGetMigMode gives [current, pending]; the current mode is what applies now.
    current = value[0] if isinstance(value, (list, tuple)) and value else value
    current = _int(current)
    return None if current is None else current == NVML_MIG_ENABLE


def _mig_mode(r: _Reader, raw: dict[str, Any]) -> bool | None:
    # Cards without MIG (GeForce, T4, A10G) answer NotSupported: MIG is off there, not unknown.
    value = raw.get("mig_mode")
    if is_error(value) and "NotSupported" in value:
        return False
    return r.get("mig_mode", _mig)


def _watts(value: Any) -> float | None:
    mw = _int(value)
    return mw / 1000 if mw is not None and mw > 0 else None


# No NVML reading of a real device comes near this; larger values are corrupt and would overflow floats.
MAX_READING = 2**62


def _positive(value: Any) -> int | None:
    v = _int(value)
    return v if v is not None and 0 < v < MAX_READING else None


def parse_gpu(raw: dict[str, Any], position: int) -> GPUInfo:
    index = _int(raw.get("index"))
    index = index if index is not None and index >= 0 else position
    if is_error(raw.get("handle")):  # the device could not be opened: nothing else was read
        return GPUInfo(index=index, errors={"handle": raw["handle"][len(ERROR_PREFIX):]})
    r = _Reader(raw)
    mem = r.get("memory", _memory) or {}
    bus = r.get("bus_width_bits", _positive)
    mem_clock = r.get("max_clock_mem_mhz", _positive)
    power = r.get("enforced_power_limit_mw", _watts)
    if power is None:  # the enforced limit is what the card runs at; the set limit is next best
        power = r.get("power_limit_mw", _watts)
    gpu = GPUInfo(
        index=index,
        name=r.get("name", _str),
        uuid=r.get("uuid", _str),
        memory_total_bytes=mem.get("total"),
        memory_free_bytes=mem.get("free"),
        memory_used_bytes=mem.get("used"),
        compute_capability=r.get("cuda_compute_capability", compute_capability),
        architecture=r.get("architecture", architecture_name),
        memory_bus_width_bits=bus,
        max_memory_clock_mhz=mem_clock,
        peak_bandwidth_gbs=peak_bandwidth_gbs(bus, mem_clock),
        max_sm_clock_mhz=r.get("max_clock_sm_mhz", _positive),
        cuda_cores=r.optional("num_cores", _positive),
        power_limit_w=power,
        mig_mode=_mig_mode(r, raw),
    )
    gpu.errors = r.errors
    gpu.matched_target = match_target(gpu.name, gpu.memory_total_bytes)
    return gpu


def parse_nvml(readout: Any) -> NvmlSummary:
    """GPUs, driver and CUDA versions and notes from one raw NVML readout (or None: no readout)."""
    out = NvmlSummary()
    if readout is None:
        out.notes.append("no NVML readout: no NVIDIA GPU detected, so this is a CPU-only profile")
        return out
    if not isinstance(readout, dict):
        out.notes.append(f"NVML readout is not a mapping ({type(readout).__name__}); GPUs unknown")
        return out
    if readout.get("init_error") is not None:
        out.notes.append(f"NVML unavailable ({readout['init_error']}): no NVIDIA driver or GPU visible, "
                         "so this is a CPU-only profile")
        return out
    out.driver_version = _str(readout.get("driver"))
    out.nvml_version = _str(readout.get("nvml"))
    out.cuda_driver_version = cuda_version_string(readout.get("cuda_driver"))
    for key in ("driver", "cuda_driver"):
        if is_error(readout.get(key)):
            out.notes.append(f"NVML could not read {key}: {readout[key][len(ERROR_PREFIX):]}")
    devices = readout.get("devices")
    if not isinstance(devices, list):
        out.notes.append("NVML readout has no device list; GPUs unknown")
        devices = []
    for position, raw in enumerate(devices):
        if not isinstance(raw, dict):
            out.notes.append(f"NVML device entry {position} is not a mapping; skipped")
            continue
        gpu = parse_gpu(raw, position)
        out.gpus.append(gpu)
        if gpu.errors:
            out.notes.append(f"GPU {gpu.index}: {len(gpu.errors)} NVML reading(s) failed "
                             f"({', '.join(sorted(gpu.errors))}); those fields are empty")
    count = _int(readout.get("count"))
    if is_error(readout.get("count")):
        out.notes.append(f"NVML could not count devices: {readout['count'][len(ERROR_PREFIX):]}")
    elif count is not None and count != len(out.gpus):
        out.notes.append(f"NVML counted {count} GPU(s) but {len(out.gpus)} could be read")
    if count == 0 and not out.gpus:
        out.notes.append("NVML found no GPUs, so this is a CPU-only profile")
    if any(g.peak_bandwidth_gbs is not None for g in out.gpus):
        out.notes.append(BANDWIDTH_NOTE)
    return out


def _flags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)):
        return []
    return sorted({f.lower() for f in value if isinstance(f, str) and CPU_FLAG_RE.match(f.lower())})


def parse_cpu(raw: Any) -> CPUInfo:
    """CPUInfo from the raw host dict; wrong types and zeros (unknown to psutil) become None."""
    raw = raw if isinstance(raw, dict) else {}
    freq = raw.get("max_frequency_mhz")
    freq = float(freq) if isinstance(freq, (int, float)) and not isinstance(freq, bool) and freq > 0 else None
    return CPUInfo(
        model_name=_str(raw.get("model_name")),
        architecture=_str(raw.get("architecture")),
        physical_cores=_positive(raw.get("physical_cores")),
        logical_cores=_positive(raw.get("logical_cores")),
        usable_cores=_positive(raw.get("usable_cores")),
        max_frequency_mhz=freq,
        flags=_flags(raw.get("flags")),
        ram_total_bytes=_positive(raw.get("ram_total_bytes")),
        ram_available_bytes=_positive(raw.get("ram_available_bytes")),
        memory_limit_bytes=_positive(raw.get("memory_limit_bytes")),
    )


def cpu_notes(raw: Any, cpu: CPUInfo) -> list[str]:
    notes = []
    if isinstance(raw, dict) and isinstance(raw.get("errors"), dict) and raw["errors"]:
        notes.append("host readings failed: " + "; ".join(f"{k}: {v}" for k, v in sorted(raw["errors"].items())))
    if cpu.ram_total_bytes is None:
        notes.append("total RAM unknown")
    if cpu.memory_limit_bytes and cpu.ram_total_bytes and cpu.memory_limit_bytes < cpu.ram_total_bytes:
        notes.append(f"a cgroup limits this process to {cpu.memory_limit_bytes / 1e9:.1f} GB of the "
                     f"{cpu.ram_total_bytes / 1e9:.1f} GB RAM")
    return notes

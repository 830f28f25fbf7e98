"""DeviceSpec: the figures of one device type that the estimator needs, from a named target or a detected profile.

Named targets and a local GPU matched to one use datasheet peaks (basis 'spec'). A local CPU's peak
is a rough spec: cores x max frequency x fp32 FLOPs per cycle from its ISA flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import HardwareTarget
from advisor.errors import UsageError
from advisor.hardware.schema import HardwareProfile


@dataclass(frozen=True)
class DeviceSpec:
    id: str                                   # target id or "local"
    name: str
    kind: Literal["gpu", "cpu"]
    memory_bytes: int                         # one device
    count: int                                # devices of this type available
    bandwidth_gbs: float                      # datasheet (or NVML-derived) peak
    peak_tflops: dict[str, float]             # dtype -> datasheet dense peak
    ram_bytes: int | None = None              # host RAM for offload; None when unknown
    workspace_key: str = "default"            # which gemm_workspace_bytes entry applies
    notes: tuple[str, ...] = field(default_factory=tuple)
    link_kind: str | None = None              # interconnect between the node's GPUs (nvlink, pcie)
    link_gbs: float | None = None             # per GPU, both directions, datasheet
    node_known: bool = True                   # False: the target names no node (gpus_per_node unset)
    cores: int | None = None                  # CPU: physical cores the peak counts (None: unknown)
    flags: tuple[str, ...] = ()               # CPU: ISA flags (avx2, avx512_vnni, asimddp, i8mm, ...)

    @property
    def link(self):
        from advisor.estimate.parallel import Link

        if self.link_kind is None:
            return None
        return Link(self.link_kind, self.link_gbs or 0.0)

    def tflops(self, dtype: str) -> float | None:
        """Peak for a compute dtype; bf16 and fp16 stand in for each other when only one is listed.

        Block-scaled 4-bit formats (mxfp4, nvfp4) use the device's fp4 rate where it has one. A
        low-precision mode the device lacks (fp8 on an A100, fp4 on a Hopper) runs on the 16-bit
        tensor cores (weight-only kernels dequantise to bf16), not at the fp32 rate.
        """
        dtype = {"mxfp4": "fp4", "nvfp4": "fp4"}.get(dtype, dtype)
        if dtype in self.peak_tflops:
            return self.peak_tflops[dtype]
        twin = {"bf16": "fp16", "fp16": "bf16"}.get(dtype)
        if twin and twin in self.peak_tflops:
            return self.peak_tflops[twin]
        if dtype in ("fp8", "fp4", "int4"):
            sixteen = self.peak_tflops.get("bf16") or self.peak_tflops.get("fp16")
            if sixteen:
                return sixteen
        return self.peak_tflops.get("fp32")


def target_memory_bytes(target: HardwareTarget) -> int:
    """What the driver reports when the catalog has it (memory_bytes), else memory_gb as decimal GB
    (conservative: an H100's NVML total is 6.9% above 80e9)."""
    return int(target.device_memory_bytes)


def from_target(target: HardwareTarget) -> DeviceSpec:
    link = target.interconnect
    memory = target_memory_bytes(target)
    return DeviceSpec(id=target.id, name=target.name, kind=target.kind, memory_bytes=memory,
                      count=target.max_gpus if target.kind == "gpu" else 1,
                      bandwidth_gbs=target.memory_bandwidth_gbs, peak_tflops=dict(target.peak_tflops),
                      ram_bytes=memory if target.kind == "cpu" else None, workspace_key=target.id,
                      link_kind=link.kind if link else None, link_gbs=link.bandwidth_gbs if link else None,
                      node_known=target.gpus_per_node is not None)


def cpu_peak_tflops(cores: int, mhz: float, flags: list[str], runtime: RuntimeProfile) -> dict[str, float]:
    """Rough CPU spec: cores x GHz x FLOPs/cycle of the widest ISA present (table in runtimes.yaml)."""
    if runtime.cpu is None:
        raise UsageError(f"the {runtime.id} runtime does not run on CPUs",
                         hint="use --runtime transformers or --runtime llama.cpp on a CPU")
    table = runtime.cpu.flops_per_cycle.values
    flags_l = {f.lower() for f in flags}
    per_cycle = max([table[f] for f in table if f in flags_l and f != "default"], default=table.get("default", 4.0))
    fp32 = cores * mhz * 1e6 * per_cycle / 1e12
    speed = runtime.cpu.bf16_speedup
    boost = max([speed.values[f] for f in speed.values if f in flags_l and f != "default"],
                default=speed.get(None, 1.0))
    return {"fp32": fp32, "bf16": fp32 * boost, "fp16": fp32}


def nvml_peak_tflops(cuda_cores: int | None, sm_clock_mhz: int | None) -> dict[str, float]:
    """CUDA-core FMA peak (2 FLOPs per core per clock) for a GPU without a datasheet entry.

    Tensor-core rates are not derivable from NVML, so the same figure stands for bf16/fp16: a
    deliberate under-estimate of compute for GPUs that have tensor cores.
    """
    if not cuda_cores or not sm_clock_mhz:
        return {}
    fp32 = cuda_cores * sm_clock_mhz * 1e6 * 2 / 1e12
    return {"fp32": fp32, "bf16": fp32, "fp16": fp32}


def _ram(profile: HardwareProfile) -> int | None:
    """RAM this process may use: what is available, capped by a container's limit."""
    cpu = profile.cpu
    values = [v for v in (cpu.ram_available_bytes or cpu.ram_total_bytes, cpu.memory_limit_bytes) if v]
    return min(values) if values else None


def from_profile(profile: HardwareProfile, targets: dict[str, HardwareTarget], runtime: RuntimeProfile) -> DeviceSpec:
    """The local machine: first GPU (all GPUs assumed alike), else the CPU."""
    ram = _ram(profile)
    if profile.gpus:
        gpu = profile.gpus[0]
        matched = targets.get(gpu.matched_target) if gpu.matched_target else None
        notes = []
        derived: dict[str, float] = {}
        if matched is None:
            derived = nvml_peak_tflops(gpu.cuda_cores, gpu.max_sm_clock_mhz)
            if derived:
                notes.append(f"GPU '{gpu.name}' is not in hardware.yaml: peak derived from NVML (CUDA cores x max SM "
                             "clock x 2), tensor cores not counted, so compute figures are conservative")
            else:
                notes.append(f"GPU '{gpu.name}' is not in hardware.yaml: no datasheet peaks; latency needs probe rates")
        memory = gpu.memory_total_bytes or (matched.device_memory_bytes if matched else None)
        if not memory:
            raise UsageError(f"cannot read the memory size of local GPU '{gpu.name}'",
                             hint="pass --target ID to estimate for a named target")
        bandwidth = gpu.peak_bandwidth_gbs or (matched.memory_bandwidth_gbs if matched else 0.0)
        link = matched.interconnect if matched else None
        return DeviceSpec(id="local", name=gpu.name or "local GPU", kind="gpu", memory_bytes=int(memory),
                          count=max(profile.gpu_count, len(profile.gpus)), bandwidth_gbs=bandwidth,
                          peak_tflops=dict(matched.peak_tflops) if matched else derived, ram_bytes=ram,
                          workspace_key=matched.id if matched else "default", notes=tuple(notes),
                          link_kind=link.kind if link else None, link_gbs=link.bandwidth_gbs if link else None)
    cpu = profile.cpu
    # a container's affinity caps the cores this process can use
    cores = min(c for c in (cpu.usable_cores, cpu.physical_cores or cpu.logical_cores) if c) if (
        cpu.usable_cores or cpu.physical_cores or cpu.logical_cores) else 1
    mhz = cpu.max_frequency_mhz or 2000.0  # unknown frequency: a middling 2 GHz, said in the notes
    notes = ["CPU peak is a rough spec (cores x max frequency x FLOPs/cycle of its ISA)"]
    if not cpu.max_frequency_mhz:
        notes.append("CPU frequency unknown: 2 GHz assumed")
    memory = ram
    if not memory:
        raise UsageError("cannot read this machine's RAM size", hint="pass --target ID")
    peaks = cpu_peak_tflops(cores, mhz, cpu.flags, runtime)   # raises for a GPU-only runtime
    return DeviceSpec(id="local", name=cpu.model_name or "local CPU", kind="cpu", memory_bytes=int(memory), count=1,
                      bandwidth_gbs=cpu.memory_bandwidth_gbs or runtime.cpu.bandwidth_gbs.value,
                      peak_tflops=peaks, ram_bytes=None,
                      notes=tuple(notes), cores=cores, flags=tuple(f.lower() for f in cpu.flags))

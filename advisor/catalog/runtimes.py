"""Runtime constants (catalog/runtimes.yaml): efficiencies, overheads and memory habits of a serving stack.

Every number carries the text of where it came from (a datasheet or code reading, an assumption, or a
fit on named published rows), so an estimate can say why it is what it is. One profile per engine:
transformers (eager generate), vllm, sglang, tgi, tensorrt-llm, llama.cpp (Ollama is an alias), and
the gpt-fast reference stack that some published rows use.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_RUNTIME_ID = re.compile(r"^[a-z0-9][a-z0-9.+_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    """One constant and its provenance (a measurement, a datasheet, a code reading, a fit)."""

    value: float = Field(ge=0)
    source: str = Field(min_length=8)


class SourcedMap(_Strict):
    """A small table of constants sharing one provenance (per model_type, per kernel family, per link)."""

    values: dict[str, float]
    source: str = Field(min_length=8)

    def get(self, key: str | None, default: float = 0.0) -> float:
        if key is not None and key in self.values:
            return self.values[key]
        return self.values.get("default", default)

    def lookup(self, *keys: str | None, default: float = 0.0) -> float:
        """The first key present (kernel key, then its family), else 'default'."""
        for k in keys:
            if k is not None and k in self.values:
                return self.values[k]
        return self.values.get("default", default)


class EagerHabits(_Strict):
    """How an eager PyTorch loop (transformers generate) spends memory and elementwise traffic.

    Engines with fused kernels and a preallocated KV pool have no such block: their elementwise work is
    folded into their fitted matmul efficiency, and their memory follows `pool`.
    """

    kv_cache_passes: Sourced                  # passes over the KV cache per decode step (torch.cat growth + read)
    # memory-bound elementwise traffic of a prefill (element passes: reads + writes)
    hidden_passes_per_layer: SourcedMap       # per model_type, over batch x tokens x hidden
    ffn_passes_per_layer: Sourced             # over batch x tokens x ffn
    eager_score_passes: Sourced               # over the P x P scores of eager attention, per head
    logits_passes: SourcedMap                 # per model_type, over batch x positions x vocab
    # transient buffers
    retained_outputs: Sourced                 # earlier forward outputs still alive while the next runs
    extra_logits_copies: SourcedMap           # per model_type: transient copies of the logits (softcap)
    eager_attention_types: list[str] = Field(default_factory=list)  # model_types without SDPA/flash
    attention_score_copies: Sourced           # live P x P score tensors in eager attention, in fp16 units
    hidden_live_copies: Sourced               # batch x tokens x hidden tensors alive at the LM head
    mlp_live_intermediates: Sourced           # batch x tokens x ffn tensors alive at once in the MLP
    allocator_slack_fraction: Sourced         # reserved beyond allocated, as a fraction of the churn
    offload_bandwidth_gbs: Sourced            # host->device for offloaded weights
    host_ram_usable_fraction: Sourced


class KVPool(_Strict):
    """How an engine sizes its KV cache (all figures per device).

    utilization      vLLM: budget = device memory x memory_fraction; pool = budget - weights - profiled
                     activation peak - non-torch memory (- CUDA graphs when graphs_in_budget)
    static-fraction  SGLang: pool = device memory x memory_fraction - weights - activation peak
    free-fraction    TensorRT-LLM, TGI: pool = memory_fraction x (device memory - weights - activation
                     peak - CUDA context)
    context          llama.cpp, gpt-fast: no pool; the KV cache of the context asked for is allocated,
                     plus a compute buffer
    """

    kind: Literal["utilization", "static-fraction", "free-fraction", "context"]
    memory_fraction: Sourced
    block_tokens: Sourced                     # tokens per KV block (pool granularity)
    max_num_batched_tokens: SourcedMap        # tokens of the profiling forward, by target id ('default')
    max_num_seqs: SourcedMap                  # sequences scheduled at once (and profiled by the sampler)
    profile_hidden_copies: Sourced            # per profiled token: hidden-size tensors alive at the peak
    profile_ffn_copies: Sourced               # per profiled token: ffn-size tensors alive at the peak
    sampler_bytes_per_logit: Sourced          # per (sequence x vocab) entry of the sampler's profile
    non_torch_bytes: SourcedMap               # per tensor-parallel degree ("1", "2", ..., "default")
    cuda_graph_bytes: Sourced                 # captured graphs, per device
    graphs_in_budget: bool                    # True where the engine subtracts graph memory from the pool


class Parallel(_Strict):
    """How --gpus N splits a model, and what the split costs per step."""

    split: Literal["tensor", "layer"]         # tensor parallel (heads divide) or layer split (pipeline)
    allreduce_latency_us: SourcedMap          # per all-reduce, by interconnect kind (nvlink, pcie, default)
    allreduces_per_layer: Sourced             # tensor parallel: after attention and after the MLP
    link_efficiency: Sourced                  # achievable fraction of the interconnect's datasheet bandwidth
    hop_latency_us: Sourced                   # layer split: per token per device boundary
    max_degree: int = Field(default=64, ge=1, le=1024)


class Scheduler(_Strict):
    """How a continuous-batching engine mixes prompts with decoding (advisor/capacity/simulate.py):
    mixed     prompt chunks ride in the decode steps within the step's token budget (chunked prefill)
    separate  a step that prefills new prompts runs only them; the decoding sequences wait for it"""

    prefill: Literal["mixed", "separate"]
    source: str = Field(min_length=8)


class RepackSpeedup(_Strict):
    """llama.cpp's runtime repacking of some quant types into row-interleaved blocks (ggml-cpu repack /
    'CPU_AARCH64' buffers): on a CPU with one of `requires` flags, the per-thread rates of the `formats`
    (kernel keys) multiply by `prefill` (GEMM) and `decode` (batch-1 vec_dot), measured against the same
    build without repacking."""

    formats: list[str] = Field(min_length=1)
    requires: list[str] = Field(min_length=1)
    prefill: Sourced
    decode: Sourced


class CpuSpec(_Strict):
    """Rough figures for CPU devices (local CPUs, CPU targets without published peaks).

    Optional, for runtimes whose quantised CPU kernels are modelled (llama.cpp): `int8_speedup` scales the
    fp32 peak to the int8 dot-product rate of the ISA (GGUF formats multiply int8 quants), and
    `decode_compute_fraction` makes batch-1 decode per-thread compute-bound: a decode step takes the longer
    of its weight read and its FLOPs at that fraction of the prefill's per-thread rate, on the decode threads.
    """

    flops_per_cycle: SourcedMap               # fp32 FLOPs per core per cycle by ISA flag
    bf16_speedup: SourcedMap                  # bf16 over fp32 by ISA flag
    bandwidth_gbs: Sourced                    # local-CPU bandwidth when nothing is measured
    bandwidth_efficiency: SourcedMap          # kernel key -> fraction of the CPU's datasheet bandwidth
    matmul_efficiency: SourcedMap             # kernel key -> fraction of the CPU's rough fp32 (or int8) peak
    int8_speedup: SourcedMap | None = None    # ISA flag -> int8 dot-product MACs over fp32 FMA MACs per cycle
    decode_compute_fraction: Sourced | None = None  # batch-1 decode's per-thread rate / the prefill's
    repack: RepackSpeedup | None = None       # runtime weight repacking (None: the build has none)


class GpuKernels(_Strict):
    """How an engine's own CUDA kernels run a forward, by GPU generation (llama.cpp's CUDA backend).

    Prefill of `ubatch_tokens` at a time: each ubatch dequantises every quantised weight matrix to an
    FP16 copy (`dequantise_write_bytes` per weight written, the quantised bytes read) unless it has at most
    `mmq_max_batch` tokens (then the quantised kernels read the weights directly), multiplies in FP16 cuBLAS
    at `matmul_efficiency[generation]` of the FP16-accumulate tensor peak (the catalog's fp16 peak x
    `fp16_accumulate_speedup`), and moves f32 activations between the kernels (`activation_bytes`
    per token per layer, per hidden, KV and FFN channel) and the attention scores of the non-flash path
    (`score_bytes` per score element, every query row over the whole cache). Decode pays
    `layer_overhead_ms[generation]` per layer for its small kernels. Generation: the target's compute
    capability (`compute_capability`, 'sm' + digits), 'default' where unknown.
    """

    compute_capability: SourcedMap            # target id -> compute capability x 10 (80, 86, 89, 90)
    fp16_accumulate_speedup: SourcedMap       # target id -> FP16-accumulate tensor rate / catalog fp16 peak
    matmul_efficiency: SourcedMap             # 'sm80', ... -> fraction of the FP16-accumulate peak
    layer_overhead_ms: SourcedMap             # 'sm80', ... -> per layer per decode step
    ubatch_tokens: Sourced                    # tokens per prefill forward (n_ubatch)
    mmq_max_batch: Sourced                    # at most this many tokens: quantised kernels, no FP16 copy
    dequantise_write_bytes: Sourced           # bytes written per quantised weight for the FP16 copy
    activation_bytes: SourcedMap              # 'hidden', 'kv', 'ffn' -> bytes per token per layer per channel
    score_bytes: Sourced                      # bytes moved per attention-score element (non-flash attention)

    def generation(self, target_id: str | None) -> str:
        cc = self.compute_capability.values.get(target_id or "")
        return f"sm{int(cc)}" if cc else "default"


class RuntimeBuild(_Strict):
    """An older build of a runtime whose constants differ: the fields given replace the profile's."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=2)
    version_source: str = Field(min_length=8)
    per_layer_overhead_ms: Sourced | None = None
    prefill_overhead_ms: Sourced | None = None
    prefill_per_layer_overhead_ms: Sourced | None = None
    ttft_floor_ms: Sourced | None = None
    cpu_repack: Literal[False] | None = None   # False: this build does not repack weights on CPUs


class RuntimeProfile(_Strict):
    id: str
    aliases: list[str] = Field(default_factory=list)
    description: str
    version: str = Field(min_length=2)        # the version the constants assume (named in every estimate)
    version_source: str = Field(min_length=8)
    devices: list[Literal["gpu", "cpu"]] = Field(min_length=1)
    # Where this runtime is the default: named GPU targets get the engine teams deploy with, the local
    # machine keeps what the probes can measure.
    default_for: list[Literal["gpu-target", "cpu-target", "local"]] = Field(default_factory=list)
    formats: list[str] = Field(min_length=1)  # format ids (catalog/formats.yaml) this engine can serve
    community_formats: list[str] = Field(default_factory=list)  # tried for models without an official one
    batching: Literal["continuous", "static"]
    logits_all_positions: bool                # prefill computes logits for every prompt position
    # --- spec basis: fractions of datasheet peaks, by kernel key (catalog/formats.yaml) ---
    bandwidth_efficiency: SourcedMap          # decode weight streaming / datasheet memory bandwidth
    matmul_efficiency: SourcedMap             # prefill (and large-batch decode) GEMMs / datasheet dense peak
    model_matmul_fraction: Sourced            # calibrated basis: a model's GEMMs / the probe's large GEMM
    # --- host and kernel overhead ---
    step_overhead_ms: Sourced                 # fixed cost of one decode step (scheduler, sampler, launch)
    per_layer_overhead_ms: Sourced            # per layer per decode step (launches; ~0 with CUDA graphs)
    prefill_overhead_ms: Sourced              # fixed cost of one prefill forward
    prefill_per_layer_overhead_ms: Sourced    # per layer of one prefill forward
    prefill_host_overlap: bool                # eager loops: host launches overlap GPU work (max, not sum)
    ttft_floor_ms: Sourced                    # request handling before/after the prefill (server, sampling)
    parallel: Parallel
    scheduler: Scheduler | None = None        # None: static batching, or mixed steps for continuous
    # --- memory habits ---
    eager: EagerHabits | None = None
    pool: KVPool | None = None
    gemm_workspace_bytes: SourcedMap          # cuBLAS workspace by target id ('default' for others)
    cuda_context_bytes: Sourced               # per GPU, outside the allocator and outside any pool budget
    cpu: CpuSpec | None = None
    gpu_kernels: GpuKernels | None = None     # engine kernels modelled by GPU generation (llama.cpp)
    builds: list[RuntimeBuild] = Field(default_factory=list)   # older builds with other constants
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not _RUNTIME_ID.match(value):
            raise ValueError(f"'{value}' is not a lowercase runtime id")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.eager is None and self.pool is None:
            raise ValueError("a runtime needs an 'eager' or a 'pool' memory block")
        if "cpu" in self.devices and self.cpu is None:
            raise ValueError("a runtime that runs on CPUs needs a 'cpu' block")
        ids = self.build_ids()
        if len(set(ids)) != len(ids):
            raise ValueError("build ids must be unique")
        return self

    @property
    def tensor_parallel(self) -> bool:
        return self.parallel.split == "tensor"

    def build_ids(self) -> list[str]:
        return [b.id for b in self.builds]

    def for_build(self, build_id: str) -> RuntimeProfile:
        """This profile with an older build's constants (`llama.cpp@2023-12`); its version says which."""
        for b in self.builds:
            if b.id == build_id:
                changed = {k: v for k, v in b if k not in ("id", "version", "version_source", "cpu_repack")
                           and v is not None}
                if b.cpu_repack is False and self.cpu is not None:
                    changed["cpu"] = self.cpu.model_copy(update={"repack": None})
                return self.model_copy(update={**changed, "version": b.version, "version_source": b.version_source,
                                               "builds": []})
        raise KeyError(build_id)

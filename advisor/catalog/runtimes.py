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


class CpuSpec(_Strict):
    """Rough figures for CPU devices (local CPUs, CPU targets without published peaks)."""

    flops_per_cycle: SourcedMap               # fp32 FLOPs per core per cycle by ISA flag
    bf16_speedup: SourcedMap                  # bf16 over fp32 by ISA flag
    bandwidth_gbs: Sourced                    # local-CPU bandwidth when nothing is measured
    bandwidth_efficiency: SourcedMap          # kernel key -> fraction of the CPU's datasheet bandwidth
    matmul_efficiency: SourcedMap             # kernel key -> fraction of the CPU's rough fp32 peak


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
        return self

    @property
    def tensor_parallel(self) -> bool:
        return self.parallel.split == "tensor"

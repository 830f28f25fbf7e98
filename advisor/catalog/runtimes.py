"""Runtime constants (catalog/runtimes.yaml): efficiencies, overheads and memory habits of a serving stack.

Every number carries the text of where it came from, so an estimate can say why it is what it is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    """One constant and its provenance (a measurement, a datasheet, a code reading)."""

    value: float = Field(ge=0)
    source: str = Field(min_length=8)


class SourcedMap(_Strict):
    """A small table of constants sharing one provenance (e.g. per model_type, per ISA flag)."""

    values: dict[str, float]
    source: str = Field(min_length=8)

    def get(self, key: str | None, default: float = 0.0) -> float:
        if key is not None and key in self.values:
            return self.values[key]
        return self.values.get("default", default)


class QuantSettings(_Strict):
    """How quantised formats store their weights (used for int8/int4 weight bytes)."""

    scale_bytes: float = Field(gt=0)          # one scale per output channel (int8) or per group (int4)
    zero_bytes: float = Field(ge=0)           # int4 zero point per group
    default_group_size: int = Field(gt=0)     # when formats.yaml gives none
    unquantised_bytes: float = Field(gt=0)    # embeddings, LM head, norms stay in 16-bit
    source: str = Field(min_length=8)


class DeviceSupport(_Strict):
    """The kinds of device a runtime profile describes; a pair outside them is refused, not estimated."""

    kinds: list[Literal["gpu", "cpu"]] = Field(min_length=1)
    source: str = Field(min_length=8)


class RuntimeProfile(_Strict):
    id: Literal["transformers", "vllm"]
    description: str
    devices: DeviceSupport | None = None      # None: every kind of device
    # --- compute and bandwidth (fractions of datasheet peaks) ---
    gemm_efficiency: Sourced                  # large GEMM / datasheet dense peak
    model_matmul_fraction: Sourced            # a model's prefill / large-GEMM rate
    bandwidth_efficiency: Sourced             # achievable / datasheet memory bandwidth
    # --- host overhead ---
    step_overhead_ms: Sourced                 # fixed cost of one decode step
    per_layer_overhead_ms: Sourced            # host cost per layer per decode step
    prefill_per_layer_overhead_ms: Sourced    # host cost per layer of one prefill forward
    # --- memory-bound elementwise traffic of a prefill (element passes: reads + writes) ---
    hidden_passes_per_layer: SourcedMap       # per model_type, over batch x tokens x hidden
    ffn_passes_per_layer: Sourced             # over batch x tokens x ffn
    eager_score_passes: Sourced               # over the P x P scores of eager attention, per head
    logits_passes: SourcedMap                 # per model_type, over batch x positions x vocab
    # --- memory habits ---
    logits_all_positions: bool                # prefill computes logits for every prompt position
    retained_outputs: Sourced                 # earlier forward outputs still alive while the next runs
    extra_logits_copies: SourcedMap           # per model_type: transient copies of the logits (softcap)
    eager_attention_types: list[str] = Field(default_factory=list)  # model_types without SDPA/flash
    attention_score_copies: Sourced           # live P x P score tensors in eager attention, in fp16 units
    hidden_live_copies: Sourced               # batch x tokens x hidden tensors alive at the LM head
    mlp_live_intermediates: Sourced           # batch x tokens x ffn tensors alive at once in the MLP
    gemm_workspace_bytes: SourcedMap          # cuBLAS workspace by target id ('default' for others)
    cuda_context_bytes: Sourced               # per GPU, outside the allocator
    allocator_slack_fraction: Sourced         # reserved beyond allocated, as a fraction of peak
    offload_bandwidth_gbs: Sourced            # host->device for offloaded weights
    host_ram_usable_fraction: Sourced
    # --- vllm pool ---
    gpu_memory_utilization: Sourced | None = None
    max_num_batched_tokens: Sourced | None = None
    max_num_seqs: Sourced | None = None
    cuda_graph_bytes: Sourced | None = None
    # --- quantised formats, CPU spec ---
    quantization: QuantSettings
    cpu_flops_per_cycle: SourcedMap           # fp32 FLOPs per core per cycle by ISA flag
    cpu_bf16_speedup: SourcedMap              # bf16 over fp32 by ISA flag
    cpu_bandwidth_gbs: Sourced                # rough local-CPU bandwidth when nothing is measured

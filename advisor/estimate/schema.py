"""The estimate's public JSON schema (schema_version 1) and the measured inputs that calibrate it.

Every figure carries its basis:
  spec        datasheet peaks x documented efficiencies
  calibrated  the same formulas fed with rates measured by the probes on this machine
  measured    timed directly (architecture probe or real-model probe)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ESTIMATE_SCHEMA_VERSION = 1
Basis = Literal["measured", "calibrated", "spec"]
Verdict = Literal["fits", "fits-with-offload", "does-not-fit"]
Bound = Literal["compute", "memory-bandwidth", "step-overhead", "interconnect"]
Scheduling = Literal["static", "continuous", "open-loop", "saturated"]


class MeasuredRates(BaseModel):
    """What the hardware microprobes measured on the local device."""

    device: str                                  # "cuda:0", "cpu"
    matmul_tflops: dict[str, float]              # dtype ("fp32", "bf16", "fp16") -> achieved TFLOPS
    bandwidth_gbs: float                         # achieved device memory bandwidth (read + write, GB/s)
    decode_gbs: dict[str, float] = Field(default_factory=dict)  # dtype -> weight GB/s of a 1-token matmul
    step_overhead_ms: float                      # fixed cost of one framework step (kernel launch path)
    per_layer_overhead_ms: float | None = None   # host overhead per transformer layer per step
    torch_version: str | None = None
    fingerprint: str | None = None


class Spread(BaseModel):
    """Robust statistics of repeated timings, in milliseconds."""

    n: int
    p50: float
    p95: float
    min: float
    max: float
    mean: float
    stdev: float

    @classmethod
    def from_values(cls, values_ms: list[float]) -> Spread:
        import statistics

        vals = sorted(values_ms)
        if not vals:
            raise ValueError("no timings")

        def pct(q: float) -> float:
            k = (len(vals) - 1) * q
            lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
            return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)

        return cls(n=len(vals), p50=pct(0.5), p95=pct(0.95), min=vals[0], max=vals[-1],
                   mean=statistics.fmean(vals), stdev=statistics.pstdev(vals) if len(vals) > 1 else 0.0)


class LatencyMeasurement(BaseModel):
    """Latency of a whole model on this machine, from the architecture or real-model probe."""

    model: str
    format: str
    device: str
    prompt_tokens: int
    batch: int
    prefill_ms: Spread
    decode_ms_per_token: Spread
    peak_bytes: int | None = None
    joules_per_token: float | None = None
    method: Literal["architecture-probe", "real-model", "llama.cpp-engine"]
    layers_timed: list[int] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class MemoryEstimate(BaseModel):
    weights_bytes: int
    kv_cache_bytes: int
    activations_bytes: int                       # transient buffers at the worst moment (logits, prefill)
    peak_bytes: int                              # weights + kv + activations (max_memory_allocated)
    overhead_bytes: int                          # CUDA context, allocator slack (per device)
    per_device_bytes: int                        # peak share on one device + overhead
    available_bytes: int                         # what one device of the target offers
    offload_bytes: int = 0                       # weights held in CPU RAM (fits-with-offload)
    fits: bool
    verdict: Verdict
    basis: Basis
    terms: dict[str, int] = Field(default_factory=dict)   # named parts of activations_bytes etc.
    fits_with_format: str | None = None          # smallest format that fits, when this one does not
    fits_with_gpus: int | None = None            # GPUs needed at this format, when this one does not
    fits_on_targets: list[str] = Field(default_factory=list)  # named targets that hold it
    explanation: str = ""
    weights_bytes_per_device: int | None = None  # the weights one device holds (split over --gpus)
    kv_pool_bytes: int | None = None             # serving engines: KV pool per device after weights and buffers
    max_concurrent_sequences: int | None = None  # sequences of max_model_len tokens the pool holds
    max_model_len: int | None = None             # the longest sequence the engine is sized for
    memory_fraction: float | None = None         # vLLM gpu_memory_utilization / SGLang mem_fraction_static ...


class LatencyEstimate(BaseModel):
    prefill_ms: float
    decode_ms_per_token: float                   # per stream, at the concurrency below
    ttft_ms: float
    e2e_ms: float                                # p50 of the whole request
    e2e_p95_ms: float                            # p95 where measured; equal to e2e_ms for spec
    tokens_per_s: float                          # generated tokens per second, all sequences together
    concurrency: float = 1.0                     # sequences decoding together
    scheduling: Scheduling = "static"            # how the runtime batches them
    source: Basis
    basis: Basis
    bound: Bound                                 # what limits decode
    rates: dict[str, float] = Field(default_factory=dict)   # the achievable rates the formulas used
    terms: dict[str, float] = Field(default_factory=dict)   # ms per named term
    joules_per_token: float | None = None
    explanation: str = ""


class Estimate(BaseModel):
    schema_version: int = ESTIMATE_SCHEMA_VERSION
    model: str
    target: str
    format: str
    kv_format: str
    runtime: str                                 # catalog/runtimes.yaml id
    runtime_version: str = ""                    # the version the runtime's constants assume
    format_origin: str = "official"              # official | community or self-quantised
    batch: int
    prompt_tokens: int
    new_tokens: int
    gpus: int
    parallel: str = "none"                       # tensor | layer | none: how the model is split over the GPUs
    memory: MemoryEstimate
    latency: LatencyEstimate                     # what it would take even when it does not fit
    notes: list[str] = Field(default_factory=list)

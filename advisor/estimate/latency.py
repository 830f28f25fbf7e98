"""Latency model: prefill and decode from FLOPs, bytes and host overhead (pure functions).

prefill  = max(FLOPs / matmul rate, weight bytes / bandwidth, host overhead)  (host launches overlap GPU work)
decode   = max(bytes per step / bandwidth, FLOPs / rate) + host overhead per step
TTFT = prefill (it yields the first token); e2e = prefill + (new - 1) x decode.
Rates come from datasheet peaks x efficiencies (spec), probe rates (calibrated), or a timed probe (measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.schema import Architecture
from advisor.errors import UsageError
from advisor.estimate.device import DeviceSpec
from advisor.estimate.flops import (decode_step_bytes, decode_step_flops, prefill_activation_traffic,
                                   prefill_flops)
from advisor.estimate.memory import activation_bytes, kv_cache_bytes
from advisor.catalog.runtimes import RuntimeProfile
from advisor.estimate.schema import LatencyEstimate, LatencyMeasurement, MeasuredRates


def compute_dtype(fmt: str) -> str:
    """Weight-only int8/int4 dequantise and multiply in 16-bit, so their rate is the fp16 one."""
    return {"int8": "fp16", "int4": "fp16"}.get(fmt, fmt)


@dataclass(frozen=True)
class Rates:
    tflops: float                 # achievable on a model's matmuls
    bandwidth_gbs: float          # achievable device memory bandwidth
    step_overhead_ms: float
    per_layer_ms: float           # host cost per layer per decode step
    prefill_per_layer_ms: float
    basis: str                    # spec | calibrated
    compute_known: bool = True    # False: no FLOPS peak for this device, compute time left out (lower bound)


def spec_rates(device: DeviceSpec, fmt: str, runtime: RuntimeProfile) -> Rates:
    peak = device.tflops(compute_dtype(fmt))
    if not device.bandwidth_gbs or (not peak and device.kind == "gpu"):
        raise UsageError(f"no datasheet peaks are known for '{device.name}'",
                         hint="let the probes measure it (drop --no-probe) or pass --target ID")
    gemm = runtime.gemm_efficiency.value if device.kind == "gpu" else 1.0  # CPU peak is already a rough spec
    return Rates(tflops=(peak or 0.0) * gemm * runtime.model_matmul_fraction.value, compute_known=bool(peak),
                 bandwidth_gbs=device.bandwidth_gbs * (runtime.bandwidth_efficiency.value if device.kind == "gpu" else 1.0),
                 step_overhead_ms=runtime.step_overhead_ms.value, per_layer_ms=runtime.per_layer_overhead_ms.value,
                 prefill_per_layer_ms=runtime.prefill_per_layer_overhead_ms.value, basis="spec")


def calibrated_rates(rates: MeasuredRates, fmt: str, runtime: RuntimeProfile) -> Rates:
    dtype = compute_dtype(fmt)
    gemm = rates.matmul_tflops.get(dtype)
    if gemm is None and rates.device.startswith("cuda"):
        # on GPUs bf16 and fp16 tensor-core rates are alike; on CPUs they differ by orders of magnitude
        gemm = rates.matmul_tflops.get({"bf16": "fp16", "fp16": "bf16"}.get(dtype, ""))
    gemm = gemm or rates.matmul_tflops.get("fp32")
    if not gemm:
        raise UsageError(f"the probe measured no matmul rate for {dtype}")
    per_layer = rates.per_layer_overhead_ms or 0.0
    # Decode streams the weights through 1-token matmuls: their measured rate for this dtype is the
    # achievable bandwidth (on CPUs it can be far below copy bandwidth for bf16/fp16).
    bandwidth = rates.decode_gbs.get(dtype) or rates.bandwidth_gbs
    # The probe times the kernel-launch path itself; one forward costs the same launches in prefill.
    return Rates(tflops=gemm * runtime.model_matmul_fraction.value, bandwidth_gbs=bandwidth,
                 step_overhead_ms=rates.step_overhead_ms, per_layer_ms=per_layer, prefill_per_layer_ms=per_layer,
                 basis="calibrated")


def prefill_traffic(arch: Architecture, *, fmt: str, batch: int, prompt: int, runtime: RuntimeProfile) -> float:
    eager = arch.model_type in runtime.eager_attention_types
    return prefill_activation_traffic(
        arch, batch=batch, prompt=prompt, act_bytes=activation_bytes(fmt),
        hidden_passes=runtime.hidden_passes_per_layer.get(arch.model_type),
        ffn_passes=runtime.ffn_passes_per_layer.value,
        score_passes=runtime.eager_score_passes.value if eager else 0.0,
        logits_passes=runtime.logits_passes.get(arch.model_type),
        logits_positions=prompt if runtime.logits_all_positions else 1)


def latency_estimate(arch: Architecture, *, fmt: str, weights_bytes: int, kv_element_bytes: int, batch: int, prompt: int,
                     new: int, runtime: RuntimeProfile, rates: Rates, offload_bytes: int = 0,
                     measurement: LatencyMeasurement | None = None) -> LatencyEstimate:
    layers = arch.num_hidden_layers
    bw = rates.bandwidth_gbs * 1e9 if rates.bandwidth_gbs > 0 else float("inf")  # unknown: term left at zero
    # a CPU target may publish no FLOPS peak: its compute time is then left out (a stated lower bound)
    flops_rate = rates.tflops * 1e12 if rates.compute_known else float("inf")
    offload_ms = 1e3 * offload_bytes / (runtime.offload_bandwidth_gbs.value * 1e9) if offload_bytes else 0.0

    pf = prefill_flops(arch, batch=batch, prompt=prompt, logits_all_positions=runtime.logits_all_positions)
    traffic = prefill_traffic(arch, fmt=fmt, batch=batch, prompt=prompt, runtime=runtime)
    pre_gemm = 1e3 * sum(pf.values()) / flops_rate
    pre_traffic = 1e3 * traffic / bw
    pre_compute = pre_gemm + pre_traffic   # elementwise kernels run between the GEMMs on the same stream
    pre_bytes = 1e3 * weights_bytes / bw
    pre_overhead = rates.step_overhead_ms + layers * rates.prefill_per_layer_ms
    prefill = max(pre_compute, pre_bytes, pre_overhead) + offload_ms

    # decode at the average context of the generation
    context = prompt + max(new - 1, 0) // 2
    kv_now = kv_cache_bytes(arch, context, batch, kv_element_bytes)
    step_bytes = decode_step_bytes(weights_bytes, arch, batch=batch, kv_bytes_at_context=kv_now)
    dec_bw = 1e3 * step_bytes / bw
    dec_compute = 1e3 * decode_step_flops(arch, batch=batch, context=context) / flops_rate
    dec_overhead = rates.step_overhead_ms + layers * rates.per_layer_ms
    decode = max(dec_bw, dec_compute) + dec_overhead + offload_ms
    parts = {"compute": dec_compute, "memory-bandwidth": dec_bw + offload_ms, "step-overhead": dec_overhead}
    bound = max(parts, key=parts.get)

    terms = {"prefill_compute_ms": pre_compute, "prefill_gemm_ms": pre_gemm, "prefill_elementwise_ms": pre_traffic,
             "prefill_elementwise_gb": traffic / 1e9, "prefill_weight_read_ms": pre_bytes,
             "prefill_overhead_ms": pre_overhead, "decode_bandwidth_ms": dec_bw, "decode_compute_ms": dec_compute,
             "decode_overhead_ms": dec_overhead, "offload_ms_per_step": offload_ms,
             "prefill_tflop": sum(pf.values()) / 1e12, "prefill_lm_head_tflop": pf["lm_head"] / 1e12,
             "prefill_attention_tflop": pf["attention"] / 1e12, "decode_bytes_per_step_gb": step_bytes / 1e9}
    used = {"matmul_tflops": rates.tflops, "bandwidth_gbs": rates.bandwidth_gbs,
            "step_overhead_ms": rates.step_overhead_ms, "per_layer_overhead_ms": rates.per_layer_ms}
    source = rates.basis
    joules = None
    e2e_p95 = None
    if measurement is not None:
        prefill = measurement.prefill_ms.p50
        decode = measurement.decode_ms_per_token.p50
        e2e_p95 = measurement.prefill_ms.p95 + max(new - 1, 0) * measurement.decode_ms_per_token.p95
        joules = measurement.joules_per_token
        source = "measured"
    e2e = prefill + max(new - 1, 0) * decode
    e2e_p95 = e2e if e2e_p95 is None else e2e_p95
    explanation = _explain(source, bound, parts, decode, measurement)
    if not rates.compute_known and measurement is None:
        explanation += (" No FLOPS peak is published for this device, so compute time is left out: "
                        "prefill and decode are lower bounds; run the CPU probe there for real figures.")
    return LatencyEstimate(prefill_ms=prefill, decode_ms_per_token=decode, ttft_ms=prefill, e2e_ms=e2e,
                           e2e_p95_ms=e2e_p95, tokens_per_s=batch * new / (e2e / 1e3) if e2e > 0 else 0.0,
                           source=source, basis=source, bound=bound, rates=used, terms=terms,
                           joules_per_token=joules, explanation=explanation)


def _explain(source: str, bound: str, parts: dict[str, float], decode: float,
             measurement: LatencyMeasurement | None) -> str:
    roofline = max(parts["compute"], parts["memory-bandwidth"])
    if measurement is not None:
        return (f"Measured on this machine ({measurement.method}, p50 of {measurement.decode_ms_per_token.n} "
                f"decode steps); the roofline alone would say {roofline:.2f} ms per token.")
    basis = ("datasheet peaks x documented efficiencies" if source == "spec"
             else "rates measured by the probes on this machine")
    if bound == "step-overhead":
        return (f"Decode is host-bound: the per-step framework overhead ({parts['step-overhead']:.1f} ms) exceeds the "
                f"roofline ({roofline:.2f} ms); figures from {basis}. Overhead varies run to run, so a local probe "
                "is far more reliable than this figure.")
    return f"Decode is {bound}-bound at {decode:.2f} ms per token; figures from {basis}."

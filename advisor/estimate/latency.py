"""Latency model: prefill and decode from FLOPs, bytes, host overhead and interconnect (pure functions).

decode step = GEMMs + KV cache read / bandwidth (x passes: transformers' torch.cat growth rewrites it)
            + host overhead (fixed + per layer) + tensor-parallel all-reduces or layer hand-offs
prefill     = GEMMs + elementwise traffic / bandwidth + host overhead + communication
GEMMs       = streamed weights / bandwidth + FLOPs / matmul rate for serving engines (their fitted kernels
              do not overlap the two: the TensorRT-LLM TTFT rows rise linearly from a weight-read intercept);
              max(...) of the two for eager loops, whose host launches also overlap GPU work
              (prefill = max(compute, weight read, host)), as fitted on the H100 reference data.
Engines with their own kernels (a runtime's `gpu_kernels`, llama.cpp's CUDA backend) prefill in ubatches:
              per ubatch max(FLOPs / FP16-accumulate rate, FP16 weight read) + (dequantisation + f32 activation
              + attention-score bytes) / bandwidth + host; their rates and decode layer cost follow the GPU's
              compute capability. CPU runtimes with per-thread decode kernels take max(weight read, FLOPs on
              the decode threads) per step; GGUF weights multiply at the ISA's int8 rate, and a build that
              repacks a format's weights (llama.cpp's Q4_0 on AVX2) multiplies its per-thread rates.
TTFT        = the runtime's request floor + waiting for a step + prefill; then serving.py turns steps and
              prefills into per-stream time per output token, end-to-end and throughput at a concurrency.
Rates come from datasheet peaks x runtime efficiencies (spec), probe rates (calibrated), or a timed probe.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.params import param_breakdown
from advisor.catalog.runtimes import RepackSpeedup, RuntimeProfile
from advisor.catalog.schema import Architecture, FormatSpec
from advisor.errors import UsageError
from advisor.estimate import serving
from advisor.estimate.device import DeviceSpec
from advisor.estimate.flops import (
    decode_step_flops,
    ffn_widths,
    moe_read_fraction,
    prefill_activation_traffic,
    prefill_flops,
    score_elements,
)
from advisor.estimate.formats import compute_dtype, embedding_bytes
from advisor.estimate.memory import activation_bytes, kv_cache_bytes
from advisor.estimate.parallel import Link, Split, communication_ms, kv_share
from advisor.estimate.schema import LatencyEstimate, LatencyMeasurement, MeasuredRates

NO_SPLIT = Split(1, "none")


@dataclass(frozen=True)
class Rates:
    tflops: float                 # achievable on a model's matmuls (one device)
    bandwidth_gbs: float          # achievable weight-streaming bandwidth (one device)
    step_overhead_ms: float
    per_layer_ms: float           # host cost per layer per decode step
    prefill_per_layer_ms: float
    basis: str                    # spec | calibrated
    compute_known: bool = True    # False: no FLOPS peak for this device, compute time left out (lower bound)
    kv_bandwidth_gbs: float | None = None   # KV-cache reads (16-bit kernels); None: as bandwidth_gbs
    prefill_overhead_ms: float = 0.0
    ttft_floor_ms: float = 0.0
    dtype: str = "bf16"           # the dtype the matmuls run in
    # CPU runtimes with per-thread decode kernels (llama.cpp): batch-1 decode's FLOP rate on its threads;
    # a decode step then takes the longer of its weight read and its FLOPs (they overlap on a core)
    decode_tflops: float | None = None
    device_kind: str = "gpu"      # gpu | cpu: which of the runtime's kernel models applies


def _cpu_thread_share(device: DeviceSpec, threads: int | None) -> float:
    """The share of the CPU's peak `threads` threads reach (1 when either count is unknown)."""
    if not threads or not device.cores:
        return 1.0
    return min(1.0, threads / device.cores)


def _repack_speedup(repack: RepackSpeedup | None, fmt: FormatSpec, flags: tuple[str, ...]) -> tuple[float, float]:
    """(prefill, decode) rate multipliers of a build's runtime weight repacking; (1, 1) where it does not
    apply (no repacking in the build, another format, a CPU without the kernels' ISA)."""
    if repack is None or fmt.kernel_key not in repack.formats or not set(repack.requires) & set(flags):
        return 1.0, 1.0
    return repack.prefill.value, repack.decode.value


def spec_rates(device: DeviceSpec, fmt: FormatSpec, runtime: RuntimeProfile, *, threads: int | None = None,
               decode_threads: int | None = None) -> Rates:
    """Datasheet peaks x the runtime's efficiencies. `threads` / `decode_threads`: the CPU threads of the
    prefill and of decode (llama.cpp -t / llama-bench), default all the cores the device counts."""
    dtype = compute_dtype(fmt, device.peak_tflops)
    peak = device.tflops(dtype)
    if not device.bandwidth_gbs or (not peak and device.kind == "gpu"):
        raise UsageError(f"no datasheet peaks are known for '{device.name}'",
                         hint="let the probes measure it (drop --no-probe) or pass --target ID")
    keys = (fmt.kernel_key, fmt.family)
    per_layer = runtime.per_layer_overhead_ms.value
    decode_tflops = None
    if device.kind == "gpu":
        bw = runtime.bandwidth_efficiency.lookup(*keys)
        kv = runtime.bandwidth_efficiency.lookup("16bit")
        gk = runtime.gpu_kernels
        if gk is not None:
            # the engine's own kernels: FP16 cuBLAS at the FP16-accumulate rate, by GPU generation
            gen = gk.generation(device.workspace_key)
            if dtype == "fp16":
                peak = (peak or 0.0) * gk.fp16_accumulate_speedup.get(device.workspace_key, 1.0)
            mm = gk.matmul_efficiency.get(gen)
            per_layer = gk.layer_overhead_ms.get(gen, per_layer)
        else:
            mm = runtime.matmul_efficiency.lookup(*keys)
    else:
        cpu = runtime.cpu
        if cpu is None:
            raise UsageError(f"the {runtime.id} runtime does not run on CPUs")
        mm = cpu.matmul_efficiency.lookup(*keys)
        bw = cpu.bandwidth_efficiency.lookup(*keys)
        kv = cpu.bandwidth_efficiency.lookup("16bit")
        if fmt.family == "gguf" and cpu.int8_speedup is not None and peak:
            # GGUF quants multiply as int8 dot products: the ISA's int8 rate, not its fp32 FMA rate
            table = cpu.int8_speedup
            flags = set(device.flags)
            peak *= max([v for f, v in table.values.items() if f in flags and f != "default"],
                        default=table.get(None, 1.0))
        pre_x, dec_x = _repack_speedup(cpu.repack, fmt, device.flags)
        if peak and cpu.decode_compute_fraction is not None:
            decode_tflops = (peak * mm * dec_x * cpu.decode_compute_fraction.value
                             * _cpu_thread_share(device, decode_threads))
        mm *= pre_x
        peak = (peak or 0.0) * _cpu_thread_share(device, threads)
    return Rates(tflops=(peak or 0.0) * mm, compute_known=bool(peak), bandwidth_gbs=device.bandwidth_gbs * bw,
                 kv_bandwidth_gbs=device.bandwidth_gbs * kv, step_overhead_ms=runtime.step_overhead_ms.value,
                 per_layer_ms=per_layer,
                 prefill_per_layer_ms=runtime.prefill_per_layer_overhead_ms.value,
                 prefill_overhead_ms=runtime.prefill_overhead_ms.value, ttft_floor_ms=runtime.ttft_floor_ms.value,
                 basis="spec", dtype=dtype, decode_tflops=decode_tflops, device_kind=device.kind)


def calibrated_rates(rates: MeasuredRates, fmt: FormatSpec, runtime: RuntimeProfile) -> Rates:
    dtype = compute_dtype(fmt)      # the probes time 16-bit and fp32 kernels only
    gemm = rates.matmul_tflops.get(dtype)
    if gemm is None and rates.device.startswith("cuda"):
        # on GPUs bf16 and fp16 tensor-core rates are alike; on CPUs they differ by orders of magnitude
        gemm = rates.matmul_tflops.get({"bf16": "fp16", "fp16": "bf16"}.get(dtype, ""))
    gemm = gemm or rates.matmul_tflops.get("fp32")
    if not gemm:
        raise UsageError(f"the probe measured no matmul rate for {dtype}")
    # Decode streams the weights through 1-token matmuls: their measured rate for this dtype is the
    # achievable bandwidth (on CPUs it can be far below copy bandwidth for bf16/fp16).
    bandwidth = rates.decode_gbs.get(dtype) or rates.bandwidth_gbs
    if runtime.eager is not None:
        # The probe times the eager kernel-launch path itself; one forward costs the same launches in prefill.
        per_layer = rates.per_layer_overhead_ms or 0.0
        step, pre_layer = rates.step_overhead_ms, per_layer
        pre_fixed = rates.step_overhead_ms

    else:
        # A serving engine's host path (CUDA graphs, its scheduler) is not what the torch probe timed.
        step, per_layer = runtime.step_overhead_ms.value, runtime.per_layer_overhead_ms.value
        pre_layer = runtime.prefill_per_layer_overhead_ms.value
        pre_fixed = runtime.prefill_overhead_ms.value
    return Rates(tflops=gemm * runtime.model_matmul_fraction.value, bandwidth_gbs=bandwidth,
                 kv_bandwidth_gbs=rates.bandwidth_gbs, step_overhead_ms=step, per_layer_ms=per_layer,
                 prefill_per_layer_ms=pre_layer, prefill_overhead_ms=pre_fixed,
                 ttft_floor_ms=runtime.ttft_floor_ms.value, basis="calibrated", dtype=dtype,
                 device_kind="gpu" if rates.device.startswith("cuda") else "cpu")


def prefill_traffic(arch: Architecture, *, fmt: str, batch: int, prompt: int, runtime: RuntimeProfile) -> float:
    """Elementwise bytes of an eager prefill; engines with fused kernels fold them into their efficiency."""
    eager = runtime.eager
    if eager is None:
        return 0.0
    scores = arch.model_type in eager.eager_attention_types
    return prefill_activation_traffic(
        arch, batch=batch, prompt=prompt, act_bytes=activation_bytes(fmt),
        hidden_passes=eager.hidden_passes_per_layer.get(arch.model_type),
        ffn_passes=eager.ffn_passes_per_layer.value,
        score_passes=eager.eager_score_passes.value if scores else 0.0,
        logits_passes=eager.logits_passes.get(arch.model_type),
        logits_positions=prompt if runtime.logits_all_positions else 1)


def streamed_weight_bytes(arch: Architecture, fmt: FormatSpec, weights_bytes: int, batch: float) -> float:
    """Weight bytes one decode step reads: all but the input embedding table (one row per token is
    gathered), and for MoE only the experts the batch's tokens route to (expected count)."""
    return float(weights_bytes - embedding_bytes(arch, fmt)) * moe_read_fraction(arch, batch)


@dataclass(frozen=True)
class Model:
    """Everything the step and prefill functions need, bound once per estimate."""

    arch: Architecture
    fmt: FormatSpec
    weights_bytes: int
    kv_element_bytes: int
    runtime: RuntimeProfile
    rates: Rates
    split: Split = NO_SPLIT
    link: Link | None = None
    offload_ms: float = 0.0

    @property
    def _bw(self) -> float:
        return self.rates.bandwidth_gbs * 1e9 if self.rates.bandwidth_gbs > 0 else float("inf")

    @property
    def _kv_bw(self) -> float:
        kv = self.rates.kv_bandwidth_gbs if self.rates.kv_bandwidth_gbs is not None else self.rates.bandwidth_gbs
        return kv * 1e9 if kv > 0 else float("inf")

    @property
    def _rate(self) -> float:
        # a CPU target may publish no FLOPS peak: its compute time is then left out (a stated lower bound)
        return self.rates.tflops * 1e12 if self.rates.compute_known and self.rates.tflops > 0 else float("inf")

    def decode_terms(self, batch: float, context: float) -> dict[str, float]:
        a, sp = self.arch, self.split
        weights = streamed_weight_bytes(a, self.fmt, self.weights_bytes, batch) / sp.tensor
        # tensor ranks each read their KV heads; a layer split visits every device in turn (all of it per step)
        kv = batch * kv_cache_bytes(a, max(1, int(context)), 1, self.kv_element_bytes) / (
            kv_share(a, sp) if sp.kind == "tensor" else 1)
        passes = self.runtime.eager.kv_cache_passes.value if self.runtime.eager else 1.0
        flops = batch * decode_step_flops(a, batch=1, context=int(context)) / sp.tensor
        w_ms, f_ms = 1e3 * weights / self._bw, 1e3 * flops / self._rate
        kv_ms = 1e3 * passes * kv / self._kv_bw
        host = self.rates.step_overhead_ms + a.num_hidden_layers * self.rates.per_layer_ms
        comm = communication_ms(a, self.runtime, sp, self.link, tokens=batch)
        if self.rates.decode_tflops:
            # CPU decode threads: each core streams its rows while it multiplies them, the slower one wins
            f_ms = 1e3 * flops / (self.rates.decode_tflops * 1e12)
            gemm = max(w_ms, f_ms)
        else:
            gemm = max(w_ms, f_ms) if self.runtime.prefill_host_overlap else w_ms + f_ms
        total = gemm + kv_ms + host + comm + self.offload_ms
        return {"weights_ms": w_ms, "compute_ms": f_ms, "kv_ms": kv_ms, "host_ms": host, "comm_ms": comm,
                "total_ms": total, "bytes": weights + passes * kv}

    def step_ms(self, batch: float, context: float) -> float:
        return self.decode_terms(batch, context)["total_ms"]

    def prefill_terms(self, batch: int, prompt: int) -> dict[str, float]:
        a, sp, rt = self.arch, self.split, self.runtime
        if rt.gpu_kernels is not None and self.rates.device_kind == "gpu":
            return self._ubatched_prefill_terms(batch, prompt)
        pf = prefill_flops(a, batch=batch, prompt=prompt, logits_all_positions=rt.logits_all_positions)
        flops = sum(pf.values()) / sp.tensor
        traffic = prefill_traffic(a, fmt=self.fmt.id, batch=batch, prompt=prompt, runtime=rt) / sp.tensor
        gemm = 1e3 * flops / self._rate
        elementwise = 1e3 * traffic / self._bw
        compute = gemm + elementwise      # elementwise kernels run between the GEMMs on the same stream
        weights = 1e3 * (self.weights_bytes / sp.tensor) / self._bw
        host = self.rates.prefill_overhead_ms + a.num_hidden_layers * self.rates.prefill_per_layer_ms
        comm = communication_ms(a, rt, sp, self.link, tokens=batch * prompt, act_bytes=activation_bytes(self.fmt.id))
        if rt.prefill_host_overlap:
            total = max(compute, weights, host)      # host launches overlap GPU work
        else:
            total = compute + weights + host
        total += comm + self.offload_ms
        return {"gemm_ms": gemm, "elementwise_ms": elementwise, "compute_ms": compute, "weights_ms": weights,
                "host_ms": host, "comm_ms": comm, "total_ms": total, "traffic": traffic,
                "tflop": sum(pf.values()) / 1e12, "lm_head_tflop": pf["lm_head"] / 1e12,
                "attention_tflop": pf["attention"] / 1e12}

    def _ubatched_prefill_terms(self, batch: int, prompt: int) -> dict[str, float]:
        """An engine that runs its own kernels (llama.cpp CUDA, runtimes.py GpuKernels): the prompt in ubatches;
        each ubatch's GEMMs read an FP16 copy of the weights (dequantised first unless the ubatch is small
        enough for the quantised kernels) and its f32 activations and attention scores travel through memory
        between the kernels; a GEMM takes the longer of its FLOPs and reading its weights."""
        a, sp, rt = self.arch, self.split, self.runtime
        gk = rt.gpu_kernels
        pb = param_breakdown(a)
        linear = pb.matmul_params_active - pb.lm_head_matmul       # weights the layers multiply
        quantised = not self.fmt.is_float
        ub = max(1, int(gk.ubatch_tokens.value))
        act = gk.activation_bytes
        per_token = (act.get("hidden") * a.hidden_size * a.num_hidden_layers + act.get("ffn") * ffn_widths(a)
                     + act.get("kv") * sum(s.kv_heads * a.head_size for s in a.layer_plan() if s.keeps_kv))
        weights = streamed_weight_bytes(a, self.fmt, self.weights_bytes, batch * min(prompt, ub))
        gemm = traffic = weight_ms = score_el = 0.0
        done, chunks = 0, 0
        while done < prompt:
            n = min(ub, prompt - done)
            tokens = batch * n
            flops = 2.0 * tokens * linear + 2.0 * batch * pb.lm_head_matmul * (1 if done + n == prompt else 0)
            scores = score_elements(a, batch=batch, prompt=n, context_start=done)
            flops += 4 * a.head_size * scores                      # QK^T and PV over the whole rows
            small = quantised and n <= gk.mmq_max_batch.value
            fp16_weights = weights if (small or not quantised) else 2.0 * linear
            dequant = 0.0 if (small or not quantised) else weights + gk.dequantise_write_bytes.value * linear
            f_ms = 1e3 * flops / sp.tensor / self._rate
            w_ms = 1e3 * fp16_weights / sp.tensor / self._bw
            gemm += max(f_ms, w_ms)
            weight_ms += w_ms
            traffic += (dequant + tokens * per_token + gk.score_bytes.value * scores) / sp.tensor
            score_el += scores
            done += n
            chunks += 1
        elementwise = 1e3 * traffic / self._kv_bw
        host = chunks * (self.rates.prefill_overhead_ms + a.num_hidden_layers * self.rates.prefill_per_layer_ms)
        comm = communication_ms(a, rt, sp, self.link, tokens=batch * prompt, act_bytes=activation_bytes(self.fmt.id))
        compute = gemm + elementwise
        total = compute + host + comm + self.offload_ms
        pf = prefill_flops(a, batch=batch, prompt=prompt, logits_all_positions=rt.logits_all_positions)
        return {"gemm_ms": gemm, "elementwise_ms": elementwise, "compute_ms": compute, "weights_ms": weight_ms,
                "host_ms": host, "comm_ms": comm, "total_ms": total, "traffic": traffic,
                "tflop": sum(pf.values()) / 1e12, "lm_head_tflop": pf["lm_head"] / 1e12,
                "attention_tflop": 4 * a.head_size * score_el / 1e12, "ubatches": chunks}

    def prefill_ms(self, batch: int, prompt: int) -> float:
        return self.prefill_terms(batch, prompt)["total_ms"]

    def prefill_extra_ms(self, prompt: int) -> float:
        """What one request's prefill adds to a running decode step it rides in (continuous batching):
        its compute and communication; the weights are streamed by the step anyway."""
        t = self.prefill_terms(1, prompt)
        return t["compute_ms"] + t["comm_ms"]


def default_mode(runtime: RuntimeProfile) -> serving.Mode:
    return "static" if runtime.batching == "static" else "continuous"


def latency_estimate(arch: Architecture, *, fmt: FormatSpec, weights_bytes: int, kv_element_bytes: int, batch: int,
                     prompt: int, new: int, runtime: RuntimeProfile, rates: Rates, offload_bytes: int = 0,
                     measurement: LatencyMeasurement | None = None, split: Split = NO_SPLIT,
                     link: Link | None = None, mode: serving.Mode | None = None, request_rate: float | None = None,
                     scheduler_steps: int = 1, max_concurrency: float | None = None) -> LatencyEstimate:
    offload_ms = 0.0
    if offload_bytes:
        bw = runtime.eager.offload_bandwidth_gbs.value if runtime.eager else 25.0
        offload_ms = 1e3 * offload_bytes / (bw * 1e9)
    m = Model(arch, fmt, weights_bytes, kv_element_bytes, runtime, rates, split, link, offload_ms)
    work = serving.Workload(batch=batch, prompt=prompt, new=new, mode=mode or default_mode(runtime),
                            request_rate=request_rate, scheduler_steps=scheduler_steps)
    served = serving.serve(m.step_ms, m.prefill_ms, work, rates.ttft_floor_ms, max_concurrency,
                           extra=m.prefill_extra_ms)
    n = served.concurrency
    context = prompt + max(new - 1, 0) / 2
    dec = m.decode_terms(n, context)
    pre = m.prefill_terms(int(round(n)) if work.mode == "static" else 1, prompt)
    gemm_compute_bound = dec["compute_ms"] > dec["weights_ms"]
    parts = {"compute": dec["compute_ms"] if gemm_compute_bound else 0.0,
             "memory-bandwidth": (0.0 if gemm_compute_bound else dec["weights_ms"]) + dec["kv_ms"] + offload_ms,
             "step-overhead": dec["host_ms"], "interconnect": dec["comm_ms"]}
    bound = max(parts, key=parts.get)

    prefill, decode, ttft, e2e = served.prefill_ms, served.tpot_ms, served.ttft_ms, served.e2e_ms
    tokens_per_s = served.tokens_per_s
    terms = {"prefill_compute_ms": pre["compute_ms"], "prefill_gemm_ms": pre["gemm_ms"],
             "prefill_elementwise_ms": pre["elementwise_ms"], "prefill_elementwise_gb": pre["traffic"] / 1e9,
             "prefill_weight_read_ms": pre["weights_ms"], "prefill_overhead_ms": pre["host_ms"],
             "prefill_comm_ms": pre["comm_ms"], "decode_bandwidth_ms": dec["weights_ms"],
             "decode_kv_ms": dec["kv_ms"], "decode_compute_ms": dec["compute_ms"],
             "decode_overhead_ms": dec["host_ms"], "decode_comm_ms": dec["comm_ms"],
             "decode_step_ms": served.step_ms, "prefill_interference_ms": served.interference_ms,
             "ttft_floor_ms": rates.ttft_floor_ms, "offload_ms_per_step": offload_ms,
             "prefill_tflop": pre["tflop"], "prefill_lm_head_tflop": pre["lm_head_tflop"],
             "prefill_attention_tflop": pre["attention_tflop"], "decode_bytes_per_step_gb": dec["bytes"] / 1e9,
             "concurrency": n}
    used = {"matmul_tflops": rates.tflops, "bandwidth_gbs": rates.bandwidth_gbs,
            "step_overhead_ms": rates.step_overhead_ms, "per_layer_overhead_ms": rates.per_layer_ms}
    source = rates.basis
    joules = None
    e2e_p95 = None
    if measurement is not None:
        prefill = ttft = measurement.prefill_ms.p50
        decode = measurement.decode_ms_per_token.p50
        e2e = prefill + max(new - 1, 0) * decode
        e2e_p95 = measurement.prefill_ms.p95 + max(new - 1, 0) * measurement.decode_ms_per_token.p95
        joules = measurement.joules_per_token
        tokens_per_s = batch * new / (e2e / 1e3) if e2e > 0 else 0.0
        source = "measured"
    e2e_p95 = e2e if e2e_p95 is None else e2e_p95
    explanation = _explain(source, bound, parts, decode, measurement, runtime, work.mode, n)
    if not rates.compute_known and measurement is None:
        explanation += (" No FLOPS peak is published for this device, so compute time is left out: "
                        "prefill and decode are lower bounds; run the CPU probe there for real figures.")
    return LatencyEstimate(prefill_ms=prefill, decode_ms_per_token=decode, ttft_ms=ttft, e2e_ms=e2e,
                           e2e_p95_ms=e2e_p95, tokens_per_s=tokens_per_s, source=source, basis=source,
                           bound=bound, rates=used, terms=terms, joules_per_token=joules,
                           concurrency=n, scheduling=work.mode, explanation=explanation)


def _explain(source: str, bound: str, parts: dict[str, float], decode: float,
             measurement: LatencyMeasurement | None, runtime: RuntimeProfile, mode: str, n: float) -> str:
    roofline = parts["compute"] + parts["memory-bandwidth"]
    if measurement is not None:
        return (f"Measured on this machine ({measurement.method}, p50 of {measurement.decode_ms_per_token.n} "
                f"decode steps); the roofline alone would say {roofline:.2f} ms per token.")
    basis = ("datasheet peaks x documented efficiencies" if source == "spec"
             else "rates measured by the probes on this machine")
    load = (f"{n:g} sequences decoding together ({'continuous batching' if mode != 'static' else 'one static batch'})"
            if n > 1 else "one sequence")
    if bound == "step-overhead":
        return (f"Decode is host-bound: {runtime.id}'s per-step overhead ({parts['step-overhead']:.1f} ms) exceeds "
                f"the roofline ({roofline:.2f} ms); {load}; figures from {basis}. Overhead varies run to run, "
                "so a local probe is far more reliable than this figure.")
    return f"Decode is {bound}-bound at {decode:.2f} ms per token per stream ({load}); figures from {basis}."

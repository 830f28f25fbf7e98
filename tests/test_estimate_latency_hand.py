"""The latency model's formulas (advisor/estimate/latency.py), each term worked by hand on tiny() and round-number
rates, asserted to 1e-13 relative: thread shares, datasheet and probe rates, the decode step, the eager and engine
prefills, the ubatched prefill of an engine's own kernels, and how latency_estimate composes them (context,
scheduling, offload, which bound is named, the explanation). Rates are built directly so every figure below
is the formula's, not a fixture's by accident; the fixture runtimes live in tests/fixtures/estimate*/.

tiny(): hidden 64, 2 layers, 4 heads of 16, 2 KV heads, gated MLP 128, vocab 1000, tied head.

Mutants of latency.py (benchmarks/mutation.py) that no test can kill, being equivalent:
  spec_rates, GPU kernels: `(peak or 0.0)` -> `(peak or 1.0)`: a GPU without a peak has raised already.
  latency_estimate: `max(new - 1, 0)` -> `max(new - 1, 1)` in the average context: it moves the context by
  half a token for new <= 1, and decode counts whole tokens (int(context)).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from advisor.catalog.loader import load_catalog
from advisor.catalog.runtimes import RepackSpeedup, RuntimeBuild, Sourced, SourcedMap
from advisor.errors import UsageError
from advisor.estimate.device import DeviceSpec
from advisor.estimate.latency import (
    Model,
    Rates,
    _cpu_thread_share,
    calibrated_rates,
    latency_estimate,
    prefill_traffic,
    spec_rates,
    streamed_weight_bytes,
)
from advisor.estimate.parallel import Link, Split
from advisor.estimate.schema import LatencyMeasurement, MeasuredRates, Spread
from tests.archs import tiny

FIX = Path(__file__).parent / "fixtures"
REL = 1e-13

# tiny()'s counts, by hand (tests/archs.py)
LINEAR = 73_728            # weights the layers multiply: 2 x (64x64 + 2 x 64x32 + 64x64 + 3 x 64x128)
HEAD = 64_000              # LM head (tied to the embedding): 1000 x 64
WEIGHTS = 276_096          # 138,048 parameters x 2 bytes
KV_TOKEN = 256             # K and V bytes per token per sequence: 2 layers x 2 x 2 KV heads x 16 x 2 bytes
PER_KEY = 4 * 4 * 16       # attention FLOPs per query-key pair per layer: (QK^T + PV) x 4 heads x head_dim 16
ACT_TOKEN = 10 * 64 * 2 + 5 * 256   # eager fixture: 10 hidden passes x 64 x 2 layers + 5 FFN passes x (2 x 128)


def decode_flops(context: int) -> int:
    """One token after `context` others: every weight twice, the LM head, context + 1 keys on both layers."""
    return 2 * LINEAR + 2 * HEAD + PER_KEY * 2 * (context + 1)


def approx(x):
    return pytest.approx(x, rel=REL, abs=0)


def rates(**over) -> Rates:
    """0.5 TFLOPS, 250 GB/s, 1.5 ms per step + 0.25 per layer, 0.125 ms per layer in prefill; the fields not
    given keep Rates' defaults (compute known, KV at the weight bandwidth, no prefill overhead, no floor)."""
    base = dict(tflops=0.5, bandwidth_gbs=250.0, step_overhead_ms=1.5, per_layer_ms=0.25,
                prefill_per_layer_ms=0.125, basis="spec")
    base.update(over)
    return Rates(**base)


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX / "estimate"], include_builtin=False, include_env=False)
    assert not problems
    return catalog


@pytest.fixture(scope="module")
def kcat():
    """llama.cpp with its own GPU kernels by generation and int8 CPU kernels (estimate-kernels fixture)."""
    catalog, problems, _ = load_catalog([FIX / "estimate-kernels" / "runtimes.yaml", FIX / "estimate" / "formats.yaml"],
                                        include_builtin=False, include_env=False)
    assert not problems
    return catalog


def sourced(value: float) -> Sourced:
    return Sourced(value=value, source="test value")


def table(values: dict[str, float]) -> SourcedMap:
    return SourcedMap(values=values, source="test value")


GPU = DeviceSpec(id="fx", name="fx", kind="gpu", memory_bytes=10**11, count=1, bandwidth_gbs=1000,
                 peak_tflops={"bf16": 100, "fp16": 50, "fp32": 10})
CPU8 = DeviceSpec(id="c8", name="c8", kind="cpu", memory_bytes=10**11, count=1, bandwidth_gbs=100,
                  peak_tflops={"fp32": 1.0}, cores=8, flags=("avx2",))


def kernel_gpu(target: str) -> DeviceSpec:
    return DeviceSpec(id=target, name=target, kind="gpu", memory_bytes=10**10, count=1, bandwidth_gbs=1000,
                      peak_tflops={"fp16": 100, "bf16": 100, "fp32": 10}, workspace_key=target)


# ---- rates ----

def test_cpu_thread_share_is_threads_over_cores_capped_at_one():
    assert _cpu_thread_share(CPU8, 2) == 0.25                     # 2 / 8
    assert _cpu_thread_share(CPU8, 8) == 1.0
    assert _cpu_thread_share(CPU8, 16) == 1.0                     # more threads than cores: still the whole peak
    assert _cpu_thread_share(CPU8, None) == 1.0                   # unknown thread count: all cores
    assert _cpu_thread_share(dataclasses.replace(CPU8, cores=None), 4) == 1.0   # unknown cores


def test_spec_rates_of_an_engine_without_its_own_kernels(cat):
    vllm, f = cat.runtimes["vllm"], cat.formats
    r = spec_rates(GPU, f["int4"], vllm)
    # int4 is weight-only: the fp16 peak 50 x matmul 0.25; weights at the int4 kernel's 0.25 of 1000 GB/s, the
    # 16-bit KV cache at the default 0.5
    assert r == Rates(tflops=12.5, bandwidth_gbs=250.0, kv_bandwidth_gbs=500.0, step_overhead_ms=1.0,
                      per_layer_ms=0.0, prefill_per_layer_ms=0.0, prefill_overhead_ms=0.0, ttft_floor_ms=10.0,
                      basis="spec", dtype="fp16", compute_known=True, decode_tflops=None, device_kind="gpu")
    assert spec_rates(GPU, f["bf16"], vllm).tflops == 100 * 0.25


def test_spec_rates_need_a_bandwidth_and_on_gpus_a_flops_peak(cat):
    vllm, tf, bf16 = cat.runtimes["vllm"], cat.runtimes["transformers"], cat.formats["bf16"]
    with pytest.raises(UsageError, match="no datasheet peaks"):
        spec_rates(dataclasses.replace(GPU, bandwidth_gbs=0), bf16, vllm)          # peaks but no bandwidth
    with pytest.raises(UsageError, match="no datasheet peaks"):
        spec_rates(dataclasses.replace(GPU, peak_tflops={}), bf16, vllm)           # bandwidth but no peaks
    with pytest.raises(UsageError, match="no datasheet peaks"):
        spec_rates(dataclasses.replace(CPU8, bandwidth_gbs=0), bf16, tf)
    # a CPU without a FLOPS peak is a stated lower bound: no compute time, nothing raised
    r = spec_rates(dataclasses.replace(CPU8, peak_tflops={}), bf16, tf)
    assert (r.tflops, r.compute_known, r.bandwidth_gbs) == (0.0, False, 100.0)


def test_spec_rates_of_engine_kernels_follow_the_gpu_generation(kcat):
    lcpp, f = kcat.runtimes["llama.cpp"], kcat.formats
    # fx-g is sm89: FP16 accumulate at 2 x the fp16 peak 100, x 0.25; decode layers 0.5 ms
    g = spec_rates(kernel_gpu("fx-g"), f["fp16"], lcpp)
    assert (g.tflops, g.per_layer_ms, g.bandwidth_gbs, g.kv_bandwidth_gbs) == (50.0, 0.5, 500.0, 500.0)
    assert spec_rates(kernel_gpu("fx-g"), f["bf16"], lcpp).tflops == 100 * 0.25      # no FP16-accumulate path
    a = spec_rates(kernel_gpu("fx-a"), f["fp16"], lcpp)                                # sm80: 100 x 1 x 0.5
    assert (a.tflops, a.per_layer_ms) == (50.0, 1.0)
    # a speed-up table without a 'default' row: a GPU it does not name runs at 1 x its fp16 peak
    gk = lcpp.gpu_kernels.model_copy(update={"fp16_accumulate_speedup": table({"fx-g": 2.0})})
    bare = lcpp.model_copy(update={"gpu_kernels": gk})
    assert spec_rates(kernel_gpu("fx-a"), f["fp16"], bare).tflops == 100 * 1.0 * 0.5


def test_spec_rates_of_cpu_kernels_on_their_threads(cat, kcat):
    lcpp, f = kcat.runtimes["llama.cpp"], kcat.formats
    q4 = f["q4_k_m"]
    r = spec_rates(CPU8, q4, lcpp, threads=4, decode_threads=2)
    # GGUF multiplies as int8: AVX2 2 x the fp32 peak 1.0 = 2; prefill on 4/8 cores at matmul 0.5:
    # 2 x 0.5 x 0.5 = 0.5; decode: 2 x 0.5 x decode fraction 0.5 x 2/8 = 0.125; DRAM 100 x 0.5
    assert (r.tflops, r.decode_tflops, r.bandwidth_gbs, r.kv_bandwidth_gbs) == (0.5, 0.125, 50.0, 50.0)
    assert (r.device_kind, r.compute_known, r.dtype) == ("cpu", True, "fp16")
    # the best int8 rate among the flags the CPU has: i8mm 8 beats avx2 2 (all cores): 1 x 8 x 0.5
    assert spec_rates(dataclasses.replace(CPU8, flags=("avx2", "i8mm")), q4, lcpp).tflops == 4.0
    assert spec_rates(dataclasses.replace(CPU8, flags=()), q4, lcpp).tflops == 1 * 1 * 0.5    # the default row
    # float weights: fp32 FMAs, no int8 (1 x 0.5), decode 1 x 0.5 x 0.5 on all cores
    fp16 = spec_rates(CPU8, f["fp16"], lcpp)
    assert (fp16.tflops, fp16.decode_tflops) == (0.5, 0.25)
    # an int8 table without a 'default' row, no matching flag: x 1
    cpu = lcpp.cpu.model_copy(update={"int8_speedup": table({"avx2": 2.0})})
    bare = lcpp.model_copy(update={"cpu": cpu})
    assert spec_rates(dataclasses.replace(CPU8, flags=()), q4, bare).tflops == 1 * 1.0 * 0.5
    # no FLOPS peak: no int8 rate, no decode-thread model, compute left out
    none = spec_rates(dataclasses.replace(CPU8, peak_tflops={}), q4, lcpp, threads=4, decode_threads=2)
    assert (none.tflops, none.compute_known, none.decode_tflops) == (0.0, False, None)
    # a runtime with no int8 or decode-thread tables (the estimate fixture's llama.cpp): 1 x matmul 0.5
    plain = spec_rates(CPU8, cat.formats["q4_k_m"], cat.runtimes["llama.cpp"])
    assert (plain.tflops, plain.decode_tflops, plain.bandwidth_gbs) == (0.5, None, 50.0)
    with pytest.raises(UsageError, match="the vllm runtime does not run on CPUs"):
        spec_rates(CPU8, cat.formats["bf16"], cat.runtimes["vllm"])


def test_a_builds_weight_repacking_multiplies_its_formats_per_thread_rates(kcat):
    lcpp, f = kcat.runtimes["llama.cpp"], kcat.formats
    repack = RepackSpeedup(formats=["gguf_kquant"], requires=["avx2"], prefill=sourced(1.5), decode=sourced(3.0))
    rt = lcpp.model_copy(update={"cpu": lcpp.cpu.model_copy(update={"repack": repack})})
    r = spec_rates(CPU8, f["q4_k_m"], rt, threads=4, decode_threads=2)
    # without: prefill 2 x 0.5 x 4/8 = 0.5, decode 2 x 0.5 x 0.5 x 2/8 = 0.125 (the test above);
    # repacked: prefill x 1.5 = 0.75, decode x 3 = 0.375; the weight read is not changed
    assert (r.tflops, r.decode_tflops, r.bandwidth_gbs) == (0.75, 0.375, 50.0)
    # another format, or a CPU without the kernels' ISA: unchanged
    assert spec_rates(CPU8, f["fp16"], rt).tflops == spec_rates(CPU8, f["fp16"], lcpp).tflops == 0.5
    neon = dataclasses.replace(CPU8, flags=("asimddp",))
    assert spec_rates(neon, f["q4_k_m"], rt).tflops == spec_rates(neon, f["q4_k_m"], lcpp).tflops
    # an older build that predates repacking drops it (its version named), the newer keeps it
    old = RuntimeBuild(id="pre", version="before repacking", version_source="test value", cpu_repack=False)
    before = rt.model_copy(update={"builds": [old]}).for_build("pre")
    assert before.cpu.repack is None and before.version == "before repacking"
    b = spec_rates(CPU8, f["q4_k_m"], before, threads=4, decode_threads=2)
    assert (b.tflops, b.decode_tflops) == (0.5, 0.125)
    assert rt.cpu.repack == repack      # for_build copies; the profile is unchanged


def test_calibrated_rates_take_the_probes_and_the_engines_host_path(cat):
    tf, vllm, f = cat.runtimes["transformers"], cat.runtimes["vllm"], cat.formats
    probe = MeasuredRates(device="cuda:0", matmul_tflops={"bf16": 40.0, "fp32": 10.0}, bandwidth_gbs=400.0,
                          decode_gbs={"bf16": 300.0}, step_overhead_ms=3.0, per_layer_overhead_ms=0.5)
    # eager: the probe's launch path in decode and prefill; matmuls at 40 x model fraction 0.5; weights at the
    # bf16 one-token rate 300, the KV cache at the copy bandwidth 400
    assert calibrated_rates(probe, f["bf16"], tf) == Rates(
        tflops=20.0, bandwidth_gbs=300.0, kv_bandwidth_gbs=400.0, step_overhead_ms=3.0, per_layer_ms=0.5,
        prefill_per_layer_ms=0.5, prefill_overhead_ms=3.0, ttft_floor_ms=0.0, basis="calibrated", dtype="bf16",
        device_kind="gpu")
    # an engine keeps its own host constants (1 ms per step, nothing per layer, a 10 ms floor)
    assert calibrated_rates(probe, f["bf16"], vllm) == Rates(
        tflops=20.0, bandwidth_gbs=300.0, kv_bandwidth_gbs=400.0, step_overhead_ms=1.0, per_layer_ms=0.0,
        prefill_per_layer_ms=0.0, prefill_overhead_ms=0.0, ttft_floor_ms=10.0, basis="calibrated", dtype="bf16",
        device_kind="gpu")
    # fp16 not timed: on a GPU bf16's rate stands in; no fp16 one-token rate: the copy bandwidth
    fp16 = calibrated_rates(probe, f["fp16"], tf)
    assert (fp16.tflops, fp16.bandwidth_gbs) == (20.0, 400.0)
    assert calibrated_rates(probe, f["fp32"], tf).tflops == 10.0 * 0.5
    # on a CPU bf16 does not stand in for fp16: the fp32 rate does
    cpu = probe.model_copy(update={"device": "cpu"})
    c = calibrated_rates(cpu, f["fp16"], tf)
    assert (c.tflops, c.device_kind) == (5.0, "cpu")
    no_layer = probe.model_copy(update={"per_layer_overhead_ms": None})
    assert calibrated_rates(no_layer, f["bf16"], tf).per_layer_ms == 0.0
    with pytest.raises(UsageError, match="the probe measured no matmul rate for bf16"):
        calibrated_rates(probe.model_copy(update={"matmul_tflops": {}}), f["bf16"], tf)


# ---- bytes ----

def test_eager_prefill_traffic(cat):
    tf, vllm = cat.runtimes["transformers"], cat.runtimes["vllm"]
    # llama: 20 tokens x (10 hidden passes x 64 x 2 layers + 5 FFN passes x 256) x 2 bytes, no score passes
    assert prefill_traffic(tiny(), fmt="bf16", batch=2, prompt=10, runtime=tf) == 20 * ACT_TOKEN * 2 == 102_400
    g = tiny(model_type="gemma2")
    # gemma2 (eager attention in the fixture): 20 hidden passes; scores 2 x 4 heads x 2 layers x 10 x 10 = 1,600
    # at 20 passes; logits of all 10 positions: 2 x 10 x 1000 x 6 passes
    tokens = 20 * (20 * 64 * 2 + 5 * 256)
    assert prefill_traffic(g, fmt="bf16", batch=2, prompt=10, runtime=tf) == (tokens + 1600 * 20 + 120_000) * 2
    assert prefill_traffic(g, fmt="fp32", batch=2, prompt=10, runtime=tf) == (tokens + 1600 * 20 + 120_000) * 4
    last_only = tf.model_copy(update={"logits_all_positions": False})
    assert prefill_traffic(g, fmt="bf16", batch=2, prompt=10, runtime=last_only) == (tokens + 32_000 + 12_000) * 2
    assert prefill_traffic(tiny(), fmt="bf16", batch=2, prompt=10, runtime=vllm) == 0.0   # fused kernels


def test_streamed_weights_skip_the_gathered_embedding_and_unrouted_experts(cat):
    bf16 = cat.formats["bf16"]
    # an untied table is gathered one row per token: 1000 x 64 x 2 bytes are not streamed
    assert streamed_weight_bytes(tiny(tie_word_embeddings=False), bf16, 400_000, 1) == 400_000 - 128_000
    assert streamed_weight_bytes(tiny(), bf16, 400_000, 1) == 400_000               # tied: it is the LM head
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    mlp, total = 2 * (4 * 24_576 + 256), 286_016                  # all experts + routers; all parameters
    touched = 4 * (1 - (1 - 2 / 4) ** 2)                          # 2 tokens, top-2 of 4: 3 experts expected
    assert streamed_weight_bytes(moe, bf16, 2 * total, 2) == approx(2 * total * (1 - mlp / total
                                                                                 + mlp / total * touched / 4))


# ---- the decode step ----

def test_decode_step_on_one_device(cat):
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]
    t = Model(tiny(), bf16, WEIGHTS, 2, vllm, rates()).decode_terms(4, 0)
    w = 1e3 * WEIGHTS / 250e9                                     # all weights at 250 GB/s
    f = 1e3 * 4 * decode_flops(0) / 0.5e12                        # 4 sequences at 0.5 TFLOPS
    kv = 1e3 * 4 * KV_TOKEN * 1 / 250e9                           # an empty cache still reads one token's K, V
    host = 1.5 + 2 * 0.25
    assert (t["weights_ms"], t["compute_ms"], t["kv_ms"], t["host_ms"]) == (approx(w), approx(f), approx(kv), host)
    assert t["comm_ms"] == 0.0                                    # one device: no hand-offs
    assert t["total_ms"] == approx(w + f + kv + host)             # an engine's GEMMs: read, then multiply
    assert t["bytes"] == WEIGHTS + 4 * KV_TOKEN
    # the context is counted in whole tokens
    assert Model(tiny(), bf16, WEIGHTS, 2, vllm, rates()).decode_terms(1, 7.9)["kv_ms"] == approx(
        1e3 * KV_TOKEN * 7 / 250e9)


def test_decode_step_split_over_four_tensor_ranks(cat):
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]
    nvlink = Link("nvlink", 400.0)
    m = Model(tiny(), bf16, WEIGHTS, 2, vllm, rates(), Split(4, "tensor"), nvlink, offload_ms=0.25)
    t = m.decode_terms(4, 9)
    w = 1e3 * (WEIGHTS / 4) / 250e9
    f = 1e3 * 4 * decode_flops(9) / 4 / 0.5e12
    kv = 1e3 * (4 * KV_TOKEN * 9 / 2) / 250e9                     # 2 KV heads: split 2 ways, replicated beyond
    # 2 layers x 2 all-reduces of 4 tokens x 64 x 2 bytes: 10 us + 2 x 3/4 of it over 400 / 2 x 0.5 GB/s
    comm = 2 * 2 * (10 / 1e3 + 1e3 * 2 * (4 - 1) / 4 * (4 * 64 * 2) / 100e9)
    assert (t["weights_ms"], t["compute_ms"], t["kv_ms"]) == (approx(w), approx(f), approx(kv))
    assert t["comm_ms"] == approx(comm)
    assert t["total_ms"] == approx(w + f + kv + 2.0 + comm + 0.25)


def test_decode_step_of_an_eager_loop_split_by_layers(cat):
    tf, bf16 = cat.runtimes["transformers"], cat.formats["bf16"]
    passes = tf.eager.kv_cache_passes.model_copy(update={"value": 3.0})
    tf3 = tf.model_copy(update={"eager": tf.eager.model_copy(update={"kv_cache_passes": passes})})
    m = Model(tiny(), bf16, WEIGHTS, 2, tf3, rates(kv_bandwidth_gbs=1000.0), Split(2, "layer"), Link("pcie", 64.0))
    t = m.decode_terms(2, 9)
    w = 1e3 * WEIGHTS / 250e9                                     # every layer in turn: nothing divided
    f = 1e3 * 2 * decode_flops(9) / 0.5e12
    kv = 1e3 * 3 * (2 * KV_TOKEN * 9) / 1000e9                    # torch.cat: 3 passes at the KV bandwidth
    comm = 1 * (100 / 1e3 + 1e3 * (2 * 64 * 2) / 16e9)            # one hand-off: 100 us + 256 B at 64 / 2 x 0.5
    assert (t["weights_ms"], t["compute_ms"], t["kv_ms"], t["comm_ms"]) == (approx(w), approx(f), approx(kv),
                                                                            approx(comm))
    assert t["total_ms"] == approx(max(w, f) + kv + 2.0 + comm)   # eager: launches overlap, the longer wins
    assert t["bytes"] == WEIGHTS + 3 * 2 * KV_TOKEN * 9


def test_cpu_decode_threads_take_the_longer_of_reading_and_multiplying(kcat):
    lcpp, f16 = kcat.runtimes["llama.cpp"], kcat.formats["fp16"]
    r = rates(decode_tflops=0.125, device_kind="cpu")
    t = Model(tiny(), f16, WEIGHTS, 2, lcpp, r).decode_terms(1, 0)
    f = 1e3 * decode_flops(0) / 0.125e12                          # 2.2 us at the decode threads' rate
    w = 1e3 * WEIGHTS / 250e9                                     # 1.1 us
    kv = 1e3 * KV_TOKEN / 250e9
    assert (t["compute_ms"], t["weights_ms"]) == (approx(f), approx(w))
    assert t["total_ms"] == approx(f + kv + 2.0)
    big_weights = Model(tiny(), f16, 10**6, 2, lcpp, r).decode_terms(1, 0)
    assert big_weights["total_ms"] == approx(1e3 * 10**6 / 250e9 + kv + 2.0)   # 4 us of reading wins


def test_zero_rates_mean_unknown_not_instant(cat):
    """A rate of 0 (or an unknown FLOPS peak) leaves that term out; any positive rate, however small, counts."""
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]

    def terms(**over):
        return Model(tiny(), bf16, WEIGHTS, 2, vllm, rates(**over)).decode_terms(1, 9)

    kv_bytes = KV_TOKEN * 9
    assert (terms(bandwidth_gbs=0.0)["weights_ms"], terms(bandwidth_gbs=0.0)["kv_ms"]) == (0.0, 0.0)
    assert terms(bandwidth_gbs=0.5)["weights_ms"] == approx(1e3 * WEIGHTS / 0.5e9)
    assert terms(kv_bandwidth_gbs=0.0)["kv_ms"] == 0.0
    assert terms(kv_bandwidth_gbs=0.5)["kv_ms"] == approx(1e3 * kv_bytes / 0.5e9)
    assert terms(kv_bandwidth_gbs=0.5)["weights_ms"] == approx(1e3 * WEIGHTS / 250e9)
    assert terms(tflops=0.0)["compute_ms"] == 0.0
    assert terms(tflops=5.0, compute_known=False)["compute_ms"] == 0.0
    assert terms(tflops=0.5)["compute_ms"] == approx(1e3 * decode_flops(9) / 0.5e12)


# ---- prefill ----

def test_engine_prefill_over_four_tensor_ranks_adds_its_terms(cat):
    tf, vllm, bf16 = cat.runtimes["transformers"], cat.runtimes["vllm"], cat.formats["bf16"]
    eager_engine = vllm.model_copy(update={"eager": tf.eager})    # no overlap, logits of the last position only
    m = Model(tiny(), bf16, WEIGHTS, 2, eager_engine, rates(prefill_overhead_ms=0.75), Split(4, "tensor"),
              Link("nvlink", 400.0), offload_ms=0.25)
    t = m.prefill_terms(2, 10)
    matmul, head, attention = 2 * 2 * 10 * LINEAR, 2 * 2 * 1 * HEAD, PER_KEY * 2 * 2 * 55   # 10 queries: 55 keys
    gemm = 1e3 * (matmul + head + attention) / 4 / 0.5e12
    elementwise = 1e3 * (20 * ACT_TOKEN * 2 / 4) / 250e9
    weights = 1e3 * (WEIGHTS / 4) / 250e9
    host = 0.75 + 2 * 0.125
    comm = 2 * 2 * (10 / 1e3 + 1e3 * 2 * 3 / 4 * (20 * 64 * 2) / 100e9)     # all 20 tokens' hidden states
    assert (t["gemm_ms"], t["elementwise_ms"], t["weights_ms"], t["host_ms"], t["comm_ms"]) == (
        approx(gemm), approx(elementwise), approx(weights), host, approx(comm))
    assert t["traffic"] == 20 * ACT_TOKEN * 2 / 4
    assert t["compute_ms"] == approx(gemm + elementwise)
    assert t["total_ms"] == approx(gemm + elementwise + weights + host + comm + 0.25)
    assert (t["tflop"], t["lm_head_tflop"], t["attention_tflop"]) == (
        approx((matmul + head + attention) / 1e12), approx(head / 1e12), approx(attention / 1e12))
    # riding in a running step, one request's prefill adds its compute and communication only
    one_gemm = 1e3 * (2 * 10 * LINEAR + 2 * HEAD + PER_KEY * 2 * 55) / 4 / 0.5e12
    one_elementwise = 1e3 * (10 * ACT_TOKEN * 2 / 4) / 250e9
    one_comm = 2 * 2 * (10 / 1e3 + 1e3 * 2 * 3 / 4 * (10 * 64 * 2) / 100e9)
    assert m.prefill_extra_ms(10) == approx(one_gemm + one_elementwise + one_comm)


def test_eager_prefill_takes_the_longest_of_compute_weights_and_host(cat):
    tf, bf16 = cat.runtimes["transformers"], cat.formats["bf16"]
    # one sequence of 10: logits at every position (transformers)
    gemm = 1e3 * (2 * 10 * LINEAR + 2 * 10 * HEAD + PER_KEY * 2 * 55) / 0.5e12     # 5.6 us
    compute = gemm + 1e3 * 10 * ACT_TOKEN * 2 / 250e9                               # + 0.2 us
    host = Model(tiny(), bf16, WEIGHTS, 2, tf, rates()).prefill_terms(1, 10)
    assert host["host_ms"] == 2 * 0.125 and host["total_ms"] == 2 * 0.125          # no fixed prefill overhead
    assert host["compute_ms"] == approx(compute)
    quick = rates(prefill_per_layer_ms=0.001)
    assert Model(tiny(), bf16, WEIGHTS, 2, tf, quick).prefill_ms(1, 10) == approx(compute)
    assert Model(tiny(), bf16, 10**7, 2, tf, quick).prefill_ms(1, 10) == approx(1e3 * 10**7 / 250e9)   # 40 us


def test_engine_kernels_on_a_cpu_prefill_in_one_pass(kcat):
    lcpp, f16 = kcat.runtimes["llama.cpp"], kcat.formats["fp16"]
    t = Model(tiny(), f16, WEIGHTS, 2, lcpp, rates(device_kind="cpu")).prefill_terms(1, 10)
    assert "ubatches" not in t
    gemm = 1e3 * (2 * 10 * LINEAR + 2 * HEAD + PER_KEY * 2 * 55) / 0.5e12
    assert t["total_ms"] == approx(gemm + 1e3 * WEIGHTS / 250e9 + 2 * 0.125)       # no overlap, no eager traffic


# ---- ubatched prefill (an engine's own kernels) ----

Q4_WEIGHTS = 86_280        # 138,048 parameters x 5 bits / 8
PER_TOKEN = 10 * 64 * 2 + 1 * 256 + 2 * (2 * 16) * 2   # f32 traffic per token: hidden, FFN, K and V channels


def test_ubatched_prefill_compute_bound_with_a_dequantised_and_a_small_ubatch(kcat):
    lcpp, q4 = kcat.runtimes["llama.cpp"], kcat.formats["q4_k_m"]
    r = rates(tflops=0.002, bandwidth_gbs=1000.0, kv_bandwidth_gbs=100.0, prefill_overhead_ms=0.25,
              prefill_per_layer_ms=0.5)
    m = Model(tiny(), q4, Q4_WEIGHTS, 2, lcpp, r, Split(2, "layer"), Link("pcie", 64.0), offload_ms=0.25)
    t = m.prefill_terms(2, 12)
    # ubatch 1: 8 tokens x 2 sequences, past mmq_max_batch 4: dequantise (read the quants, write 2 B per
    # multiplied weight), the GEMM reads that FP16 copy. Scores: 2 x 4 heads x 2 layers x 8 rows x 8 keys.
    s1 = 2 * 4 * 2 * 8 * 8
    f1 = 2 * 16 * LINEAR + 4 * 16 * s1                            # QK^T + PV: 4 x head_dim per score
    traffic1 = (Q4_WEIGHTS + 2 * LINEAR) + 16 * PER_TOKEN + 4 * s1
    # ubatch 2: the last 4 tokens, exactly mmq_max_batch: quantised kernels read the quants; the LM head once
    s2 = 2 * 4 * 2 * 4 * 12
    f2 = 2 * 8 * LINEAR + 2 * 2 * HEAD + 4 * 16 * s2
    traffic2 = 8 * PER_TOKEN + 4 * s2
    gemm = 1e3 * f1 / 2e9 + 1e3 * f2 / 2e9                        # both ubatches compute-bound at 2 GFLOP/s
    elementwise = 1e3 * (traffic1 + traffic2) / 100e9             # at the 16-bit (KV) bandwidth
    host = 2 * (0.25 + 2 * 0.5)                                   # per ubatch: fixed + per layer
    comm = 1 * (0 + 1e3 * (24 * 64 * 2) / 16e9)                   # one hand-off of all 24 tokens
    assert t["ubatches"] == 2
    assert t["traffic"] == traffic1 + traffic2 == 280_840
    assert (t["gemm_ms"], t["elementwise_ms"], t["host_ms"], t["comm_ms"]) == (approx(gemm), approx(elementwise),
                                                                               host, approx(comm))
    assert t["weights_ms"] == approx(1e3 * 2 * LINEAR / 1e12 + 1e3 * Q4_WEIGHTS / 1e12)
    assert t["compute_ms"] == approx(gemm + elementwise)
    assert t["total_ms"] == approx(gemm + elementwise + host + comm + 0.25)
    # the whole prompt's FLOPs (causal attention: 12 x 13 / 2 keys a layer); attention as the kernels run it
    matmul, head, attention = 2 * 2 * 12 * LINEAR, 2 * 2 * HEAD, PER_KEY * 2 * 2 * 78
    assert (t["tflop"], t["lm_head_tflop"]) == (approx((matmul + head + attention) / 1e12), approx(head / 1e12))
    assert t["attention_tflop"] == approx(4 * 16 * (s1 + s2) / 1e12)


def test_ubatched_prefill_pays_the_lm_head_in_the_last_ubatch_only(kcat):
    """Weight-bound first ubatch, compute-bound last one: where the LM head's FLOPs fall changes the sum."""
    lcpp, f16 = kcat.runtimes["llama.cpp"], kcat.formats["fp16"]
    m = Model(tiny(), f16, 270_000, 2, lcpp, rates(tflops=0.005, bandwidth_gbs=1.0))
    t = m.prefill_terms(1, 16)
    read = 1e3 * 270_000 / 1e9                                    # 0.27 ms per ubatch at 1 GB/s
    f1 = 2 * 8 * LINEAR + 64 * (4 * 2 * 8 * 8)                    # 0.242 ms at 5 GFLOP/s (0.268 with the head)
    f2 = 2 * 8 * LINEAR + 64 * (4 * 2 * 8 * 16) + 2 * HEAD        # 0.275 ms (0.249 without the head)
    assert 1e3 * (f1 + 2 * HEAD) / 5e9 < read < 1e3 * f2 / 5e9 and 1e3 * (f2 - 2 * HEAD) / 5e9 < read
    assert t["gemm_ms"] == approx(read + 1e3 * f2 / 5e9)
    assert t["weights_ms"] == approx(2 * read)


def test_ubatched_prefill_one_token_at_a_time(kcat):
    lcpp, f16 = kcat.runtimes["llama.cpp"], kcat.formats["fp16"]
    gk = lcpp.gpu_kernels.model_copy(update={"ubatch_tokens": sourced(1)})
    one = lcpp.model_copy(update={"gpu_kernels": gk})
    t = Model(tiny(), f16, WEIGHTS, 2, one, rates()).prefill_terms(1, 3)
    assert (t["ubatches"], t["host_ms"]) == (3, 3 * (2 * 0.125))


def test_ubatched_prefill_over_two_tensor_ranks(kcat):
    lcpp, q4 = kcat.runtimes["llama.cpp"], kcat.formats["q4_k_m"]
    m = Model(tiny(), q4, Q4_WEIGHTS, 2, lcpp, rates(tflops=0.002, bandwidth_gbs=1000.0, kv_bandwidth_gbs=100.0),
              Split(2, "tensor"))
    t = m.prefill_terms(1, 8)
    flops = 2 * 8 * LINEAR + 2 * HEAD + 64 * (4 * 2 * 8 * 8)      # one dequantising ubatch with the LM head
    traffic = (Q4_WEIGHTS + 2 * LINEAR + 8 * PER_TOKEN + 4 * (4 * 2 * 8 * 8)) / 2
    assert t["gemm_ms"] == approx(1e3 * flops / 2 / 2e9)
    assert t["weights_ms"] == approx(1e3 * 2 * LINEAR / 2 / 1e12)
    assert t["traffic"] == traffic
    assert t["total_ms"] == approx(1e3 * flops / 2 / 2e9 + 1e3 * traffic / 100e9 + 2 * 0.125)   # no all-reduces


def test_ubatched_moe_prefill_reads_the_experts_a_ubatch_routes_to(kcat):
    lcpp, f16 = kcat.runtimes["llama.cpp"], kcat.formats["fp16"]
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    mlp, total = 2 * (4 * 24_576 + 256), 286_016
    t = Model(moe, f16, 2 * total, 2, lcpp, rates()).prefill_terms(2, 12)
    touched = 4 * (1 - (1 - 2 / 4) ** 16)                         # a ubatch holds 2 x 8 tokens
    read = float(2 * total) * (1 - mlp / total + mlp / total * touched / 4)
    assert t["weights_ms"] == approx(2 * 1e3 * read / 250e9)


# ---- latency_estimate ----

def test_static_batch_estimate(cat):
    tf, bf16 = cat.runtimes["transformers"], cat.formats["bf16"]
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=WEIGHTS, kv_element_bytes=2, batch=2, prompt=10, new=5,
                           runtime=tf, rates=rates())
    assert (lat.scheduling, lat.concurrency) == ("static", 2)    # transformers batches statically by default
    # decode at the average context 10 + (5 - 1) / 2 = 12
    w, f = 1e3 * WEIGHTS / 250e9, 1e3 * 2 * decode_flops(12) / 0.5e12
    kv = 1e3 * 2 * KV_TOKEN * 12 / 250e9
    step = max(w, f) + kv + 2.0
    assert (lat.terms["decode_kv_ms"], lat.terms["decode_compute_ms"]) == (approx(kv), approx(f))
    assert lat.terms["decode_bytes_per_step_gb"] == approx((WEIGHTS + 2 * KV_TOKEN * 12) / 1e9)
    assert lat.decode_ms_per_token == approx(step)
    # the batch's prefill: 2 x 10 tokens, logits everywhere; the host's 2 x 0.125 ms outlasts the GPU work
    gemm = 1e3 * 2 * (2 * 10 * LINEAR + 2 * 10 * HEAD + PER_KEY * 2 * 55) / 0.5e12
    traffic = 20 * ACT_TOKEN * 2
    assert lat.terms["prefill_compute_ms"] == approx(gemm + 1e3 * traffic / 250e9)
    assert lat.terms["prefill_elementwise_gb"] == approx(traffic / 1e9)
    assert lat.prefill_ms == lat.ttft_ms == 0.25                  # no request floor
    assert lat.e2e_ms == lat.e2e_p95_ms == approx(0.25 + 4 * step)
    assert lat.tokens_per_s == approx(2 * 5 / ((0.25 + 4 * step) / 1e3))
    assert lat.terms["offload_ms_per_step"] == 0.0
    assert lat.bound == "step-overhead"
    assert lat.explanation == (
        f"Decode is host-bound: transformers's per-step overhead (2.0 ms) exceeds the roofline "
        f"({f + kv:.2f} ms); 2 sequences decoding together (one static batch); figures from datasheet peaks x "
        "documented efficiencies. Overhead varies run to run, so a local probe is far more reliable than this figure.")


def test_continuous_batching_estimate(cat):
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=WEIGHTS, kv_element_bytes=2, batch=4, prompt=10, new=5,
                           runtime=vllm, rates=rates())
    assert (lat.scheduling, lat.concurrency) == ("continuous", 4)
    w, f = 1e3 * WEIGHTS / 250e9, 1e3 * 4 * decode_flops(12) / 0.5e12
    step = w + f + 1e3 * 4 * KV_TOKEN * 12 / 250e9 + 2.0
    gemm = 1e3 * (2 * 10 * LINEAR + 2 * HEAD + PER_KEY * 2 * 55) / 0.5e12     # one request, last logits only
    prefill = gemm + w + 2 * 0.125
    assert lat.terms["prefill_compute_ms"] == approx(gemm)
    assert lat.prefill_ms == approx(prefill)
    # three other streams each add one prefill's compute per 5 tokens; a new request waits half a step
    tpot = step + 3 * gemm / 5
    assert lat.decode_ms_per_token == approx(tpot)
    assert lat.ttft_ms == approx(0.5 * step + prefill)
    assert lat.e2e_ms == approx(0.5 * step + prefill + 4 * tpot)
    assert lat.explanation.endswith("; 4 sequences decoding together (continuous batching); figures from datasheet "
                                    "peaks x documented efficiencies. Overhead varies run to run, so a local probe "
                                    "is far more reliable than this figure.")


def test_offloaded_weights_cross_the_host_link_every_step(cat):
    vllm, tf, bf16 = cat.runtimes["vllm"], cat.runtimes["transformers"], cat.formats["bf16"]

    def offload(runtime, nbytes):
        return latency_estimate(tiny(), fmt=bf16, weights_bytes=WEIGHTS, kv_element_bytes=2, batch=1, prompt=10,
                                new=5, runtime=runtime, rates=rates(), offload_bytes=nbytes)

    assert offload(vllm, 10**9).terms["offload_ms_per_step"] == approx(1e3 * 1e9 / 25e9)   # 25 GB/s assumed
    assert offload(tf, 10**9).terms["offload_ms_per_step"] == approx(1e3 * 1e9 / 10e9)     # the eager fixture's
    base, off = offload(vllm, 0), offload(vllm, 10**9)
    assert off.terms["decode_step_ms"] == approx(base.terms["decode_step_ms"] + 40.0)


def test_a_tie_between_compute_and_weight_read_is_memory_bound(cat):
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]
    # one stream at context 10: the step multiplies decode_flops(10) FLOPs at 0.5 TFLOPS and reads the same
    # number of bytes at 500 GB/s: equal times
    flops = decode_flops(10)
    r = rates(bandwidth_gbs=500.0, step_overhead_ms=0.0, per_layer_ms=0.0)
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=flops, kv_element_bytes=2, batch=1, prompt=10, new=1,
                           runtime=vllm, rates=r)
    assert lat.terms["decode_compute_ms"] == lat.terms["decode_bandwidth_ms"] == approx(1e3 * flops / 5e11)
    assert lat.bound == "memory-bandwidth"
    assert lat.explanation == (f"Decode is memory-bandwidth-bound at {lat.decode_ms_per_token:.2f} ms per token per "
                               "stream (one sequence); figures from datasheet peaks x documented efficiencies.")


@pytest.mark.parametrize("compute_ms, read_ms, basis, words", [
    (3.0, 1.0, "spec", "datasheet peaks x documented efficiencies"),
    (1.0, 3.0, "calibrated", "rates measured by the probes on this machine"),
])
def test_the_roofline_a_host_bound_step_is_compared_with(cat, compute_ms, read_ms, basis, words):
    """Roofline = the longer GEMM term + KV read + offload: 3 + 0.5 + 0.25 ms both ways round."""
    vllm, bf16 = cat.runtimes["vllm"], cat.formats["bf16"]
    flops, kv_bytes = decode_flops(1), KV_TOKEN * 1               # one stream at context 1 + 0 / 2
    r = rates(tflops=1e3 * flops / compute_ms / 1e12, bandwidth_gbs=1.0, kv_bandwidth_gbs=1e3 * kv_bytes / 0.5 / 1e9,
              step_overhead_ms=100.0, per_layer_ms=0.0, basis=basis)
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=int(read_ms * 1e6), kv_element_bytes=2, batch=1,
                           prompt=1, new=1, runtime=vllm, rates=r, offload_bytes=6_250_000)   # 0.25 ms at 25 GB/s
    assert (lat.terms["decode_compute_ms"], lat.terms["decode_bandwidth_ms"]) == (approx(compute_ms), approx(read_ms))
    assert lat.terms["decode_kv_ms"] == approx(0.5) and lat.terms["offload_ms_per_step"] == approx(0.25)
    assert lat.bound == "step-overhead" and lat.source == basis
    assert lat.explanation == (
        "Decode is host-bound: vllm's per-step overhead (100.0 ms) exceeds the roofline (3.75 ms); one sequence; "
        f"figures from {words}. Overhead varies run to run, so a local probe is far more reliable than this figure.")


def measured(prefill: float, decode: float) -> LatencyMeasurement:
    def spread(p50, p95):
        return Spread(n=3, p50=p50, p95=p95, min=p50, max=p95, mean=p50, stdev=0.0)

    return LatencyMeasurement(model="fx", format="bf16", device="cuda:0", prompt_tokens=10, batch=2,
                              prefill_ms=spread(prefill, 1.5 * prefill), decode_ms_per_token=spread(decode, 2 * decode),
                              method="architecture-probe", joules_per_token=None)


@pytest.mark.parametrize("prefill, decode, new, e2e, e2e_p95", [
    (100.0, 10.0, 5, 100 + 4 * 10, 150 + 4 * 20),                # then 4 more tokens
    (100.0, 10.0, 1, 100.0, 150.0),                              # the first token only
    (0.5, 10.0, 1, 0.5, 0.75),
])
def test_a_measurement_replaces_the_roofline(cat, prefill, decode, new, e2e, e2e_p95):
    tf, bf16 = cat.runtimes["transformers"], cat.formats["bf16"]
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=WEIGHTS, kv_element_bytes=2, batch=2, prompt=10, new=new,
                           runtime=tf, rates=rates(compute_known=False), measurement=measured(prefill, decode))
    assert (lat.source, lat.prefill_ms, lat.ttft_ms, lat.decode_ms_per_token) == ("measured", prefill, prefill, decode)
    assert (lat.e2e_ms, lat.e2e_p95_ms) == (approx(e2e), approx(e2e_p95))
    assert lat.tokens_per_s == approx(2 * new / (e2e / 1e3))
    # the roofline it replaces: memory-bound (no compute term), weights + KV at the average context
    roofline = 1e3 * WEIGHTS / 250e9 + 1e3 * 2 * KV_TOKEN * (10 + (new - 1) // 2) / 250e9
    assert lat.explanation == ("Measured on this machine (architecture-probe, p50 of 3 decode steps); the roofline "
                               f"alone would say {roofline:.2f} ms per token.")


def test_a_measurement_of_nothing_has_no_throughput(cat):
    tf, bf16 = cat.runtimes["transformers"], cat.formats["bf16"]
    lat = latency_estimate(tiny(), fmt=bf16, weights_bytes=WEIGHTS, kv_element_bytes=2, batch=2, prompt=10, new=1,
                           runtime=tf, rates=rates(), measurement=measured(0.0, 0.0))
    assert (lat.e2e_ms, lat.tokens_per_s) == (0.0, 0.0)


def test_rates_and_models_are_values():
    r = rates()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.tflops = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        Model(tiny(), None, WEIGHTS, 2, None, r).offload_ms = 1.0

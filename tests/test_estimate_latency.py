"""FLOP, byte and latency terms, pinned with hand-derived numbers (round-number runtime fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.catalog.loader import load_catalog
from advisor.catalog.schema import Architecture, FormatSpec
from advisor.errors import UsageError
from advisor.estimate.device import DeviceSpec, cpu_peak_tflops, from_profile
from advisor.estimate.flops import (
    attention_flops,
    decode_step_flops,
    experts_touched,
    moe_read_fraction,
    prefill_activation_traffic,
    prefill_flops,
)
from advisor.estimate.latency import calibrated_rates, latency_estimate, spec_rates
from advisor.estimate.schema import LatencyMeasurement, MeasuredRates, Spread
from advisor.hardware.schema import CPUInfo, GPUInfo, HardwareProfile
from tests.archs import big, tiny

FIX = Path(__file__).parent / "fixtures" / "estimate"
BF16 = FormatSpec(id="bf16", bytes_per_param=2)


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX], include_builtin=False, include_env=False)
    assert not problems
    return catalog


@pytest.fixture(scope="module")
def tf(cat):
    return cat.runtimes["transformers"]


@pytest.fixture(scope="module")
def F(cat):
    """Formats by id, whatever the runtime argument (keeps `F[tf]["bf16"]` readable in the calls)."""
    class _Any(dict):
        def __getitem__(self, _):
            return cat.formats
    return _Any()


DEVICE = DeviceSpec(id="fx", name="fx", kind="gpu", memory_bytes=80 * 10**9, count=1, bandwidth_gbs=1000,
                    peak_tflops={"bf16": 100, "fp16": 50, "fp32": 10})


def test_causal_attention_flops():
    # per key: 4 FLOPs x heads 4 x head_dim 16 = 256; 10 queries see 1..10 keys = 55; 2 layers
    assert attention_flops(tiny(), batch=1, queries=10, context_start=0) == 256 * 55 * 2
    assert attention_flops(tiny(), batch=3, queries=10, context_start=0) == 3 * 256 * 55 * 2
    # one decode query after 20 tokens sees 21 keys
    assert attention_flops(tiny(), batch=1, queries=1, context_start=20) == 256 * 21 * 2


def test_sliding_window_caps_attention_keys():
    arch = tiny(model_type="mistral", sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    # full layer 1+..+10 = 55; sliding layer 1+2+3+4 then 4 for the other six = 34
    assert attention_flops(arch, batch=1, queries=10, context_start=0) == 256 * (55 + 34)


def hybrid() -> Architecture:
    """Qwen3.5's layout, small: layers 0-2 Gated DeltaNet, layer 3 full attention (full_attention_interval 4);
    4 query heads of 64."""
    return Architecture(model_type="qwen3_5_text", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=64, intermediate_size=512, vocab_size=1000,
                        full_attention_interval=4, linear_num_key_heads=2, linear_num_value_heads=4,
                        linear_key_head_dim=32, linear_value_head_dim=48, linear_conv_kernel_dim=4,
                        tie_word_embeddings=True)


def chunked() -> Architecture:
    """Llama 4's layout, small: layers 0-2 chunked attention over chunks of 8, layer 3 full; 4 heads of 64."""
    return Architecture(model_type="llama4_text", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=64, intermediate_size=512, vocab_size=1000,
                        attention_chunk_size=8)


def test_only_attention_layers_pay_quadratic_attention():
    per_key = 4 * 4 * 64                                           # 4 FLOPs x 4 heads x head_dim 64
    # one full layer: 10 queries see 1..10 keys = 55; the three Gated DeltaNet layers none
    assert attention_flops(hybrid(), batch=1, queries=10, context_start=0) == per_key * 55
    assert attention_flops(hybrid(), batch=1, queries=1, context_start=20) == per_key * 21
    # eager scores: 4 heads x 10 x 10 on the one attention layer, 20 passes of 2 bytes
    t = prefill_activation_traffic(hybrid(), batch=1, prompt=10, act_bytes=2, hidden_passes=0, ffn_passes=0,
                                   score_passes=20, logits_passes=0, logits_positions=1)
    assert t == 4 * 10 * 10 * 20 * 2


def test_chunked_layers_see_only_their_own_chunk():
    per_key = 4 * 4 * 64
    # full layer 55; each chunked layer: positions 0-7 see 1..8 (36), positions 8, 9 start a new chunk (1 + 2)
    assert attention_flops(chunked(), batch=1, queries=10, context_start=0) == per_key * (55 + 3 * 39)
    # the query at position 20 sees 21 keys on the full layer and 20 mod 8 + 1 = 5 on each chunked one
    assert attention_flops(chunked(), batch=1, queries=1, context_start=20) == per_key * (21 + 3 * 5)
    # eager rows span the whole prompt on the full layer, a chunk on the others: 4 heads x 10 x (10 + 3 x 8)
    t = prefill_activation_traffic(chunked(), batch=1, prompt=10, act_bytes=2, hidden_passes=0, ffn_passes=0,
                                   score_passes=20, logits_passes=0, logits_positions=1)
    assert t == 4 * 10 * (10 + 3 * 8) * 20 * 2


def test_decode_step_flops_are_one_token_of_prefill():
    body = 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128)   # attention + MLP weights, 2 layers
    # weights, the LM head and 21 keys on each of the two layers
    assert decode_step_flops(tiny(), batch=1, context=20) == 2 * body + 2 * 1000 * 64 + 256 * 21 * 2
    assert decode_step_flops(tiny(), batch=3, context=20) == 3 * decode_step_flops(tiny(), batch=1, context=20)


def test_prefill_flops_count_lm_head_over_every_prompt_position():
    f = prefill_flops(tiny(), batch=1, prompt=10, logits_all_positions=True)
    body = 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128)   # attention + MLP weights, 2 layers
    assert f["matmul"] == 2 * 10 * body                          # 1,474,560
    assert f["lm_head"] == 2 * 10 * 1000 * 64                    # tied, but still multiplied: 1,280,000
    assert prefill_flops(tiny(), batch=1, prompt=10, logits_all_positions=False)["lm_head"] == 2 * 1000 * 64


def test_prefill_elementwise_traffic():
    t = prefill_activation_traffic(tiny(), batch=2, prompt=10, act_bytes=2, hidden_passes=10, ffn_passes=5,
                                   score_passes=0, logits_passes=0, logits_positions=10)
    assert t == 2 * 10 * (10 * 64 + 5 * 128) * 2 * 2             # tokens x passes x layers x bytes
    eager = prefill_activation_traffic(tiny(), batch=1, prompt=10, act_bytes=2, hidden_passes=0, ffn_passes=0,
                                       score_passes=20, logits_passes=6, logits_positions=10)
    assert eager == (4 * 10 * 10 * 2 * 20 + 10 * 1000 * 6) * 2    # heads x P x P x layers x passes + logits


def test_moe_decode_reads_only_touched_experts():
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    assert experts_touched(moe, 1) == pytest.approx(2.0)
    assert experts_touched(moe, 2) == pytest.approx(4 * (1 - 0.5 ** 2))      # 3 experts expected
    # mlp share of params: 2 layers x (4 x 24,576 + router 256) over the total 268,608
    mlp = 2 * (4 * 24576 + 256)
    total = 64000 + 2 * (12288 + 4 * 24576 + 256) + 320
    assert moe_read_fraction(moe, 1) == pytest.approx(1 - mlp / total + mlp / total * 0.5)
    assert moe_read_fraction(tiny(), 1) == 1.0                        # a dense model reads everything


def test_spec_latency_of_a_bandwidth_bound_70b(tf, F):
    rates = spec_rates(DEVICE, F[tf]["bf16"], tf)
    assert rates.tflops == pytest.approx(100 * 0.5 * 0.5)       # peak x gemm efficiency x model fraction
    assert rates.bandwidth_gbs == pytest.approx(1000 * 0.5)
    weights = 70_553_706_496 * 2
    lat = latency_estimate(big(), fmt=BF16, weights_bytes=weights, kv_element_bytes=2, batch=1, prompt=512,
                           new=128, runtime=tf, rates=rates)
    # decode at the average context 512 + 127 / 2 = 575 tokens; KV per token 80 x 2 x 8 x 128 x 2 bytes
    kv = 80 * 2 * 8 * 128 * 2 * 575
    overhead = 1.0 + 80 * 2.0                                     # step + per layer
    streamed = weights - 128256 * 8192 * 2                        # the input embedding table is gathered, not read
    assert lat.decode_ms_per_token == pytest.approx(1e3 * (streamed + kv) / 500e9 + overhead)
    assert lat.bound == "memory-bandwidth"
    # prefill: GEMMs at 25 TFLOPS plus elementwise traffic at 500 GB/s (compute-bound at 512 tokens)
    body = 80 * (2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672)
    flops = 2 * 512 * (body + 128256 * 8192) + 4 * 64 * 128 * 80 * (512 * 513 // 2)
    traffic = 512 * 80 * (10 * 8192 + 5 * 28672) * 2
    assert lat.prefill_ms == pytest.approx(1e3 * flops / 25e12 + 1e3 * traffic / 500e9)
    assert lat.ttft_ms == lat.prefill_ms
    assert lat.e2e_ms == pytest.approx(lat.prefill_ms + 127 * lat.decode_ms_per_token)
    assert lat.tokens_per_s == pytest.approx(128 / (lat.e2e_ms / 1e3))
    assert lat.source == lat.basis == "spec"


def test_small_model_is_step_overhead_bound(tf, F):
    lat = latency_estimate(tiny(), fmt=BF16, weights_bytes=276_096, kv_element_bytes=2, batch=1, prompt=10,
                           new=5, runtime=tf, rates=spec_rates(DEVICE, F[tf]["bf16"], tf))
    assert lat.bound == "step-overhead"
    assert lat.terms["decode_overhead_ms"] == pytest.approx(1.0 + 2 * 2.0)
    assert lat.prefill_ms == pytest.approx(2 * 0.5)                # host overhead (per layer) exceeds GPU time
    assert "host-bound" in lat.explanation


def test_batch_raises_the_compute_term(tf, F):
    rates = spec_rates(DEVICE, F[tf]["bf16"], tf)
    one = latency_estimate(big(), fmt=BF16, weights_bytes=1, kv_element_bytes=2, batch=1, prompt=16, new=2,
                           runtime=tf, rates=rates)
    many = latency_estimate(big(), fmt=BF16, weights_bytes=1, kv_element_bytes=2, batch=64, prompt=16, new=2,
                            runtime=tf, rates=rates)
    assert many.terms["decode_compute_ms"] == pytest.approx(64 * one.terms["decode_compute_ms"])


def test_quantised_formats_use_the_16bit_rate(tf, F):
    assert spec_rates(DEVICE, F[tf]["int8"], tf).tflops == pytest.approx(50 * 0.25)   # fp16 peak, not bf16
    assert spec_rates(DEVICE, F[tf]["fp32"], tf).tflops == pytest.approx(10 * 0.25)


def test_offload_streams_weights_every_step(tf, F):
    rates = spec_rates(DEVICE, F[tf]["bf16"], tf)
    base = latency_estimate(tiny(), fmt=BF16, weights_bytes=276_096, kv_element_bytes=2, batch=1, prompt=10,
                            new=5, runtime=tf, rates=rates)
    off = latency_estimate(tiny(), fmt=BF16, weights_bytes=276_096, kv_element_bytes=2, batch=1, prompt=10,
                           new=5, runtime=tf, rates=rates, offload_bytes=10**9)
    assert off.decode_ms_per_token - base.decode_ms_per_token == pytest.approx(1e3 * 1e9 / 10e9)   # 100 ms


def test_calibrated_rates_replace_the_datasheet(tf, F):
    measured = MeasuredRates(device="cuda:0", matmul_tflops={"bf16": 40.0}, bandwidth_gbs=400.0,
                             step_overhead_ms=3.0, per_layer_overhead_ms=0.5)
    rates = calibrated_rates(measured, F[tf]["bf16"], tf)
    assert (rates.tflops, rates.bandwidth_gbs, rates.basis) == (pytest.approx(20.0), 400.0, "calibrated")
    lat = latency_estimate(tiny(), fmt=BF16, weights_bytes=276_096, kv_element_bytes=2, batch=1, prompt=10,
                           new=5, runtime=tf, rates=rates)
    assert lat.source == "calibrated"
    assert lat.terms["decode_overhead_ms"] == pytest.approx(3.0 + 2 * 0.5)


def test_measurement_gives_measured_p50_and_p95(tf, F):
    m = LatencyMeasurement(model="fx", format="bf16", device="cpu", prompt_tokens=10, batch=2,
                           prefill_ms=Spread(n=3, p50=100, p95=150, min=90, max=160, mean=110, stdev=5),
                           decode_ms_per_token=Spread(n=3, p50=10, p95=20, min=9, max=21, mean=12, stdev=1),
                           method="architecture-probe", joules_per_token=0.5)
    lat = latency_estimate(tiny(), fmt=BF16, weights_bytes=276_096, kv_element_bytes=2, batch=2, prompt=10,
                           new=5, runtime=tf, rates=spec_rates(DEVICE, F[tf]["bf16"], tf), measurement=m)
    assert lat.source == "measured"
    assert (lat.prefill_ms, lat.decode_ms_per_token) == (100, 10)
    assert lat.e2e_ms == pytest.approx(100 + 4 * 10)
    assert lat.e2e_p95_ms == pytest.approx(150 + 4 * 20)
    assert lat.tokens_per_s == pytest.approx(2 * 5 / 0.140)
    assert lat.joules_per_token == 0.5


def test_unknown_gpu_without_rates_is_a_usage_error(tf, F):
    blank = DeviceSpec(id="local", name="Mystery GPU", kind="gpu", memory_bytes=10**10, count=1, bandwidth_gbs=0,
                       peak_tflops={})
    with pytest.raises(UsageError, match="no datasheet peaks"):
        spec_rates(blank, F[tf]["bf16"], tf)


def test_cpu_peak_from_isa_flags(tf):
    # 4 cores x 3 GHz x 16 fp32 FLOPs/cycle (AVX2 + FMA) = 0.192 TFLOPS
    assert cpu_peak_tflops(4, 3000, ["avx2", "fma"], tf)["fp32"] == pytest.approx(0.192)
    assert cpu_peak_tflops(4, 3000, ["avx512f", "avx2"], tf)["fp32"] == pytest.approx(0.384)
    amx = cpu_peak_tflops(4, 3000, ["avx512f", "amx_bf16"], tf)
    assert amx["bf16"] == pytest.approx(8 * amx["fp32"])
    assert cpu_peak_tflops(1, 1000, [], tf)["fp32"] == pytest.approx(1e9 * 4 / 1e12)


def test_local_gpu_uses_matched_target_peaks_and_nvml_bandwidth(cat, tf):
    prof = HardwareProfile(gpu_count=2, gpus=[
        GPUInfo(index=i, name="FX GPU", memory_total_bytes=23_000_000_000, peak_bandwidth_gbs=650.0,
                matched_target="fx-gpu-24gb") for i in range(2)],
        cpu=CPUInfo(ram_total_bytes=64_000_000_000, ram_available_bytes=50_000_000_000))
    d = from_profile(prof, cat.targets, tf)
    assert (d.kind, d.count, d.memory_bytes, d.bandwidth_gbs) == ("gpu", 2, 23_000_000_000, 650.0)
    assert d.peak_tflops == cat.targets["fx-gpu-24gb"].peak_tflops
    assert d.ram_bytes == 50_000_000_000


def test_local_cpu_is_a_rough_spec(cat, tf):
    prof = HardwareProfile(cpu=CPUInfo(physical_cores=8, usable_cores=2, max_frequency_mhz=2500, flags=["avx2"],
                                       ram_total_bytes=32_000_000_000, ram_available_bytes=20_000_000_000,
                                       memory_limit_bytes=8_000_000_000))
    d = from_profile(prof, cat.targets, tf)
    assert d.kind == "cpu"
    assert d.memory_bytes == 8_000_000_000                      # the container limit
    assert d.peak_tflops["fp32"] == pytest.approx(2 * 2.5e9 * 16 / 1e12)   # usable cores only
    assert any("rough spec" in n for n in d.notes)


def test_cpu_target_without_a_flops_peak_gives_a_stated_lower_bound(tf, F):
    cpu = DeviceSpec(id="fx-cpu", name="fx cpu", kind="cpu", memory_bytes=10**11, count=1, bandwidth_gbs=100,
                     peak_tflops={})
    rates = spec_rates(cpu, F[tf]["bf16"], tf)
    lat = latency_estimate(big(), fmt=BF16, weights_bytes=70_553_706_496 * 2, kv_element_bytes=2, batch=1,
                           prompt=16, new=2, runtime=tf, rates=rates)
    assert lat.terms["prefill_gemm_ms"] == 0 and lat.terms["decode_compute_ms"] == 0
    # CPU bandwidth is used as given (no GPU efficiency): weights / 100 GB/s
    assert lat.terms["prefill_weight_read_ms"] == pytest.approx(1e3 * 70_553_706_496 * 2 / 100e9)
    assert "lower bounds" in lat.explanation


def test_calibrated_decode_uses_the_dtypes_measured_one_token_rate(tf, F):
    """bf16 decode on a CPU whose bf16 matrix-vector kernel is slow: the calibrated estimate follows it."""
    rates = MeasuredRates(device="cpu", matmul_tflops={"fp32": 0.05, "bf16": 0.2}, bandwidth_gbs=20.0,
                          decode_gbs={"fp32": 20.0, "bf16": 2.0}, step_overhead_ms=0.01)
    runtime = tf
    assert calibrated_rates(rates, F[runtime]["bf16"], runtime).bandwidth_gbs == 2.0
    assert calibrated_rates(rates, F[runtime]["fp32"], runtime).bandwidth_gbs == 20.0
    # fp16 was not measured on this CPU: no borrowing of bf16's rate (they differ by orders of magnitude)
    assert calibrated_rates(rates, F[runtime]["fp16"], runtime).tflops == pytest.approx(
        0.05 * runtime.model_matmul_fraction.value)

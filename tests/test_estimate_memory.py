"""Memory terms of the estimator, each pinned on small architectures with numbers derived by hand here.

Constants come from tests/fixtures/estimate/runtimes.yaml (round numbers), not the tuned built-in ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.catalog.loader import load_catalog
from advisor.catalog.schema import Architecture
from advisor.estimate.memory import (MemoryBreakdown, device_share, kv_cache_bytes, linear_out_channels,
                                     memory_breakdown, weight_terms)

FIX = Path(__file__).parent / "fixtures" / "estimate"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX], include_builtin=False, include_env=False)
    assert not problems
    return catalog


@pytest.fixture(scope="module")
def tf(cat):
    return cat.runtimes["transformers"]


@pytest.fixture(scope="module")
def vllm(cat):
    return cat.runtimes["vllm"]


def tiny(**over) -> Architecture:
    """hidden 64, 2 layers, 4 heads of 16, 2 KV heads, gated MLP 128, vocab 1000, tied head."""
    cfg = dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, intermediate_size=128, vocab_size=1000, tie_word_embeddings=True)
    cfg.update(over)
    return Architecture(**cfg)


# hand counts for tiny(): q 64x64, k and v 64x32 each, o 64x64; gate/up/down 64x128
ATTN = 64 * 64 + 2 * 64 * 32 + 64 * 64          # 12,288 per layer
MLP = 3 * 64 * 128                               # 24,576 per layer
NORMS = 2 * 2 * 64 + 64                          # two per layer + final = 320
EMB = 1000 * 64                                  # 64,000 (tied: counted once)
TOTAL = EMB + 2 * (ATTN + MLP) + NORMS           # 138,048


def test_bf16_weights_count_tied_embedding_once(tf):
    assert weight_terms(tiny(), "bf16", 2, tf.quantization) == {"weights": TOTAL * 2}
    untied = weight_terms(tiny(tie_word_embeddings=False), "bf16", 2, tf.quantization)["weights"]
    assert untied == (TOTAL + 1000 * 64) * 2
    assert weight_terms(tiny(), "fp32", 4, tf.quantization)["weights"] == TOTAL * 4


def test_int8_keeps_embeddings_16bit_and_adds_one_scale_per_output_channel(tf):
    # output channels per layer: q 64 + k 32 + v 32 + o 64 + gate 128 + up 128 + down 64 = 512
    assert linear_out_channels(tiny()) == 2 * 512
    terms = weight_terms(tiny(), "int8", 1, tf.quantization)
    linear = 2 * (ATTN + MLP)                    # 73,728
    assert terms == {"weights_quantised": linear * 1, "weights_16bit": (EMB + NORMS) * 2,
                     "quant_scales": 2 * 512 * 2}
    assert sum(terms.values()) == 73_728 + 128_640 + 2_048


def test_int4_adds_scale_and_zero_per_group_of_128(tf):
    terms = weight_terms(tiny(), "int4", 0.5, tf.quantization)
    linear = 2 * (ATTN + MLP)
    assert terms["weights_quantised"] == linear // 2                      # 36,864
    assert terms["quant_scales"] == math.ceil(linear / 128) * (2 + 2)    # 576 groups x 4 bytes
    assert terms["weights_16bit"] == (EMB + NORMS) * 2
    # a smaller group size means more scales
    assert weight_terms(tiny(), "int4", 0.5, tf.quantization, group_size=64)["quant_scales"] == (linear // 64) * 4


def test_moe_holds_every_expert(tf):
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    per_layer = ATTN + 4 * MLP + 64 * 4          # all experts + router
    assert weight_terms(moe, "bf16", 2, tf.quantization)["weights"] == 2 * (EMB + 2 * per_layer + NORMS)


def test_kv_cache_honours_gqa_mha_mqa_head_dim_and_fp8():
    per_token = 2 * 2 * 2 * 16 * 2               # layers x (K,V) x kv heads x head dim x 2 bytes = 256
    assert kv_cache_bytes(tiny(), 100, 3, 2) == per_token * 100 * 3
    assert kv_cache_bytes(tiny(num_key_value_heads=4), 100, 1, 2) == 2 * per_token * 100   # MHA
    assert kv_cache_bytes(tiny(num_key_value_heads=1), 100, 1, 2) == per_token * 100 // 2  # MQA
    assert kv_cache_bytes(tiny(head_dim=32), 100, 1, 2) == 2 * per_token * 100             # explicit head_dim
    assert kv_cache_bytes(tiny(), 100, 1, 1) == per_token * 100 // 2                       # fp8


def test_sliding_window_layers_keep_one_window():
    arch = tiny(model_type="mistral", sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    per_layer_token = 2 * 2 * 16 * 2             # 128 bytes
    assert kv_cache_bytes(arch, 100, 1, 2) == per_layer_token * (100 + 8)
    assert kv_cache_bytes(arch, 5, 1, 2) == per_layer_token * (5 + 5)   # shorter than the window


def test_prefill_peak_term_by_term(tf):
    """batch 2, prompt 10, 5 new tokens, bf16: the LM head moment is the worst."""
    mb = memory_breakdown(tiny(), fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=2, prompt=10, new=5,
                          runtime=tf, workspace=1000)
    logits = 2 * 10 * 1000 * 2                   # every prompt position, 2-byte logits: 40,000
    kv_prompt = 256 * 10 * 2                     # 5,120
    hidden = 2 * 10 * 64 * 2                     # 2,560
    assert mb.phase == "prefill"
    assert mb.terms == {"weights": TOTAL * 2, "retained_outputs": logits + kv_prompt, "prompt_kv": kv_prompt,
                        "logits": logits, "logits_copies": 0, "hidden_states": hidden, "gemm_workspace": 1000}
    assert mb.peak == TOTAL * 2 + (logits + kv_prompt) + kv_prompt + logits + hidden + 1000
    assert mb.kv_cache == 256 * 15 * 2
    assert mb.activations == mb.peak - mb.weights - mb.kv_cache


def test_long_generation_peaks_in_decode(tf):
    mb = memory_breakdown(tiny(), fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=1, prompt=10, new=1000,
                          runtime=tf, workspace=1000)
    kv_full = 256 * 1010
    step_logits = (1 + 1) * 1 * 1000 * 2         # this step's and the retained previous step's logits
    assert mb.phase == "decode"
    assert mb.peak == TOTAL * 2 + kv_full + step_logits + 1000
    assert mb.activations == step_logits + 1000


def test_fp32_model_has_fp32_logits_and_cache(tf):
    mb = memory_breakdown(tiny(), fmt="fp32", bytes_per_param=4, kv_format="fp16", batch=1, prompt=10, new=1,
                          runtime=tf, workspace=0)
    assert mb.terms["logits"] == 10 * 1000 * 4
    assert mb.kv_cache == 2 * 2 * 2 * 16 * 4 * 11


def test_softcapped_logits_add_one_copy(tf):
    base = dict(fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=2, prompt=10, new=5, runtime=tf, workspace=0)
    gemma = memory_breakdown(tiny(model_type="gemma2", head_dim=16), **base)
    assert gemma.terms["logits_copies"] == 2 * 10 * 1000 * 2


def test_eager_attention_scores_can_dominate(tf):
    arch = tiny(model_type="gemma2", head_dim=16, vocab_size=10)
    mb = memory_breakdown(arch, fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=1, prompt=200, new=1,
                          runtime=tf, workspace=0)
    hidden = 200 * 64 * 2
    assert mb.terms["attention_scores"] == 200 * 200 * 4 * 4 * 2     # P x P x copies x heads x 2 bytes
    assert mb.terms["attention_mask"] == 200 * 200 * 2
    assert mb.terms["hidden_states"] == 2 * hidden
    assert "logits" not in mb.terms                                  # the LM head has not run yet


def test_mlp_intermediates_dominate_for_a_small_vocabulary(tf):
    arch = tiny(vocab_size=10)
    mb = memory_breakdown(arch, fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=1, prompt=100, new=1,
                          runtime=tf, workspace=0)
    assert mb.terms["mlp_intermediates"] == 3 * 100 * 128 * 2
    assert mb.terms["hidden_states"] == 2 * 100 * 64 * 2


def test_vllm_peak_is_the_profile_forward(vllm):
    mb = memory_breakdown(tiny(), fmt="bf16", bytes_per_param=2, kv_format="fp16", batch=1, prompt=10, new=5,
                          runtime=vllm, workspace=1000)
    # profile forward of max_num_batched_tokens = 100 tokens, fp32 sampler logits for max_num_seqs = 4
    assert mb.terms["profile_hidden"] == 4 * 100 * 64 * 2
    assert mb.terms["profile_mlp"] == 2 * 100 * 128 * 2
    assert mb.terms["sampler_logits"] == 4 * 1000 * 4
    assert mb.activations == 51_200 + 51_200 + 16_000 + 1000
    assert mb.peak == TOTAL * 2 + 256 * 15 + mb.activations


def _mb(weights=1000, kv=200, act=100):
    return MemoryBreakdown(weights=weights, kv_cache=kv, activations=act, peak=weights + kv + act, phase="prefill")


def test_device_share_overhead_and_offload(tf):
    # share 1300; overhead = context 500 + slack 0.5 x (1300 - weights 1000) = 650
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=2000, ram_bytes=None, runtime=tf,
                     kv_one_sequence=200)
    assert (s.per_device, s.overhead, s.verdict, s.fits) == (1950, 650, "fits", True)
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=1000, runtime=tf,
                     kv_one_sequence=200)
    assert (s.verdict, s.offload, s.fits) == ("fits-with-offload", 50, False)
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=None, runtime=tf,
                     kv_one_sequence=200)
    assert s.verdict == "does-not-fit"
    # RAM x usable 0.5 = 40 < 50 bytes to offload
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=80, runtime=tf,
                     kv_one_sequence=200)
    assert s.verdict == "does-not-fit"


def test_tensor_parallel_splits_weights_and_kv(tf):
    # share = (1000 + 200) / 2 + 100 = 700; overhead = 500 + 0.5 x (700 - 500) = 600
    s = device_share(_mb(), gpus=2, device_kind="gpu", memory_bytes=10_000, ram_bytes=None, runtime=tf,
                     kv_one_sequence=200)
    assert (s.per_device, s.overhead) == (1300, 600)


def test_cpu_has_no_cuda_context(tf):
    s = device_share(_mb(), gpus=1, device_kind="cpu", memory_bytes=10_000, ram_bytes=None, runtime=tf,
                     kv_one_sequence=200)
    assert s.overhead == int(0.5 * 300)


def test_vllm_pool_and_concurrency(vllm):
    # overhead = context 500 + CUDA graphs 300; per device = 1300 + 800 = 2100
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=4000, ram_bytes=None, runtime=vllm,
                     kv_one_sequence=100)
    assert (s.available, s.per_device, s.fits) == (2000, 2100, False)     # 0.5 x 4000
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=6000, ram_bytes=None, runtime=vllm,
                     kv_one_sequence=100)
    assert s.fits and s.kv_pool == 3000 - (2100 - 200)                    # 1100 bytes of pool
    assert s.concurrent == 11


def test_builtin_runtimes_file_is_valid_and_sourced():
    catalog, problems, _ = load_catalog([REPO / "catalog" / "runtimes.yaml"], include_builtin=False,
                                        include_env=False)
    assert not problems
    assert set(catalog.runtimes) == {"transformers", "vllm"}
    for profile in catalog.runtimes.values():
        for name, value in profile:
            if hasattr(value, "source"):
                assert len(value.source) >= 8, f"{profile.id}.{name} lacks a source"


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 16), prompt=st.integers(1, 4096), new=st.integers(1, 4096),
       kv=st.sampled_from([1, 2, 4]), vocab=st.integers(10, 300_000), fmt=st.sampled_from(["fp32", "bf16", "int8", "int4"]))
def test_peak_is_consistent_and_monotone(tf, batch, prompt, new, kv, vocab, fmt):
    arch = tiny(num_key_value_heads=kv, vocab_size=vocab)
    bpp = {"fp32": 4, "bf16": 2, "int8": 1, "int4": 0.5}[fmt]

    def peak(b, p, n):
        return memory_breakdown(arch, fmt=fmt, bytes_per_param=bpp, kv_format="fp16", batch=b, prompt=p, new=n,
                                runtime=tf, workspace=1000)

    mb = peak(batch, prompt, new)
    assert mb.activations >= 0
    assert mb.peak == mb.weights + mb.kv_cache + mb.activations
    assert mb.kv_cache == kv_cache_bytes(arch, prompt + new, batch, 4 if fmt == "fp32" else 2)
    assert peak(batch + 1, prompt, new).peak >= mb.peak
    assert peak(batch, prompt + 1, new).peak >= mb.peak
    assert peak(batch, prompt, new + 1).peak >= mb.peak

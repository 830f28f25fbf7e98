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
from advisor.catalog.schema import Architecture, FormatSpec
from advisor.estimate.formats import embedding_bytes
from advisor.estimate.memory import (
    MemoryBreakdown,
    device_share,
    kv_cache_bytes,
    linear_out_channels,
    memory_breakdown,
    weight_terms,
)
from advisor.estimate.parallel import Split
from advisor.estimate.pool import activation_peak, engine_memory
from tests.archs import tiny

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


@pytest.fixture(scope="module")
def f(cat):
    return cat.formats


# hand counts for tiny(): q 64x64, k and v 64x32 each, o 64x64; gate/up/down 64x128
ATTN = 64 * 64 + 2 * 64 * 32 + 64 * 64          # 12,288 per layer
MLP = 3 * 64 * 128                               # 24,576 per layer
NORMS = 2 * 2 * 64 + 64                          # two per layer + final = 320
EMB = 1000 * 64                                  # 64,000 (tied: counted once)
TOTAL = EMB + 2 * (ATTN + MLP) + NORMS           # 138,048
BF16 = FormatSpec(id="bf16", bytes_per_param=2)
FP32 = FormatSpec(id="fp32", bytes_per_param=4)


def test_bf16_weights_count_tied_embedding_once(f):
    assert weight_terms(tiny(), f["bf16"]) == {"weights": TOTAL * 2}
    untied = weight_terms(tiny(tie_word_embeddings=False), f["bf16"])["weights"]
    assert untied == (TOTAL + 1000 * 64) * 2
    assert weight_terms(tiny(), f["fp32"])["weights"] == TOTAL * 4


def test_int8_keeps_embeddings_16bit_and_adds_one_scale_per_output_channel(f):
    # output channels per layer: q 64 + k 32 + v 32 + o 64 + gate 128 + up 128 + down 64 = 512
    assert linear_out_channels(tiny()) == 2 * 512
    terms = weight_terms(tiny(), f["int8"])
    linear = 2 * (ATTN + MLP)                    # 73,728
    assert terms == {"weights_quantised": linear * 1, "weights_16bit": (EMB + NORMS) * 2,
                     "quant_scales": 2 * 512 * 2}
    assert sum(terms.values()) == 73_728 + 128_640 + 2_048


def test_int4_adds_scale_and_zero_per_group_of_128(f):
    terms = weight_terms(tiny(), f["int4"])
    linear = 2 * (ATTN + MLP)
    assert terms["weights_quantised"] == linear // 2                      # 36,864
    assert terms["quant_scales"] == math.ceil(linear / 128) * (2 + 2)    # 576 groups x 4 bytes
    assert terms["weights_16bit"] == (EMB + NORMS) * 2
    # a smaller group size means more scales
    g64 = f["int4"].model_copy(update={"group_size": 64})
    assert weight_terms(tiny(), g64)["quant_scales"] == (linear // 64) * 4


def test_awq_packs_its_zero_points(f):
    # AWQ/GPTQ: an fp16 scale (2 bytes) + a 4-bit zero packed in an int32 (0.5 byte) per group of 128
    linear = 2 * (ATTN + MLP)
    assert weight_terms(tiny(), f["awq"])["quant_scales"] == math.ceil(linear / 128) * 2.5 == 576 * 2.5


def test_fp8_quantises_the_linear_layers_only(f):
    assert weight_terms(tiny(), f["fp8"]) == {"weights_quantised": 2 * (ATTN + MLP), "weights_16bit": (EMB + NORMS) * 2}


def test_gguf_stores_every_tensor_at_its_bits_per_weight(f):
    # q4_k_m fixture: 5 bits per weight over all 138,048 parameters (embedding included) = 86,280 bytes
    assert weight_terms(tiny(), f["q4_k_m"]) == {"weights": TOTAL * 5 // 8}


def test_mxfp4_quantises_moe_experts_only():
    mx = FormatSpec(id="mxfp4", bytes_per_param=0.5, family="fp4", group_size=32, quantized_tensors="experts",
                    scale_bytes=1, compute="w4a4")
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    experts = 2 * 4 * MLP                        # 196,608 expert weights; the routers (2 x 256) stay 16-bit
    terms = weight_terms(moe, mx)
    assert terms["weights_quantised"] == experts // 2
    assert terms["quant_scales"] == experts // 32            # one E8M0 byte per 32: 4.25 bits per weight
    assert terms["weights_16bit"] == (EMB + 2 * ATTN + 2 * 256 + NORMS) * 2
    # on a dense model it quantises the linear layers
    assert weight_terms(tiny(), mx)["weights_quantised"] == 2 * (ATTN + MLP) // 2


def test_decode_skips_the_input_embedding_table(f):
    assert embedding_bytes(tiny(), f["bf16"]) == 0                          # tied: it is the LM head too
    untied = tiny(tie_word_embeddings=False)
    assert embedding_bytes(untied, f["bf16"]) == EMB * 2
    assert embedding_bytes(untied, f["int4"]) == EMB * 2                    # kept 16-bit
    assert embedding_bytes(untied, f["q4_k_m"]) == EMB * 5 // 8             # GGUF quantises it too


def test_moe_holds_every_expert(f):
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    per_layer = ATTN + 4 * MLP + 64 * 4          # all experts + router
    assert weight_terms(moe, f["bf16"])["weights"] == 2 * (EMB + 2 * per_layer + NORMS)


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
    mb = memory_breakdown(tiny(), fmt=BF16, kv_format="fp16", batch=2, prompt=10, new=5,
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
    mb = memory_breakdown(tiny(), fmt=BF16, kv_format="fp16", batch=1, prompt=10, new=1000,
                          runtime=tf, workspace=1000)
    kv_full = 256 * 1010
    step_logits = (1 + 1) * 1 * 1000 * 2         # this step's and the retained previous step's logits
    assert mb.phase == "decode"
    assert mb.peak == TOTAL * 2 + kv_full + step_logits + 1000
    assert mb.activations == step_logits + 1000


def test_fp32_model_has_fp32_logits_and_cache(tf):
    mb = memory_breakdown(tiny(), fmt=FP32, kv_format="fp16", batch=1, prompt=10, new=1,
                          runtime=tf, workspace=0)
    assert mb.terms["logits"] == 10 * 1000 * 4
    assert mb.kv_cache == 2 * 2 * 2 * 16 * 4 * 11


def test_softcapped_logits_add_one_copy(tf):
    base = dict(fmt=BF16, kv_format="fp16", batch=2, prompt=10, new=5, runtime=tf, workspace=0)
    gemma = memory_breakdown(tiny(model_type="gemma2", head_dim=16), **base)
    assert gemma.terms["logits_copies"] == 2 * 10 * 1000 * 2


def test_eager_attention_scores_can_dominate(tf):
    arch = tiny(model_type="gemma2", head_dim=16, vocab_size=10)
    mb = memory_breakdown(arch, fmt=BF16, kv_format="fp16", batch=1, prompt=200, new=1,
                          runtime=tf, workspace=0)
    hidden = 200 * 64 * 2
    assert mb.terms["attention_scores"] == 200 * 200 * 4 * 4 * 2     # P x P x copies x heads x 2 bytes
    assert mb.terms["attention_mask"] == 200 * 200 * 2
    assert mb.terms["hidden_states"] == 2 * hidden
    assert "logits" not in mb.terms                                  # the LM head has not run yet


def test_mlp_intermediates_dominate_for_a_small_vocabulary(tf):
    arch = tiny(vocab_size=10)
    mb = memory_breakdown(arch, fmt=BF16, kv_format="fp16", batch=1, prompt=100, new=1,
                          runtime=tf, workspace=0)
    assert mb.terms["mlp_intermediates"] == 3 * 100 * 128 * 2
    assert mb.terms["hidden_states"] == 2 * 100 * 64 * 2


def test_eager_memory_refuses_a_pool_engine(vllm):
    with pytest.raises(ValueError, match="KV pool"):
        memory_breakdown(tiny(), fmt=BF16, kv_format="fp16", batch=1, prompt=10, new=5, runtime=vllm, workspace=0)


def _mb(weights=1000, kv=200, act=100):
    return MemoryBreakdown(weights=weights, kv_cache=kv, activations=act, peak=weights + kv + act, phase="prefill")


def test_device_share_overhead_and_offload(tf):
    # share 1300; overhead = context 500 + slack 0.5 x (1300 - weights 1000) = 650
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=2000, ram_bytes=None, runtime=tf)
    assert (s.per_device, s.overhead, s.verdict, s.fits) == (1950, 650, "fits", True)
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=1000, runtime=tf)
    assert (s.verdict, s.offload, s.fits) == ("fits-with-offload", 50, False)
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=None, runtime=tf)
    assert s.verdict == "does-not-fit"
    # RAM x usable 0.5 = 40 < 50 bytes to offload
    s = device_share(_mb(), gpus=1, device_kind="gpu", memory_bytes=1900, ram_bytes=80, runtime=tf)
    assert s.verdict == "does-not-fit"


def test_tensor_parallel_splits_weights_and_kv(tf):
    # share = (1000 + 200) / 2 + 100 = 700; overhead = 500 + 0.5 x (700 - 500) = 600
    s = device_share(_mb(), gpus=2, device_kind="gpu", memory_bytes=10_000, ram_bytes=None, runtime=tf)
    assert (s.per_device, s.overhead) == (1300, 600)


def test_cpu_has_no_cuda_context(tf):
    s = device_share(_mb(), gpus=1, device_kind="cpu", memory_bytes=10_000, ram_bytes=None, runtime=tf)
    assert s.overhead == int(0.5 * 300)


# ---- serving-engine pools (advisor.estimate.pool). Fixture vllm profile: utilization 0.5, blocks of 16 tokens,
# a profile forward of 100 tokens with 4 hidden-size + 2 ffn-size tensors per token, a sampler profile of
# 4 sequences x 4 bytes per logit, CUDA graphs 300 inside the budget, non-torch 0 at TP1 and 1000 beyond,
# CUDA context 500 outside the budget. tiny()'s KV: 256 bytes per token.

def test_activation_peak_is_the_larger_profile(vllm):
    acts = activation_peak(tiny(), vllm, tokens=100, seqs=4, fmt="bf16")
    assert acts == {"profile_forward": 100 * (4 * 64 + 2 * 128) * 2,      # 102,400
                    "profile_sampler": 4 * 1000 * 4}                     # 16,000
    # tensor parallelism splits the ffn-size tensors only: 100 x (4 x 64 + 2 x 128 / 2) x 2 = 76,800
    assert activation_peak(tiny(), vllm, tokens=100, seqs=4, fmt="bf16", tensor=2)["profile_forward"] == 76_800


def test_vllm_pool_is_the_budget_minus_weights_activation_and_graphs(vllm):
    em = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=2, request_tokens=110, max_model_len=200)
    # budget 0.5 x 1,000,000; weights 276,096; activation 102,400; non-torch 0; graphs 300
    assert (em.budget, em.kv_pool) == (500_000, 500_000 - 276_096 - 102_400 - 300) == (500_000, 121_204)
    assert em.page_bytes == 256 * 16
    assert em.seq_kv_bytes == 256 * 208               # 200 tokens round up to 13 blocks
    assert em.request_kv_bytes == 2 * 256 * 112       # two requests of 110 tokens: 7 blocks each
    assert em.max_concurrent == (121_204 // 4096) * 16 // 200 == 2
    assert em.fits and em.per_device == 276_096 + 102_400 + 300 + 2 * 256 * 112
    assert em.overhead == 0 + 300 + 500


def test_vllm_refuses_a_pool_smaller_than_one_sequence(vllm):
    em = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=800_000,
                       split=Split(1, "none"), batch=1, request_tokens=110, max_model_len=4000)
    # pool 400,000 - 378,796 = 21,204 bytes < 4,000 tokens x 256 bytes
    assert not em.fits and "cannot hold one sequence" in em.reason
    em = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=8, request_tokens=110, max_model_len=110)
    assert not em.fits and "of the 8 concurrent" in em.reason     # 121,204 < 8 x 28,672


def test_tensor_parallel_pool_splits_weights_and_kv_heads(vllm):
    em = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(2, "tensor"), batch=1, request_tokens=110, max_model_len=200)
    assert em.weights_per_device == TOTAL                 # half of the bf16 weights
    assert em.non_torch == 1000                           # the fixture's TP>1 value
    assert em.page_bytes == 256 * 16 // 2                 # 2 KV heads over 2 ranks: one each
    # four ranks over two KV heads: heads are replicated, the page stops shrinking at one head per rank
    four = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                         split=Split(4, "tensor"), batch=1, request_tokens=110, max_model_len=200)
    assert four.page_bytes == em.page_bytes


def test_gpu_memory_utilization_override(vllm):
    em = engine_memory(tiny(), vllm, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=1, request_tokens=110, max_model_len=200, memory_fraction=0.9)
    assert em.budget == 900_000 and em.kv_pool == 900_000 - 378_796


def test_other_pool_kinds(vllm):
    sgl = vllm.model_copy(update={"pool": vllm.pool.model_copy(update={"kind": "static-fraction"})})
    em = engine_memory(tiny(), sgl, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=1, request_tokens=110, max_model_len=200)
    assert em.kv_pool == 500_000 - 276_096 - 102_400              # no non-torch or graph term
    trt = vllm.model_copy(update={"pool": vllm.pool.model_copy(update={"kind": "free-fraction"})})
    em = engine_memory(tiny(), trt, weights_bytes=TOTAL * 2, fmt="bf16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=1, request_tokens=110, max_model_len=200)
    assert em.kv_pool == int(0.5 * (10**6 - 276_096 - 102_400 - 500))    # a fraction of what is free


def test_hybrid_sequences_hold_their_recurrent_state_in_the_pool(vllm):
    # Qwen3.5's layout, small: one full-attention layer (8,192 KV bytes per 16-token block) and three Gated
    # DeltaNet layers whose state is 3 x ((4 - 1) x 320 x 2 + 4 x 32 x 48 x 4) = 79,488 bytes per sequence
    arch = Architecture(model_type="qwen3_5_text", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=64, intermediate_size=512, vocab_size=1000,
                        full_attention_interval=4, linear_num_key_heads=2, linear_num_value_heads=4,
                        linear_key_head_dim=32, linear_value_head_dim=48, linear_conv_kernel_dim=4,
                        tie_word_embeddings=True)
    em = engine_memory(arch, vllm, weights_bytes=200_000, fmt="bf16", kv_element_bytes=2, memory_bytes=2 * 10**6,
                       split=Split(1, "none"), batch=2, request_tokens=110, max_model_len=200)
    # budget 1,000,000 - weights 200,000 - profile 100 x (4 x 256 + 2 x 512) x 2 = 409,600 - graphs 300
    assert em.kv_pool == 390_100 and em.page_bytes == 8192
    assert em.seq_kv_bytes == 13 * 8192 + 79_488                   # 200 tokens in 13 blocks, plus one state
    assert em.max_concurrent == 390_100 // 185_984 == 2            # the KV blocks alone would hold 3
    assert em.request_kv_bytes == 2 * (7 * 8192 + 79_488) and em.fits
    assert em.terms["recurrent_state_per_sequence"] == 79_488
    three = engine_memory(arch, vllm, weights_bytes=200_000, fmt="bf16", kv_element_bytes=2, memory_bytes=2 * 10**6,
                          split=Split(1, "none"), batch=3, request_tokens=110, max_model_len=200)
    assert not three.fits and "holds 2 of the 3" in three.reason


def test_context_engines_allocate_the_context_asked_for(cat):
    lcpp = cat.runtimes["llama.cpp"]
    em = engine_memory(tiny(), lcpp, weights_bytes=TOTAL * 2, fmt="fp16", kv_element_bytes=2, memory_bytes=10**6,
                       split=Split(1, "none"), batch=2, request_tokens=110, max_model_len=300)
    buffer = max(10 * (64 + 128) * 2, 1 * 1000 * 4)             # a ubatch of 10 tokens, or the logits: 4,000
    assert em.kv_pool == 2 * 256 * 300                          # two slots of n_ctx 300
    assert em.per_device == 276_096 + buffer + 2 * 256 * 300 + 300
    assert em.fits and em.max_concurrent == 2


def _sourced(obj, where: str):
    """Every Sourced/SourcedMap inside a runtime profile names where it came from, and no placeholder is left."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        if "source" in type(obj).model_fields:
            assert len(obj.source) >= 8 and "TO-FIT" not in obj.source and "PLACEHOLDER" not in obj.source, \
                f"{where} lacks a source"
        for name in type(obj).model_fields:
            _sourced(getattr(obj, name), f"{where}.{name}")
    elif isinstance(obj, list):                     # older builds of a runtime
        for i, item in enumerate(obj):
            _sourced(item, f"{where}[{i}]")


def test_builtin_runtimes_file_is_valid_and_sourced():
    catalog, problems, _ = load_catalog([REPO / "catalog" / "runtimes.yaml", REPO / "catalog" / "formats.yaml"],
                                        include_builtin=False, include_env=False)
    assert not problems
    assert set(catalog.runtimes) == {"transformers", "vllm", "sglang", "tgi", "tensorrt-llm", "llama.cpp", "gpt-fast"}
    assert "ollama" in catalog.runtimes["llama.cpp"].aliases
    for profile in catalog.runtimes.values():
        _sourced(profile, profile.id)
        assert set(profile.formats) <= set(catalog.formats), profile.id
        assert set(profile.community_formats) <= set(profile.formats), profile.id
        for name in ("bandwidth_efficiency", "matmul_efficiency"):
            assert all(0 < v <= 1 for v in getattr(profile, name).values.values()), (profile.id, name)
    roles = [r for p in catalog.runtimes.values() for r in p.default_for]
    assert sorted(roles) == ["cpu-target", "gpu-target", "local"]          # one default per role


def test_builtin_formats_carry_their_storage():
    catalog, problems, _ = load_catalog([REPO / "catalog" / "formats.yaml"], include_builtin=False,
                                        include_env=False)
    assert not problems
    fm = catalog.formats
    assert {"fp8", "int8", "int4", "awq", "gptq", "nf4", "mxfp4", "nvfp4", "q4_0", "q4_k_m", "q5_k_m", "q6_k",
            "q8_0"} <= set(fm)
    # GGUF bits per weight from llama.cpp's quantize table (GiB on Llama-3-8B's 8,030,261,248 parameters)
    for fid, gib in {"q4_0": 4.34, "q4_k_m": 4.58, "q5_k_m": 5.33, "q6_k": 6.14, "q8_0": 7.96}.items():
        assert fm[fid].bits_per_weight == pytest.approx(gib * 2**30 * 8 / 8_030_261_248, abs=1e-3)
        assert "quantize.cpp" in fm[fid].bits_source
    # block scales: MXFP4 4 + 8/32 = 4.25 bits, NVFP4 4 + 8/16 = 4.5 bits per weight
    assert 8 * (fm["mxfp4"].bytes_per_param + fm["mxfp4"].scale_bytes / fm["mxfp4"].group_size) == 4.25
    assert 8 * (fm["nvfp4"].bytes_per_param + fm["nvfp4"].scale_bytes / fm["nvfp4"].group_size) == 4.5
    assert fm["awq"].variant_of == fm["gptq"].variant_of == "int4"


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 16), prompt=st.integers(1, 4096), new=st.integers(1, 4096),
       kv=st.sampled_from([1, 2, 4]), vocab=st.integers(10, 300_000),
       fmt=st.sampled_from(["fp32", "bf16", "int8", "int4"]))
def test_peak_is_consistent_and_monotone(tf, batch, prompt, new, kv, vocab, fmt):
    arch = tiny(num_key_value_heads=kv, vocab_size=vocab)
    spec = {"fp32": FP32, "bf16": BF16, "int8": FormatSpec(id="int8", bytes_per_param=1, family="int8",
                                                          quantized_tensors="linear", scale_bytes=2),
            "int4": FormatSpec(id="int4", bytes_per_param=0.5, family="int4", group_size=128,
                               quantized_tensors="linear", scale_bytes=2, zero_bytes=2)}[fmt]

    def peak(b, p, n):
        return memory_breakdown(arch, fmt=spec, kv_format="fp16", batch=b, prompt=p, new=n, runtime=tf,
                                workspace=1000)

    mb = peak(batch, prompt, new)
    assert mb.activations >= 0
    assert mb.peak == mb.weights + mb.kv_cache + mb.activations
    assert mb.kv_cache == kv_cache_bytes(arch, prompt + new, batch, 4 if fmt == "fp32" else 2)
    assert peak(batch + 1, prompt, new).peak >= mb.peak
    assert peak(batch, prompt + 1, new).peak >= mb.peak
    assert peak(batch, prompt, new + 1).peak >= mb.peak

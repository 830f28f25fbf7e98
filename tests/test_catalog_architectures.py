"""New architecture kinds: parameter recounts, layer plans, KV cache and recurrent state, family rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.catalog.families import REGISTRY
from advisor.catalog.hfconfig import architecture_from_config, architecture_from_path
from advisor.catalog.loader import load_catalog
from advisor.catalog.params import param_breakdown
from advisor.catalog.schema import Architecture
from advisor.estimate.memory import kv_cache_bytes, memory_breakdown, recurrent_state_bytes

HF = Path(__file__).parent / "fixtures" / "catalog" / "hf"
NEW = Path(__file__).parent / "fixtures" / "catalog" / "new-architectures.yaml"


def _cat():
    cat, problems, _ = load_catalog([str(NEW)], include_builtin=True, strict=False)
    assert problems == []
    return cat


# Official totals (safetensors / model cards) and the exact counts the recount must give. Each exact
# figure equals transformers' own count of the same config on the meta device (plus the stored MTP
# layer for Qwen3-Next and Nemotron's stored e_score_correction_bias buffers).
@pytest.mark.parametrize("fixture, exact, official", [
    ("qwen3-30b-a3b.json", 30_532_122_624, 30.53e9),
    ("qwen3-next-80b-a3b-instruct.json", 81_324_862_720, 81.32e9),
    ("gpt-oss-20b.json", 20_914_757_184, 20.91e9),
    ("nemotron-3-nano-30b-a3b.json", 31_577_940_288, 31.58e9),
    ("gemma-3-4b-it.json", 3_880_263_168, 3.88e9),   # text model; the vision tower is params_vision
])
def test_recount_of_real_configs(fixture, exact, official):
    arch = architecture_from_path(HF / fixture)
    pb = param_breakdown(arch)
    assert pb.stored == exact
    assert abs(pb.stored - official) / official < 0.002


def test_recount_of_catalog_shaped_entries():
    cat = _cat()
    pb = {m: param_breakdown(cat.models[m].arch) for m in
          ("nemotron-nano-9b-v2-test", "granite-4.0-h-small-test", "gemma-3-4b-test")}
    assert pb["nemotron-nano-9b-v2-test"].stored == 8_888_227_328          # card: 8.89B
    assert pb["granite-4.0-h-small-test"].stored == 32_207_337_984         # card: 32.21B
    # the multimodal entry: text recount + its params_vision = params_total
    gemma = cat.models["gemma-3-4b-test"]
    assert pb["gemma-3-4b-test"].vision == 419_816_304
    assert pb["gemma-3-4b-test"].stored == gemma.params_total == 4_300_079_472
    assert pb["gemma-3-4b-test"].text == gemma.params_text


def test_gpt_oss_routed_experts_by_hand():
    # 24 layers x 32 experts x (gate_up 2880 x 5760 + its bias 5760 + down 2880 x 2880 + its bias 2880)
    pb = param_breakdown(architecture_from_path(HF / "gpt-oss-20b.json"))
    assert pb.experts == 24 * 32 * (2880 * 5760 + 5760 + 2880 * 2880 + 2880) == 19_116_933_120
    assert pb.experts < pb.mlp     # the routers are MLP parameters too


def test_qwen3_next_mtp_layer_is_stored_but_not_resident():
    pb = param_breakdown(architecture_from_path(HF / "qwen3-next-80b-a3b-instruct.json"))
    assert pb.mtp == 1_650_471_424
    assert pb.total == 79_674_391_296          # what transformers builds and a server holds
    assert pb.stored - pb.total == pb.mtp


def test_layer_plans():
    def mixers(arch):
        out: dict[str, int] = {}
        for spec in arch.layer_plan():
            out[spec.mixer] = out.get(spec.mixer, 0) + 1
        return out

    nxt = architecture_from_path(HF / "qwen3-next-80b-a3b-instruct.json")
    assert mixers(nxt) == {"linear": 36, "full": 12}
    assert [i for i, s in enumerate(nxt.layer_plan()) if s.mixer == "full"][:3] == [3, 7, 11]
    oss = architecture_from_path(HF / "gpt-oss-20b.json")
    assert mixers(oss) == {"sliding": 12, "full": 12}
    assert {s.window for s in oss.layer_plan() if s.mixer == "sliding"} == {128}
    gemma = architecture_from_path(HF / "gemma-3-4b-it.json")        # text_config, pattern 6
    assert [i for i, s in enumerate(gemma.layer_plan()) if s.mixer == "full"] == [5, 11, 17, 23, 29]
    nemo = architecture_from_path(HF / "nemotron-3-nano-30b-a3b.json")
    plan = nemo.layer_plan()
    assert (sum(s.mixer == "mamba" for s in plan), sum(s.mixer == "full" for s in plan),
            sum(s.ffn == "moe" for s in plan)) == (23, 6, 23)
    llama4 = Architecture(model_type="llama4_text", hidden_size=5120, num_hidden_layers=48, num_attention_heads=40,
                          num_key_value_heads=8, head_dim=128, intermediate_size=8192, vocab_size=202048,
                          attention_chunk_size=8192, num_local_experts=16, num_experts_per_tok=1)
    assert mixers(llama4) == {"chunked": 36, "full": 12}


def test_hybrid_kv_cache_counts_only_attention_layers_by_hand():
    arch = architecture_from_path(HF / "qwen3-next-80b-a3b-instruct.json")
    # 12 full-attention layers x 2 (K, V) x 2 KV heads x 256 head_dim x 2 bytes = 24,576 bytes per token
    assert kv_cache_bytes(arch, 1, 1, 2) == 12 * 2 * 2 * 256 * 2 == 24_576
    assert kv_cache_bytes(arch, 32_768, 3, 2) == 24_576 * 32_768 * 3
    # the old formula (every layer holds K/V) would have been 4x larger
    assert kv_cache_bytes(arch, 32_768, 1, 2) * 4 == 48 * 2 * 2 * 256 * 2 * 32_768
    # 36 Gated DeltaNet layers, once per sequence whatever the length:
    # conv (4 - 1) x (2 x 16 x 128 + 32 x 128) = 24,576 elements; state 32 x 128 x 128 = 524,288 elements
    per_layer = 24_576 * 2 + 524_288 * 2
    assert recurrent_state_bytes(arch, 1, 2) == 36 * per_layer == 39_518_208
    assert recurrent_state_bytes(arch, 4, 2) == 4 * 39_518_208


def test_mamba_state_is_fp32_for_nemotron_h_by_hand():
    arch = _cat().models["nemotron-nano-9b-v2-test"].arch
    # 4 attention layers ('*') x 2 x 8 KV heads x 128 x 2 bytes
    assert kv_cache_bytes(arch, 1, 1, 2) == 4 * 2 * 8 * 128 * 2 == 16_384
    # 27 Mamba-2 layers: conv 3 x (128 x 80 + 2 x 8 x 128) = 36,864 elements in the cache dtype,
    # SSM state 128 heads x 80 x 128 = 1,310,720 elements in fp32 (mamba_ssm_cache_dtype float32)
    assert recurrent_state_bytes(arch, 1, 2) == 27 * (36_864 * 2 + 1_310_720 * 4) == 143_548_416


def test_multimodal_kv_cache_and_resident_vision_tower_by_hand():
    cat = _cat()
    gemma = cat.models["gemma-3-4b-test"]
    arch = gemma.arch
    # 5 global layers cache every token, 29 sliding layers at most 1024; 2 x 4 KV heads x 256 x 2 bytes
    per_layer_token = 2 * 4 * 256 * 2
    assert kv_cache_bytes(arch, 8192, 1, 2) == per_layer_token * (5 * 8192 + 29 * 1024) == 289_406_976
    assert kv_cache_bytes(arch, 512, 1, 2) == per_layer_token * 34 * 512
    assert recurrent_state_bytes(arch, 1, 2) == 0
    # weights in bf16: the text model and the vision tower, both resident for text-only use
    mb = memory_breakdown(arch, fmt=cat.formats["bf16"], kv_format="fp16", batch=1, prompt=512, new=128,
                          runtime=cat.runtimes["transformers"], workspace=0)
    assert mb.weights == (3_880_263_168 + 419_816_304) * 2
    assert mb.kv_cache == per_layer_token * 34 * 640


def test_memory_breakdown_names_the_recurrent_state():
    cat = _cat()
    arch = cat.models["qwen3-next-80b-a3b-test"].arch
    for runtime in ("transformers",):   # the eager memory model; serving engines size a pool (estimate/pool.py)
        mb = memory_breakdown(arch, fmt=cat.formats["bf16"], kv_format="fp16", batch=2, prompt=1024, new=64,
                              runtime=cat.runtimes[runtime], workspace=0)
        assert mb.terms["recurrent_state"] == mb.recurrent_state == 2 * 39_518_208
        assert mb.peak >= mb.weights + mb.kv_cache + mb.recurrent_state
        # resident weights leave out the stored MTP layer
        assert mb.weights == 79_674_391_296 * 2


def test_config_spellings_are_accepted_and_normalised():
    a = Architecture(model_type="granitemoehybrid", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=100, layer_types=["mamba", "attention"], mamba_n_heads=8, mamba_d_head=64,
                     mamba_d_state=16, mamba_n_groups=1, mamba_d_conv=4, mamba_expand=2, num_local_experts=0,
                     num_experts_per_tok=0, shared_intermediate_size=512)
    assert (a.mamba_num_heads, a.ssm_state_size, a.conv_kernel, a.n_groups) == (8, 16, 4, 1)
    assert a.num_local_experts is None and not a.is_moe      # 0 experts: a dense Granite
    q = Architecture(model_type="qwen3_moe", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=100, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64)
    assert q.num_local_experts == 8
    with pytest.raises(ValueError, match="disagree"):
        Architecture(model_type="qwen3_moe", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=100, num_experts=8, num_local_experts=4, num_experts_per_tok=2)
    with pytest.raises(ValueError, match="Gated DeltaNet layers need 'linear_num_key_heads'"):
        Architecture(model_type="qwen3_next", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     vocab_size=100, full_attention_interval=4)
    with pytest.raises(ValueError, match="hybrid_override_pattern has 3 layers"):
        Architecture(model_type="nemotron_h", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     vocab_size=100, hybrid_override_pattern="M*-", mamba_num_heads=4, mamba_head_dim=64,
                     ssm_state_size=16, conv_kernel=4)


def test_nas_block_configs_recount_by_hand():
    blocks = [
        {"attention": {"n_heads_in_group": 8, "no_op": False, "replace_with_linear": False},
         "ffn": {"ffn_mult": 2.625, "no_op": False, "replace_with_linear": False}},
        {"attention": {"n_heads_in_group": None, "no_op": True, "replace_with_linear": False},
         "ffn": {"ffn_mult": 1.3125, "no_op": False, "replace_with_linear": False}},
        {"attention": {"n_heads_in_group": None, "no_op": False, "replace_with_linear": True},
         "ffn": {"ffn_mult": None, "no_op": True, "replace_with_linear": False}},
    ]
    arch = Architecture(model_type="deci", hidden_size=1024, num_hidden_layers=3, num_attention_heads=16,
                        vocab_size=1000, block_configs=blocks, tie_word_embeddings=False)
    h, hd = 1024, 64
    attn0 = h * 16 * hd + 2 * h * 2 * hd + 16 * hd * h            # 16 / 8 = 2 KV heads
    ffn0 = 3 * h * 1792                                            # round_up(int(2 x 2.625 x 1024 / 3), 256)
    ffn1 = 3 * h * 1024                                            # round_up(int(2 x 1.3125 x 1024 / 3) = 896, 256)
    linear2 = h * h
    norms = h * (2 + 1 + 1) + h                                    # one per present block, plus the final norm
    assert param_breakdown(arch).stored == attn0 + ffn0 + ffn1 + linear2 + norms + 2 * 1000 * h
    assert [s.mixer for s in arch.layer_plan()] == ["full", "none", "dense_linear"]
    assert kv_cache_bytes(arch, 10, 1, 2) == 2 * 2 * hd * 10 * 2   # only layer 0 caches K/V


def test_unknown_model_type_gets_llama_rules_and_a_note(tmp_path):
    arch = Architecture(model_type="brand_new_lm", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        vocab_size=100, intermediate_size=128)
    assert arch.gated_mlp and arch.family.norm == "rmsnorm" and not arch.family.known
    assert "no entry in architectures.yaml" in arch.family.note
    (tmp_path / "m.yaml").write_text(
        "models:\n  - {id: new-lm, name: n, family: f, params_total: 95040, params_source: https://x.org/a,"
        " architecture: {model_type: brand_new_lm, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,"
        " vocab_size: 100, intermediate_size: 128}, architecture_source: https://x.org/a, license: mit,"
        " license_source: https://x.org/l}\n")
    _, problems, warns = load_catalog([str(tmp_path / "m.yaml")], include_builtin=False, strict=False)
    assert problems == []
    assert any("brand_new_lm" in w and "llama rules" in w for w in warns)


def test_architecture_families_validate(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "architectures:\n"
        "  - {id: my_lm, like: no_such_family, source: https://example.org/modeling.py}\n"
        "  - {id: bad_lm, mlp: swirly, source: https://example.org/modeling.py}\n")
    try:
        _, problems, _ = load_catalog([str(tmp_path / "a.yaml")], include_builtin=False, strict=False)
    finally:
        REGISTRY.reset()   # the entries of that file must not leak into other tests
    text = [str(p) for p in problems]
    assert any("my_lm" in t and "unknown family 'no_such_family'" in t for t in text)
    assert any("bad_lm" in t and "mlp" in t for t in text)


def test_builtin_families_resolve_every_rule():
    from advisor.catalog.families import _OPTIONAL_RULES, RULES

    for model_type in REGISTRY.all():
        fam = REGISTRY.resolve(model_type)
        assert all(getattr(fam, r) is not None for r in RULES if r not in _OPTIONAL_RULES), model_type
    assert REGISTRY.resolve("qwen3_5_moe_text").attn_output_gate        # inherited through `like`
    assert REGISTRY.resolve("gpt2").norm == "layernorm"


def test_multimodal_config_reads_text_config():
    cfg = json.loads((HF / "gemma-3-4b-it.json").read_text())
    arch = architecture_from_config(cfg)
    assert arch.model_type == "gemma3_text" and arch.hidden_size == 2560 and arch.tied_embeddings


# Cross-check against transformers' own modules: small configs of every family the recount handles.
SMALL = {
    "qwen3_next": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=64, intermediate_size=512, vocab_size=1000, full_attention_interval=2,
                       linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
                       linear_value_head_dim=48, linear_conv_kernel_dim=4, num_experts=8, num_experts_per_tok=2,
                       moe_intermediate_size=64, shared_expert_intermediate_size=128),
    "qwen3_5_text": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=64, intermediate_size=512, vocab_size=1000, full_attention_interval=4,
                         linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
                         linear_value_head_dim=48, linear_conv_kernel_dim=4, tie_word_embeddings=True),
    "nemotron_h": dict(hidden_size=256, num_hidden_layers=5, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=64, intermediate_size=512, vocab_size=1000, hybrid_override_pattern="M*-EM",
                       mamba_num_heads=8, mamba_head_dim=32, n_groups=2, ssm_state_size=16, conv_kernel=4,
                       n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                       moe_shared_expert_intermediate_size=128, n_shared_experts=1),
    "granitemoehybrid": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=64, shared_intermediate_size=128, num_local_experts=8,
                             num_experts_per_tok=2, vocab_size=1000,
                             layer_types=["mamba", "attention", "mamba", "mamba"],
                             mamba_n_heads=8, mamba_d_head=64, mamba_d_state=16, mamba_n_groups=1, mamba_d_conv=4,
                             mamba_expand=2),
    "gpt_oss": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                    intermediate_size=128, vocab_size=1000, num_local_experts=4, num_experts_per_tok=2,
                    sliding_window=32, layer_types=["sliding_attention", "full_attention"]),
    "llama4_text": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=64, intermediate_size=128, intermediate_size_mlp=512, vocab_size=1000,
                        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2),
    "olmo2": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=512, vocab_size=1000),
    "qwen2_moe": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=512, moe_intermediate_size=64, shared_expert_intermediate_size=128,
                      num_experts=8, num_experts_per_tok=2, vocab_size=1000),
    "gemma3_text": dict(hidden_size=256, num_hidden_layers=7, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=64, intermediate_size=512, vocab_size=1000, sliding_window=64),
}


@pytest.mark.parametrize("model_type", sorted(SMALL))
def test_recount_matches_transformers_modules(model_type):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = dict(SMALL[model_type])
    arch = Architecture(model_type=model_type, **cfg)
    hf_cfg = transformers.AutoConfig.for_model(model_type, **cfg, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg)
    counted = sum(p.numel() for p in model.parameters())
    counted += sum(b.numel() for n, b in model.named_buffers() if "e_score_correction_bias" in n)
    assert param_breakdown(arch).total == counted

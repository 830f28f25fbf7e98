"""The synthetic GGUF the llama.cpp engine probe times: llama.cpp's names, shapes, types and metadata.

Read back with gguf-py's own reader (the package llama.cpp's converter uses), so a wrong name, shape or
block size fails here rather than as a refused file on a machine with llama.cpp.
"""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from advisor.catalog.loader import get_catalog  # noqa: E402
from advisor.catalog.schema import Architecture  # noqa: E402
from advisor.probe import gguf_synth  # noqa: E402

TINY = Architecture(model_type="llama", hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=160, vocab_size=96)


def _field(reader, key):
    f = reader.fields[key]
    part = f.parts[f.data[0]]
    return bytes(part).decode() if f.types and f.types[0] == gguf.GGUFValueType.STRING else part.tolist()[0]


def test_catalog_families_map_to_llama_cpp_architectures():
    cat = get_catalog(())
    assert gguf_synth.layout(cat.model("llama-3.2-1b").arch).gguf_arch == "llama"
    assert gguf_synth.layout(cat.model("qwen2.5-0.5b").arch).gguf_arch == "qwen2"      # q/k/v biases
    qwen3 = next(e for e in cat.models.values() if e.arch.model_type == "qwen3")
    assert gguf_synth.layout(qwen3.arch).gguf_arch == "qwen3"                          # per-head q/k norms
    moe = next(e for e in cat.models.values() if e.arch.is_moe)
    with pytest.raises(gguf_synth.UnsupportedArchitecture, match="MoE"):
        gguf_synth.layout(moe.arch)
    hybrid = next(e for e in cat.models.values() if e.arch.is_hybrid)
    with pytest.raises(gguf_synth.UnsupportedArchitecture, match="recurrent"):
        gguf_synth.layout(hybrid.arch)


def test_file_bytes_counts_blocks_by_hand():
    # per layer: q 64x64, k and v 32x64 each, o 64x64 (12,288), gate/up 160x64, down 64x160 (30,720): 43,008
    # plus embedding and untied head 96x64 each; Q4_0: 18 bytes per 32 weights; norms f32: (2 x 64) per
    # layer + the final 64
    weights = 3 * 43_008 + 2 * 96 * 64
    norms = 3 * 2 * 64 + 64
    # llama-quantize puts output.weight at Q6_K, here Q8_0 (64-weight rows are not whole 256-weight blocks)
    assert gguf_synth.file_bytes(TINY, "q4_0") == (weights - 96 * 64) * 18 // 32 + 96 * 64 * 34 // 32 + 4 * norms
    assert gguf_synth.file_bytes(TINY, "q8_0") == weights * 34 // 32 + 4 * norms
    assert gguf_synth.file_bytes(TINY, "f16", layers=1) == (43_008 + 2 * 96 * 64) * 2 + 4 * (2 * 64 + 64)


@pytest.mark.parametrize("fmt,qtype", [("q4_0", "Q4_0"), ("q8_0", "Q8_0"), ("f16", "F16"), ("bf16", "BF16")])
def test_written_file_reads_back_with_llama_cpp_names_and_types(tmp_path, fmt, qtype):
    path = tmp_path / "m.gguf"
    lay = gguf_synth.write(TINY, fmt, path, layers=2, context=300)
    reader = gguf.GGUFReader(str(path))
    assert _field(reader, "general.architecture") == "llama"
    assert int(_field(reader, "llama.block_count")) == lay.layers == 2
    assert int(_field(reader, "llama.attention.head_count_kv")) == 2
    assert int(_field(reader, "llama.context_length")) == 300
    tensors = {t.name: t for t in reader.tensors}
    expected = gguf_synth.typed_tensors(TINY, lay, fmt)
    assert set(tensors) == {name for name, _, _ in expected}
    assert "blk.2.attn_q.weight" not in tensors
    for name, shape, kind in expected:
        t = tensors[name]
        # gguf stores dimensions innermost first
        assert tuple(int(d) for d in t.shape)[::-1] == shape, name
        assert t.tensor_type == getattr(gguf.GGMLQuantizationType, kind), name
        if len(shape) == 2 and name != "output.weight":
            assert kind == qtype, name
    assert tensors["blk.0.ffn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    body = sum(int(t.n_bytes) for t in reader.tensors)
    assert body == gguf_synth.file_bytes(TINY, fmt, layers=2)
    if qtype == "Q4_0":      # every block: the fixed fp16 scale, then random nibbles
        raw = np.asarray(tensors["blk.0.ffn_up.weight"].data).reshape(-1, 18)
        assert np.all(raw[:, :2].view(np.float16) == np.float16(gguf_synth.SCALE_FP16))
        assert len(np.unique(raw[:, 2:])) > 200


def test_unwritable_format_and_widths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="q4_k_m"):       # the message lists what can be written
        gguf_synth.file_bytes(TINY, "iq4_xs")
    odd = TINY.model_copy(update={"intermediate_size": 100})
    with pytest.raises(gguf_synth.UnsupportedArchitecture, match="not whole Q4_0 blocks"):
        gguf_synth.check_writable(odd, "q4_0")
    with pytest.raises(gguf_synth.UnsupportedArchitecture):
        gguf_synth.write(odd, "q4_0", tmp_path / "x.gguf")
    gguf_synth.check_writable(odd, "f16")          # float types have no blocks to fill


K_MODEL = Architecture(model_type="llama", hidden_size=256, num_hidden_layers=16, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=512, vocab_size=64)


def test_q4_k_m_follows_llama_quantize_rules(tmp_path):
    # use_more_bits for 16 layers: the first 2 (i < 16 // 8), the last 2 (i >= 14), and (i - 2) % 3 == 2
    assert [i for i in range(16) if gguf_synth.use_more_bits(i, 16)] == [0, 1, 4, 7, 10, 13, 14, 15]
    lay = gguf_synth.layout(K_MODEL)
    types = {name: kind for name, _, kind in gguf_synth.typed_tensors(K_MODEL, lay, "q4_k_m")}
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert types["blk.4.attn_v.weight"] == types["blk.4.ffn_down.weight"] == "Q6_K"
    assert types["blk.5.attn_v.weight"] == types["blk.5.ffn_down.weight"] == types["blk.4.attn_q.weight"] == "Q4_K"
    assert types["blk.0.attn_norm.weight"] == "F32"
    # a truncated file: a plain middle layer, then the layers the deeper file adds alternate between a
    # more-bits layer and a plain one (8 of 16 are more-bits): 3 of 16 -> layers 8, 13, 11
    assert gguf_synth.sampled_layers(3, 16) == [8, 13, 11]
    short = {n: k for n, _, k in gguf_synth.typed_tensors(K_MODEL, gguf_synth.layout(K_MODEL, 3), "q4_k_m")}
    assert [short[f"blk.{i}.ffn_down.weight"] for i in range(3)] == ["Q4_K", "Q6_K", "Q4_K"]
    # rows that are not whole 256-weight blocks fall back as llama-quantize does: Q4_K -> Q5_0,
    # Q5_K -> Q5_1, Q6_K -> Q8_0
    assert gguf_synth.tensor_type("q4_k_m", "blk.3.attn_q.weight", 896, 3, 24) == "Q5_0"
    assert gguf_synth.tensor_type("q5_k_m", "blk.3.attn_q.weight", 896, 3, 24) == "Q5_1"
    assert gguf_synth.tensor_type("q4_k_m", "output.weight", 896, None, 24) == "Q8_0"
    assert gguf_synth.tensor_type("q4_0", "output.weight", 4096, None, 32) == "Q6_K"
    assert gguf_synth.tensor_type("q8_0", "output.weight", 4096, None, 32) == "Q8_0"
    assert gguf_synth.tensor_type("f16", "output.weight", 4096, None, 32) == "F16"
    path = tmp_path / "k.gguf"
    gguf_synth.write(K_MODEL, "q4_k_m", path, layers=3)
    reader = gguf.GGUFReader(str(path))
    read = {t.name: t.tensor_type.name for t in reader.tensors}
    assert read == short
    assert sum(int(t.n_bytes) for t in reader.tensors) == gguf_synth.file_bytes(K_MODEL, "q4_k_m", layers=3)
    q6 = next(t for t in reader.tensors if t.name == "output.weight")
    raw = np.asarray(q6.data).reshape(-1, 210)          # block_q6_K: ql, qh, int8 scales, then d
    assert np.all(raw[:, 208:210].view(np.float16) == np.float16(gguf_synth.SCALE_FP16))
    assert np.all(raw[:, 192:208] == 1)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "qwen3-8b", "qwen3-14b"])
@pytest.mark.parametrize("fmt", ["q4_k_m", "q5_k_m", "q4_0"])
def test_the_two_truncated_files_extrapolate_to_the_whole_files_bytes(model, fmt):
    # the engine probe's per-layer cost comes from the 3-layer file minus the 1-layer one: in bytes that
    # extrapolation must land on the full model's file (a mix's more-bits layers are sampled as often)
    arch = get_catalog(()).model(model).arch
    one, three = gguf_synth.file_bytes(arch, fmt, 1), gguf_synth.file_bytes(arch, fmt, 3)
    whole = gguf_synth.file_bytes(arch, fmt)
    assert one + (three - one) / 2 * (arch.num_hidden_layers - 1) == pytest.approx(whole, rel=0.005)

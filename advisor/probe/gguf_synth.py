"""A GGUF file of a catalog architecture with random weights, for timing the real llama.cpp engine.

llama.cpp's speed depends on the tensors' shapes and types, not on their values, so the probe writes
the model's own shapes (truncated to a few layers where the whole model is large) with random quantised
blocks: Q4_0 blocks are an fp16 scale and 16 bytes of random nibbles, Q8_0 blocks an fp16 scale and 32
random int8, F16/BF16/F32 random normals. Nothing is quantised in Python, so writing costs the disk
traffic only. The tensor names and metadata keys are those of llama.cpp's `llama`, `qwen2` and `qwen3`
architectures (gguf-py's constants, the package llama.cpp's own converter uses).

Supported: dense decoders of the llama layout (gated SiLU MLP, RMSNorm, rotary GQA attention on every
layer, no MoE, no recurrent or sliding layers); q/k/v biases make it `qwen2`, per-head q/k norms `qwen3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from advisor.catalog.schema import Architecture

# ggml block types the writer produces: (weights per block, bytes per block, byte offsets of the fp16
# scales set to SCALE_FP16, byte range of int8 sub-block scales set to 1); every other byte is random.
# Layouts from ggml-common.h (block_q4_0, block_q5_0, block_q8_0, block_q4_K, block_q5_K, block_q6_K).
BLOCKS: dict[str, tuple[int, int, tuple[int, ...], tuple[int, int] | None]] = {
    "Q4_0": (32, 18, (0,), None), "Q5_0": (32, 22, (0,), None), "Q5_1": (32, 24, (0, 2), None),
    "Q8_0": (32, 34, (0,), None),
    "Q4_K": (256, 144, (0, 2), None), "Q5_K": (256, 176, (0, 2), None), "Q6_K": (256, 210, (208,), (192, 208)),
    "F16": (1, 2, (), None), "BF16": (1, 2, (), None), "F32": (1, 4, (), None),
}
# Format -> the ggml type of its matrices; "q4_k_m" and "q5_k_m" are mixes (tensor_type below).
GGUF_FORMATS: dict[str, str] = {"q4_0": "Q4_0", "q8_0": "Q8_0", "q4_k_m": "Q4_K", "q5_k_m": "Q5_K",
                                "q6_k": "Q6_K", "f16": "F16", "fp16": "F16", "bf16": "BF16", "f32": "F32",
                                "fp32": "F32"}
# The catalog calls 16- and 32-bit floats fp16/fp32; GGUF (and `advisor probe-engine`) f16/f32.
CATALOG_TO_GGUF = {"fp16": "f16", "fp32": "f32"}
GGUF_TO_CATALOG = {v: k for k, v in CATALOG_TO_GGUF.items()}
# llama.cpp's fallback when a row is not whole blocks of a k-quant (llama-quant.cpp, llama_tensor_get_type)
K_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
SCALE_FP16 = 0.02   # every block's scale: keeps the activations of random weights finite through the layers


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's rule for the layers a _M k-quant mix keeps at more bits (llama-quant.cpp)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def tensor_type(fmt: str, name: str, columns: int, model_layer: int | None, n_layers: int) -> str:
    """The ggml type llama-quantize gives a weight matrix for `fmt` (llama-quant.cpp, llama_tensor_get_type at
    c392e509): every quantised format but Q8_0 puts output.weight (or a tied embedding) at Q6_K; Q4_K_M and
    Q5_K_M put attn_v and ffn_down at Q6_K where use_more_bits; rows that are not whole 256-weight blocks
    take the fallback type. 16- and 32-bit files keep every matrix in their type (no per-tensor rule)."""
    base = _format(fmt)
    kind = base
    quantised = BLOCKS[base][0] > 1
    if quantised and base != "Q8_0" and name in ("output.weight", "token_embd.weight#tied"):
        kind = "Q6_K"
    elif fmt.lower() in ("q4_k_m", "q5_k_m") and model_layer is not None \
            and (name.endswith("attn_v.weight") or name.endswith("ffn_down.weight")) \
            and use_more_bits(model_layer, n_layers):
        kind = "Q6_K"
    if kind in K_FALLBACK and columns % 256:
        kind = K_FALLBACK[kind]
    return kind


class UnsupportedArchitecture(ValueError):
    """The architecture has a part the synthetic GGUF does not write (the message says which)."""


@dataclass(frozen=True)
class GgufLayout:
    """What a synthetic file holds: llama.cpp's architecture name and the layers written."""

    gguf_arch: str
    layers: int
    tied: bool
    qkv_bias: bool
    qk_norm: bool


def layout(arch: Architecture, layers: int | None = None) -> GgufLayout:
    """The llama.cpp architecture a catalog architecture is written as, or why it cannot be."""
    fam = arch.family
    reasons = []
    if arch.is_moe:
        reasons.append("MoE layers")
    if arch.is_hybrid:
        reasons.append("recurrent (linear-attention or Mamba) layers")
    if any(spec.mixer != "full" for spec in arch.layer_plan()):
        reasons.append("sliding or chunked attention layers")
    if fam.mlp != "gated" or fam.norm != "rmsnorm":
        reasons.append(f"a {fam.mlp} MLP with {fam.norm}")
    o_bias = arch.attention_bias if arch.attention_bias is not None else fam.o_bias
    mlp_bias = arch.mlp_bias if arch.mlp_bias is not None else fam.mlp_bias
    if o_bias or mlp_bias:
        reasons.append("output-projection or MLP biases")
    if fam.qk_norm == "full" or fam.attn_output_gate or fam.attention_sinks or fam.learned_positions:
        reasons.append("full q/k norms, gated attention output, attention sinks or learned positions")
    if arch.block_configs or arch.hidden_size_per_layer_input or fam.logit_softcap:
        reasons.append("per-layer blocks, per-layer embeddings or logit soft-capping")
    if reasons:
        raise UnsupportedArchitecture(f"model_type '{arch.model_type}' has {', '.join(reasons)}: the synthetic "
                                      "GGUF writes only llama/qwen2/qwen3 dense decoders")
    qkv_bias = bool(arch.attention_bias if arch.attention_bias is not None else fam.qkv_bias)
    qk_norm = fam.qk_norm == "head"
    if qkv_bias and qk_norm:
        raise UnsupportedArchitecture(f"model_type '{arch.model_type}' has q/k/v biases and q/k norms together: "
                                      "no llama.cpp architecture the writer knows has both")
    name = "qwen3" if qk_norm else ("qwen2" if qkv_bias else "llama")
    n = arch.num_hidden_layers if layers is None else max(1, min(layers, arch.num_hidden_layers))
    return GgufLayout(name, n, arch.tied_embeddings, qkv_bias, qk_norm)


def tensor_shapes(arch: Architecture, lay: GgufLayout) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, (rows, columns) or (n,), quantised?) of every tensor, in llama.cpp's names."""
    h, hd = arch.hidden_size, arch.head_size
    q_out, kv_out, ff = arch.num_attention_heads * hd, arch.kv_heads * hd, arch.ffn_size
    out: list[tuple[str, tuple[int, ...], bool]] = [("token_embd.weight", (arch.vocab_size, h), True),
                                                    ("output_norm.weight", (h,), False)]
    if not lay.tied:
        out.append(("output.weight", (arch.vocab_size, h), True))
    for i in range(lay.layers):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (h,), False), (b + "attn_q.weight", (q_out, h), True),
                (b + "attn_k.weight", (kv_out, h), True), (b + "attn_v.weight", (kv_out, h), True),
                (b + "attn_output.weight", (h, q_out), True), (b + "ffn_norm.weight", (h,), False),
                (b + "ffn_gate.weight", (ff, h), True), (b + "ffn_up.weight", (ff, h), True),
                (b + "ffn_down.weight", (h, ff), True)]
        if lay.qkv_bias:
            out += [(b + "attn_q.bias", (q_out,), False), (b + "attn_k.bias", (kv_out,), False),
                    (b + "attn_v.bias", (kv_out,), False)]
        if lay.qk_norm:
            out += [(b + "attn_q_norm.weight", (hd,), False), (b + "attn_k_norm.weight", (hd,), False)]
    return out


def sampled_layers(n_written: int, n_layers: int) -> list[int]:
    """The model layers a truncated file stands for; a full-depth file is every layer.

    The probe extrapolates from the cost of the layers a deeper file adds, so those alternate between a
    layer a _M mix keeps at more bits (use_more_bits) and one it does not, about half of each as in the
    model (llama.cpp's rule gives 16 of 32 layers, 18 of 36, 20 of 40); the first is a plain middle layer.
    """
    if n_written >= n_layers:
        return list(range(n_layers))
    more = [i for i in range(n_layers) if use_more_bits(i, n_layers)]
    plain = [i for i in range(n_layers) if not use_more_bits(i, n_layers)] or more
    more = more or plain
    picks = [plain[len(plain) // 2]]
    for k in range(1, n_written):
        pool = more if k % 2 else plain
        picks.append(pool[(len(pool) // 2 + k) % len(pool)])
    return picks


def typed_tensors(arch: Architecture, lay: GgufLayout, fmt: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, ggml type) of every tensor: F32 for norms and biases, the format's rule for matrices."""
    model_layers = sampled_layers(lay.layers, arch.num_hidden_layers)
    out = []
    for name, shape, quantised in tensor_shapes(arch, lay):
        if not quantised:
            out.append((name, shape, "F32"))
            continue
        layer = model_layers[int(name.split(".")[1])] if name.startswith("blk.") else None
        rule_name = "token_embd.weight#tied" if name == "token_embd.weight" and lay.tied else name
        out.append((name, shape, tensor_type(fmt, rule_name, shape[-1], layer, arch.num_hidden_layers)))
    return out


def check_writable(arch: Architecture, fmt: str) -> None:
    """Raise UnsupportedArchitecture (or ValueError for the format) before any work if the file cannot be
    written: every matrix row must be whole blocks of its type."""
    lay = layout(arch)
    for name, shape, kind in typed_tensors(arch, lay, fmt):
        if len(shape) == 2 and shape[1] % BLOCKS[kind][0]:
            raise UnsupportedArchitecture(f"{name}: rows of {shape[1]} weights are not whole {kind} blocks of "
                                          f"{BLOCKS[kind][0]}")


def file_bytes(arch: Architecture, fmt: str, layers: int | None = None) -> int:
    """Bytes of tensor data the file will hold (the metadata and the vocabulary add a few MB)."""
    lay = layout(arch, layers)
    total = 0
    for _, shape, kind in typed_tensors(arch, lay, fmt):
        n = 1
        for d in shape:
            n *= d
        block_weights, block_bytes, _, _ = BLOCKS[kind]
        total += n * block_bytes // block_weights
    return total


def _format(fmt: str) -> str:
    try:
        return GGUF_FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"format '{fmt}' cannot be written as a synthetic GGUF; one of: "
                         f"{', '.join(sorted({k for k in GGUF_FORMATS if not k.startswith('fp')}))}") from None


def _random_tensor(np, rng, kind: str, rows: int, cols: int):
    """A random tensor of a ggml type: quantised types as raw bytes (one row per weight row) with fixed
    scales, float types as small normals."""
    block_weights, block_bytes, scales, sub_scales = BLOCKS[kind]
    if block_weights > 1:
        blocks = rows * cols // block_weights
        raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
        scale = np.frombuffer(np.float16(SCALE_FP16).tobytes(), dtype=np.uint8)
        for at in scales:
            raw[:, at:at + 2] = scale
        if sub_scales is not None:
            raw[:, sub_scales[0]:sub_scales[1]] = 1
        return raw.reshape(rows, (cols // block_weights) * block_bytes)
    values = rng.standard_normal((rows, cols), dtype=np.float32) * SCALE_FP16
    if kind == "F16":
        return values.astype(np.float16)
    if kind == "BF16":
        bits = (values.view(np.uint32) >> 16).astype(np.uint16)   # truncation: values do not matter
        return bits.view(np.uint8).reshape(rows, cols * 2)
    return values


def write(arch: Architecture, fmt: str, path: Path, layers: int | None = None, context: int = 4096,
          seed: int = 0) -> GgufLayout:
    """Write the synthetic GGUF to `path`; needs the `gguf` package (the [engine] extra)."""
    import gguf
    import numpy as np

    lay = layout(arch, layers)
    check_writable(arch, fmt)
    rng = np.random.default_rng(seed)
    gq = gguf.GGMLQuantizationType
    w = gguf.GGUFWriter(str(path), lay.gguf_arch)
    w.add_name(f"model-advisor synthetic {arch.model_type}")
    w.add_context_length(context)
    w.add_embedding_length(arch.hidden_size)
    w.add_block_count(lay.layers)
    w.add_feed_forward_length(arch.ffn_size)
    w.add_head_count(arch.num_attention_heads)
    w.add_head_count_kv(arch.kv_heads)
    w.add_key_length(arch.head_size)
    w.add_value_length(arch.head_size)
    w.add_rope_dimension_count(arch.head_size)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(arch.vocab_size)
    # A SentencePiece-style vocabulary of placeholder pieces: the probe feeds token ids, never text.
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(arch.vocab_size)])
    w.add_token_scores([0.0] * arch.vocab_size)
    w.add_token_types([2, 3, 3] + [1] * (arch.vocab_size - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name, shape, kind in typed_tensors(arch, lay, fmt):
        if len(shape) == 1:
            w.add_tensor(name, np.ones(shape, dtype=np.float32))
            continue
        rows, cols = shape
        data = _random_tensor(np, rng, kind, rows, cols)
        if data.dtype == np.uint8:
            w.add_tensor(name, data, raw_dtype=getattr(gq, kind))
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return lay

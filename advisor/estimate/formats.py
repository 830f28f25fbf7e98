"""Weight formats on a runtime and a device (pure functions): what a format costs in bytes, which dtype its
matmuls run in, whether the model's developer publishes it, and which formats a runtime can serve.
"""

from __future__ import annotations

import math

from advisor.catalog.params import param_breakdown
from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import Architecture, FormatSpec, ModelEntry

COMMUNITY_LABEL = "community or self-quantised"
UNQUANTISED_BYTES = 2   # embeddings, LM head and norms of a linear-quantised checkpoint stay 16-bit


def compute_dtype(fmt: FormatSpec, peaks: dict[str, float] | None = None) -> str:
    """The dtype a format's matmuls run in on a device with these datasheet peaks.

    Weight-only formats dequantise to 16-bit; W8A8 (fp8) and W4A4 (fp4) run at the low-precision rate only
    where the device has such units (a peak listed for it), weight-only elsewhere.
    """
    peaks = peaks or {}
    if fmt.is_float:
        return "fp32" if fmt.bytes_per_param >= 4 else fmt.id if fmt.id in ("bf16", "fp16") else "fp16"
    if fmt.compute == "w8a8" and "fp8" in peaks:
        return "fp8"
    if fmt.compute == "w4a4" and "fp4" in peaks:
        return "fp4"
    return "fp16"


def linear_out_channels(arch: Architecture) -> int:
    """Output channels of every quantisable linear (all layers, all experts): one int8 scale each."""
    hd = arch.head_size
    attn = arch.num_attention_heads * hd + 2 * arch.kv_heads * hd + arch.hidden_size
    mlp = (2 * arch.ffn_size + arch.hidden_size) if arch.gated_mlp else (arch.ffn_size + arch.hidden_size)
    experts = arch.num_local_experts or 1
    return arch.num_hidden_layers * (attn + mlp * experts)


def weight_terms(arch: Architecture, fmt: FormatSpec) -> dict[str, int]:
    """Weight bytes by part. Tied embeddings count once (param_breakdown); MoE holds every expert.

    all     every parameter at bits_per_weight (GGUF: scales and tensor mix folded in) or bytes_per_param
    linear  attention + MLP matrices at bytes_per_param plus scales/zeros per group (or per output channel),
            the rest in 16-bit
    experts the MoE expert matrices only (gpt-oss MXFP4); a dense model's linear layers
    """
    pb = param_breakdown(arch)
    if fmt.quantized_tensors == "all":
        per = fmt.bits_per_weight / 8 if fmt.bits_per_weight else fmt.bytes_per_param
        return {"weights": int(pb.total * per)}
    if fmt.quantized_tensors == "experts" and arch.is_moe:
        quantised = pb.experts              # the routed experts (gpt-oss MXFP4); routers and shared experts stay
    else:
        # attention, Gated DeltaNet / Mamba mixers and MLP matrices (biases, routers, qk-norms ride along);
        # embeddings, norms, the LM head, per-layer embeddings and a vision tower stay 16-bit
        quantised = pb.attention + pb.mixer + pb.mlp
    kept = pb.total - quantised
    terms = {"weights_quantised": int(quantised * fmt.bytes_per_param),
             "weights_16bit": int(kept * UNQUANTISED_BYTES)}
    per_group = fmt.scale_bytes + fmt.zero_bytes
    if per_group:
        if fmt.group_size:
            terms["quant_scales"] = int(math.ceil(quantised / fmt.group_size) * per_group)
        else:
            terms["quant_scales"] = int(linear_out_channels(arch) * per_group)
    return terms


def embedding_bytes(arch: Architecture, fmt: FormatSpec) -> int:
    """Bytes of the input embedding table: a decode step reads one row of it, not the whole table.

    A tied table doubles as the LM head and is streamed in full every step (returns 0 then).
    """
    if arch.tie_word_embeddings:
        return 0
    pb = param_breakdown(arch)
    if fmt.quantized_tensors == "all":
        return int(pb.embedding * (fmt.bits_per_weight / 8 if fmt.bits_per_weight else fmt.bytes_per_param))
    return pb.embedding * UNQUANTISED_BYTES


def format_origin(entry: ModelEntry, fmt: str) -> str:
    """'official' when the model's developer publishes it, else 'community or self-quantised'."""
    return "official" if entry.format_origin(fmt) == "official" else COMMUNITY_LABEL


def runtime_serves(runtime: RuntimeProfile, fmt: str) -> bool:
    return fmt in runtime.formats


def servable_formats(entry: ModelEntry, runtime: RuntimeProfile, formats: dict[str, FormatSpec],
                     device_kind: str = "gpu", community: bool = True) -> list[str]:
    """Formats worth estimating for `entry` on `runtime`: the official ones the runtime serves, then the
    runtime's usual community formats (GGUF q4_k_m on llama.cpp, fp8/awq on vLLM) when `community`.

    A model without a 16-bit release (gpt-oss) is never offered a community re-quantisation of it.
    """
    if device_kind not in runtime.devices:
        return []
    out = [f for f in entry.official_formats() if f in formats and runtime_serves(runtime, f)]
    if community and entry.official_16bit:
        out += [f for f in runtime.community_formats if f in formats and f not in out]
    return out

"""Memory model: weights, KV cache and the transient buffers of a forward, term by term (pure functions).

Peak (what torch.cuda.max_memory_allocated reports) = weights + the largest of
  prefill: retained earlier outputs + this prompt's KV + max(LM head, last MLP, eager attention) + GEMM workspace
  decode:  KV of prompt + new tokens + one-position logits + GEMM workspace
Every constant (how many outputs are retained, copies, workspace) comes from catalog/runtimes.yaml (the
runtime's `eager` block). Serving engines with a preallocated KV pool are sized in pool.py instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import Architecture, FormatSpec
from advisor.estimate.formats import linear_out_channels, weight_terms  # noqa: F401  (re-exported)

KV_FORMAT_BYTES = {"fp16": 2, "fp8": 1}


def activation_bytes(fmt: str) -> int:
    """Bytes of one activation element: fp32 models compute in fp32; all others in 16-bit."""
    return 4 if fmt == "fp32" else 2


def kv_element_bytes(kv_format: str, fmt: str, runtime_id: str) -> int:
    # transformers' DynamicCache holds K/V in the model dtype, so an fp32 model has a 4-byte cache.
    if runtime_id == "transformers" and fmt == "fp32" and kv_format == "fp16":
        return 4
    return KV_FORMAT_BYTES[kv_format]


def kv_cache_bytes(arch: Architecture, tokens: int, batch: int, element_bytes: int) -> int:
    """K and V of every attention layer: 2 x kv_heads x head_dim x cached tokens x batch x bytes.

    Only layers that attend keep a KV cache (advisor/catalog/layers.py): a full-attention layer caches
    every token, a sliding-window layer min(tokens, window), a chunked-attention layer (Llama 4)
    min(tokens, chunk). Gated DeltaNet and Mamba-2 layers keep a fixed-size state instead
    (recurrent_state_bytes), and NAS no-op / linear-replacement layers keep nothing.
    """
    from advisor.catalog.layers import kv_profile

    per_token, capped = kv_profile(arch)
    elements = per_token * tokens + sum(width * min(tokens, window) for window, width in capped)
    return elements * batch * element_bytes


def state_element_bytes(arch: Architecture, element_bytes: int) -> int:
    """Bytes of one recurrent-state element: fp32 where the family's configs ask for it
    (mamba_ssm_dtype / mamba_ssm_cache_dtype float32), else the cache's own element size."""
    return 4 if arch.family.ssm_state_dtype == "float32" else element_bytes


def recurrent_state_bytes(arch: Architecture, batch: int, element_bytes: int,
                          state_bytes: int | None = None) -> int:
    """The fixed-size state of the Gated DeltaNet / Mamba-2 layers, once per sequence (not per token).

    Per layer (vLLM's MambaStateShapeCalculator): a convolution state of (conv_kernel - 1) x conv
    channels in element_bytes, and a recurrent state (heads x key_dim x value_dim for Gated DeltaNet,
    heads x head_dim x state_size for Mamba-2) in state_bytes (default: state_element_bytes).
    """
    from advisor.catalog.layers import state_profile

    conv, temporal = state_profile(arch)
    if not conv and not temporal:
        return 0
    sb = state_element_bytes(arch, element_bytes) if state_bytes is None else state_bytes
    return batch * (conv * element_bytes + temporal * sb)


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: int
    kv_cache: int                 # the request's cache at its longest (prompt + new tokens)
    activations: int              # peak - weights - kv_cache
    peak: int
    phase: str                    # "prefill" or "decode": where the peak happens
    terms: dict[str, int] = field(default_factory=dict)
    recurrent_state: int = 0      # Gated DeltaNet / Mamba-2 state of the batch (fixed size per sequence)


def transient_terms(arch: Architecture, *, batch: int, prompt: int, act_bytes: int, kv_prompt: int,
                    runtime: RuntimeProfile, workspace: int) -> dict[str, int]:
    """Named buffers alive at the prefill peak besides the weights."""
    b, p, h, v = batch, prompt, arch.hidden_size, arch.vocab_size
    eager = runtime.eager
    head_positions = p if runtime.logits_all_positions else 1
    logits = b * head_positions * v * act_bytes
    hidden = b * p * h * act_bytes
    c = eager.hidden_live_copies.value
    copies = eager.extra_logits_copies.get(arch.model_type)
    lm_head = {"logits": logits, "logits_copies": logits * copies, "hidden_states": c * hidden}
    mlp = {"hidden_states": (c + 1) * hidden,
           "mlp_intermediates": eager.mlp_live_intermediates.value * b * p * arch.ffn_size * act_bytes}
    attention = {}
    if arch.model_type in eager.eager_attention_types:
        # one layer's P x P scores (fp16 units x copies per head) plus the 4D mask
        attention = {"hidden_states": (c + 1) * hidden,
                     "attention_scores": b * p * p * eager.attention_score_copies.value
                     * arch.num_attention_heads * 2,
                     "attention_mask": b * p * p * act_bytes}
    phases = {"lm_head": lm_head, "mlp": mlp, "attention": attention}
    worst = max(phases, key=lambda k: sum(phases[k].values()))
    terms = {"retained_outputs": eager.retained_outputs.value * (logits + kv_prompt), "prompt_kv": kv_prompt}
    terms.update(phases[worst])
    terms["gemm_workspace"] = workspace
    return {k: int(v) for k, v in terms.items()}


def memory_breakdown(arch: Architecture, *, fmt: FormatSpec, kv_format: str, batch: int, prompt: int, new: int,
                     runtime: RuntimeProfile, workspace: int) -> MemoryBreakdown:
    """The whole peak of one request in an eager loop on one (unsplit) device, every term named."""
    if runtime.eager is None:
        raise ValueError(f"{runtime.id} preallocates a KV pool: size it with advisor.estimate.pool")
    wterms = weight_terms(arch, fmt)
    weights = sum(wterms.values())
    act = activation_bytes(fmt.id)
    kv_el = kv_element_bytes(kv_format, fmt.id, runtime.id)
    kv_prompt = kv_cache_bytes(arch, prompt, batch, kv_el)
    kv_full = kv_cache_bytes(arch, prompt + new, batch, kv_el)
    # the recurrent state lives from the first prompt token on, at one size (conv state in the cache's
    # dtype, the SSM state in the family's state dtype)
    state = recurrent_state_bytes(arch, batch, kv_el)
    state_term = {"recurrent_state": state} if state else {}
    pre = transient_terms(arch, batch=batch, prompt=prompt, act_bytes=act, kv_prompt=kv_prompt,
                          runtime=runtime, workspace=workspace)
    prefill_extra = sum(pre.values())
    step_logits = int((1 + runtime.eager.retained_outputs.value) * batch * arch.vocab_size * act)
    decode_extra = kv_full + step_logits + workspace
    if prefill_extra >= decode_extra:
        peak, phase = weights + prefill_extra + state, "prefill"
        terms = {**wterms, **state_term, **pre}
    else:
        peak, phase = weights + decode_extra + state, "decode"
        terms = {**wterms, "kv_cache": kv_full, **state_term, "decode_logits": step_logits,
                 "gemm_workspace": workspace}
    return MemoryBreakdown(weights, kv_full, peak - weights - kv_full - state, peak, phase, terms,
                           recurrent_state=state)


@dataclass(frozen=True)
class DeviceShare:
    per_device: int               # peak share + overhead on one device
    overhead: int
    offload: int                  # bytes of weights that must live in host RAM
    available: int
    fits: bool
    verdict: str                  # fits | fits-with-offload | does-not-fit


def device_share(mb: MemoryBreakdown, *, gpus: int, device_kind: str, memory_bytes: int, ram_bytes: int | None,
                 runtime: RuntimeProfile) -> DeviceShare:
    """Split over `gpus` devices (layers over devices, accelerate device_map): weights and KV divide;
    transient buffers land whole on one device (logits are gathered for the LM head), which keeps the
    check conservative."""
    eager = runtime.eager
    share = math.ceil((mb.weights + mb.kv_cache + mb.recurrent_state) / gpus) + mb.activations
    gpu = device_kind == "gpu"
    overhead = int(runtime.cuda_context_bytes.value) if gpu else 0
    # fragmentation comes from the buffers that churn (KV growth, transients), not from the weights
    overhead += int(eager.allocator_slack_fraction.value * (share - math.ceil(mb.weights / gpus)))
    per_device = share + overhead
    fits = per_device <= memory_bytes
    if fits:
        return DeviceShare(per_device, overhead, 0, memory_bytes, True, "fits")
    excess = per_device - memory_bytes
    weights_share = math.ceil(mb.weights / gpus)
    if (gpu and ram_bytes and excess < weights_share
            and excess * gpus <= ram_bytes * eager.host_ram_usable_fraction.value):
        # accelerate device_map="auto": layers that do not fit stay in host RAM
        return DeviceShare(per_device, overhead, excess * gpus, memory_bytes, False, "fits-with-offload")
    return DeviceShare(per_device, overhead, 0, memory_bytes, False, "does-not-fit")

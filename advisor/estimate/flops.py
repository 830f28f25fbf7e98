"""FLOPs and bytes moved per forward (pure functions). One multiply-add = 2 FLOPs."""

from __future__ import annotations

from advisor.catalog.params import param_breakdown
from advisor.catalog.schema import Architecture


def attention_flops(arch: Architecture, *, batch: int, queries: int, context_start: int) -> float:
    """QK^T and PV of `queries` new tokens attending causally to everything before them.

    Query i (0-based) sees context_start + i + 1 keys (capped at the window on sliding layers);
    each key costs 2 x head_dim FLOPs for QK^T and 2 x head_dim for PV, per query head.
    """
    def keys(cap: int | None) -> float:
        # closed form of sum_i min(start + i + 1, cap), for i in [0, queries)
        first, last = context_start + 1, context_start + queries
        if cap is None or last <= cap:
            return (first + last) * queries / 2
        if first >= cap:
            return float(cap * queries)
        below = cap - first  # queries whose key count is still under the cap
        return (first + cap - 1) * below / 2 + cap * (queries - below)

    per_key = 4 * arch.num_attention_heads * arch.head_size * batch
    sliding = arch.sliding_layers()
    full_layers = arch.num_hidden_layers - sliding
    return per_key * (full_layers * keys(None) + sliding * keys(arch.sliding_window))


def matmul_flops(arch: Architecture, *, batch: int, tokens: int, head_tokens: int) -> float:
    """Weight matmuls: 2 x active params (attention, active experts) x tokens, LM head over head_tokens."""
    pb = param_breakdown(arch)
    body = pb.matmul_params_active - pb.lm_head_matmul
    return 2.0 * batch * (body * tokens + pb.lm_head_matmul * head_tokens)


def prefill_flops(arch: Architecture, *, batch: int, prompt: int, logits_all_positions: bool) -> dict[str, float]:
    """transformers computes logits for every prompt position; vLLM for the last one only."""
    head_tokens = prompt if logits_all_positions else 1
    pb = param_breakdown(arch)
    return {
        "matmul": 2.0 * batch * prompt * (pb.matmul_params_active - pb.lm_head_matmul),
        "lm_head": 2.0 * batch * head_tokens * pb.lm_head_matmul,
        "attention": attention_flops(arch, batch=batch, queries=prompt, context_start=0),
    }


def decode_step_flops(arch: Architecture, *, batch: int, context: int) -> float:
    """One new token per sequence attending to `context` earlier tokens."""
    return matmul_flops(arch, batch=batch, tokens=1, head_tokens=1) + attention_flops(
        arch, batch=batch, queries=1, context_start=context)


def experts_touched(arch: Architecture, batch: int) -> float:
    """Expected distinct experts a decode step reads per layer when `batch` tokens each pick top-k at random."""
    if not arch.is_moe:
        return 1.0
    e, k = arch.num_local_experts, arch.num_experts_per_tok
    return e * (1 - (1 - k / e) ** batch)


def decode_step_bytes(weights_bytes: int, arch: Architecture, *, batch: int, kv_bytes_at_context: int) -> float:
    """Bytes read per decode step: the weights a step touches plus the KV cache so far.

    For MoE only the experts the batch's tokens route to are read (expected count).
    """
    if arch.is_moe:
        pb = param_breakdown(arch)
        frac_mlp = pb.mlp / pb.total
        touched = experts_touched(arch, batch) / arch.num_local_experts
        weights_read = weights_bytes * (1 - frac_mlp + frac_mlp * touched)
    else:
        weights_read = weights_bytes
    return float(weights_read + kv_bytes_at_context)


def prefill_activation_traffic(arch: Architecture, *, batch: int, prompt: int, act_bytes: int,
                               hidden_passes: float, ffn_passes: float, score_passes: float,
                               logits_passes: float, logits_positions: int) -> float:
    """Bytes moved by the memory-bound elementwise kernels of a prefill (norms, residual adds, rotary,
    activation functions, eager softmax, logit post-processing). They run between the GEMMs on the same
    stream, so their time adds to the GEMM time. `*_passes` count element reads+writes per tensor element."""
    tokens = batch * prompt
    per_layer = tokens * (hidden_passes * arch.hidden_size + ffn_passes * arch.ffn_size * (arch.num_experts_per_tok or 1))
    scores = 0.0
    if score_passes:
        sliding = arch.sliding_layers()
        window = min(prompt, arch.sliding_window or prompt)
        # causal P x P scores are materialised in full by eager attention
        scores = batch * arch.num_attention_heads * prompt * (
            (arch.num_hidden_layers - sliding) * prompt + sliding * window) * score_passes
    logits = batch * logits_positions * arch.vocab_size * logits_passes
    return float((per_layer * arch.num_hidden_layers + scores + logits) * act_bytes)

"""FLOPs and bytes moved per forward (pure functions). One multiply-add = 2 FLOPs.

Which layers pay what comes from the layer plan (advisor/catalog/layers.py): only attention layers pay the
quadratic attention term (QK^T and PV); a sliding-window layer's queries see at most `window` keys and a
chunked-attention layer's (Llama 4) only the keys of their own chunk. Gated DeltaNet and Mamba-2 layers
mix tokens through a fixed-size state: their projections are weight matmuls like any other, and their
state updates (a few FLOPs per state element per token, linear in tokens) are not counted.
"""

from __future__ import annotations

from advisor.catalog.layers import cached
from advisor.catalog.params import param_breakdown
from advisor.catalog.schema import Architecture


def attention_layers(arch: Architecture) -> tuple[tuple[str, int | None, int], ...]:
    """(mixer, window, layer count) of the attention layers: full, sliding (window) and chunked (chunk)."""
    def compute(a):
        counts: dict[tuple[str, int | None], int] = {}
        for spec in a.layer_plan():
            if spec.keeps_kv:
                key = ("full", None) if spec.mixer == "full" or spec.window is None else (spec.mixer, spec.window)
                counts[key] = counts.get(key, 0) + 1
        return tuple((mixer, window, n) for (mixer, window), n in sorted(counts.items(), key=str))

    return cached("attention-layers", arch, compute)


def _keys_before(n: int, mixer: str, window: int | None) -> float:
    """Keys seen by the queries at positions 0..n-1 together (each also sees itself).

    full: t + 1; sliding: min(t + 1, window); chunked: (t mod chunk) + 1 (the chunk's own tokens).
    """
    if n <= 0:
        return 0.0
    if mixer == "full" or window is None:
        return n * (n + 1) / 2
    if mixer == "sliding":
        if n <= window:
            return n * (n + 1) / 2
        return window * (window + 1) / 2 + (n - window) * window
    whole, rest = divmod(n, window)                       # chunked
    return whole * window * (window + 1) / 2 + rest * (rest + 1) / 2


def attention_keys(arch: Architecture, *, queries: int, context_start: int) -> float:
    """Query-key pairs over all attention layers for `queries` new tokens after `context_start` tokens."""
    end = context_start + queries
    return sum(n * (_keys_before(end, mixer, w) - _keys_before(context_start, mixer, w))
               for mixer, w, n in attention_layers(arch))


def attention_flops(arch: Architecture, *, batch: int, queries: int, context_start: int) -> float:
    """QK^T and PV of `queries` new tokens attending causally to the tokens before them (per layer plan).

    Each query-key pair costs 2 x head_dim FLOPs for QK^T and 2 x head_dim for PV, per query head.
    """
    per_key = 4 * arch.num_attention_heads * arch.head_size * batch
    return per_key * attention_keys(arch, queries=queries, context_start=context_start)


def prefill_flops(arch: Architecture, *, batch: int, prompt: int, logits_all_positions: bool,
                  context_start: int = 0) -> dict[str, float]:
    """Weight matmuls (2 x active params per token), the LM head and attention of `prompt` new tokens.

    transformers computes logits for every prompt position; serving engines for the last one only.
    """
    head_tokens = prompt if logits_all_positions else 1
    pb = param_breakdown(arch)
    return {
        "matmul": 2.0 * batch * prompt * (pb.matmul_params_active - pb.lm_head_matmul),
        "lm_head": 2.0 * batch * head_tokens * pb.lm_head_matmul,
        "attention": attention_flops(arch, batch=batch, queries=prompt, context_start=context_start),
    }


def decode_step_flops(arch: Architecture, *, batch: int, context: int) -> float:
    """One new token per sequence attending to `context` earlier tokens."""
    return sum(prefill_flops(arch, batch=batch, prompt=1, logits_all_positions=True,
                             context_start=context).values())


def experts_touched(arch: Architecture, batch: float) -> float:
    """Expected distinct experts an MoE layer reads in one step when `batch` tokens each pick top-k at random."""
    e, k = arch.num_local_experts, arch.num_experts_per_tok
    return e * (1 - (1 - k / e) ** batch)


def moe_read_fraction(arch: Architecture, batch: float) -> float:
    """Fraction of the weights one decode step of `batch` tokens reads: all but the experts nobody routes to."""
    if not arch.is_moe:
        return 1.0
    pb = param_breakdown(arch)
    frac_mlp = pb.mlp / pb.total
    return 1 - frac_mlp + frac_mlp * experts_touched(arch, batch) / arch.num_local_experts


def ffn_widths(arch: Architecture) -> float:
    """Sum over layers of the MLP width one token passes through (an MoE layer: its routed experts')."""
    def compute(a):
        total = 0
        for spec in a.layer_plan():
            if spec.ffn == "dense":
                total += spec.ffn_size or a.ffn_size
            elif spec.ffn == "moe":
                total += a.expert_size * (a.num_experts_per_tok or 1)
        return total

    return cached("ffn-widths", arch, compute)


def score_elements(arch: Architecture, *, batch: int, prompt: int, context_start: int = 0,
                   full_rows: bool = True) -> float:
    """Attention-score elements a non-fused attention materialises for `prompt` queries, over all layers.

    full_rows: each query row spans every key of the cache it may see (the causal mask is applied to a
    full rectangle, as eager attention and llama.cpp's non-flash path do); a sliding or chunked layer's
    rows span at most its window. Otherwise only the causal pairs (attention_keys).
    """
    if not full_rows:
        return batch * arch.num_attention_heads * attention_keys(arch, queries=prompt, context_start=context_start)
    total = 0.0
    end = context_start + prompt
    for _mixer, window, n in attention_layers(arch):
        span = end if window is None else min(end, window)
        total += n * prompt * span
    return batch * arch.num_attention_heads * total


def prefill_activation_traffic(arch: Architecture, *, batch: int, prompt: int, act_bytes: int,
                               hidden_passes: float, ffn_passes: float, score_passes: float,
                               logits_passes: float, logits_positions: int) -> float:
    """Bytes moved by the memory-bound elementwise kernels of a prefill (norms, residual adds, rotary,
    activation functions, eager softmax, logit post-processing). They run between the GEMMs on the same
    stream, so their time adds to the GEMM time. `*_passes` count element reads+writes per tensor element.

    Eager attention materialises each attention layer's P x P scores (a sliding or chunked layer's P x
    window); layers without attention (Gated DeltaNet, Mamba-2, NAS no-ops) have none.
    """
    tokens = batch * prompt
    per_token = hidden_passes * arch.hidden_size * arch.num_hidden_layers + ffn_passes * ffn_widths(arch)
    scores = score_elements(arch, batch=batch, prompt=prompt) * score_passes if score_passes else 0.0
    logits = batch * logits_positions * arch.vocab_size * logits_passes
    return float((tokens * per_token + scores + logits) * act_bytes)

"""Parameter counts derived from an architecture (pure functions).

Counts follow the Hugging Face implementations: tied embeddings counted once, qwen2 q/k/v
biases, gemma2's four norms per layer, qwen3's q/k norms, gpt2's biases and learned positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.schema import Architecture


@dataclass(frozen=True)
class ParamBreakdown:
    embedding: int          # token embedding table
    positions: int          # learned position table (gpt2); 0 for rotary models
    attention: int          # all layers
    mlp: int                # all layers, every expert
    mlp_active: int         # all layers, only the experts a token uses
    norms: int              # all layers plus the final norm
    lm_head: int            # 0 when tied to the embedding
    layers: int

    @property
    def total(self) -> int:
        return self.embedding + self.positions + self.attention + self.mlp + self.norms + self.lm_head

    @property
    def active(self) -> int:
        return self.total - self.mlp + self.mlp_active

    @property
    def per_layer(self) -> int:
        """Weights of one transformer block (attention + MLP + its norms), all experts."""
        return (self.attention + self.mlp + self.norms - self.final_norm) // self.layers

    @property
    def final_norm(self) -> int:
        return self.norms - self._layer_norms * self.layers

    _layer_norms: int = 0

    @property
    def matmul_params_active(self) -> int:
        """Weights a token multiplies by in one forward step (no norms, no embedding lookup)."""
        return self.attention + self.mlp_active + self.lm_head_matmul

    lm_head_matmul: int = 0


def param_breakdown(arch: Architecture) -> ParamBreakdown:
    h = arch.hidden_size
    layers = arch.num_hidden_layers
    hd = arch.head_size
    q_out = arch.num_attention_heads * hd
    kv_out = arch.kv_heads * hd
    gpt2 = arch.model_type == "gpt2"

    attention = h * q_out + 2 * h * kv_out + q_out * h
    if gpt2 or arch.attention_bias:
        attention += q_out + 2 * kv_out + h
    elif arch.model_type == "qwen2":
        attention += q_out + 2 * kv_out  # q/k/v biases, no o bias
    if arch.model_type == "qwen3":
        attention += 2 * hd  # q_norm and k_norm

    experts = arch.num_local_experts or 1
    active_experts = arch.num_experts_per_tok or 1
    one_mlp = (3 if arch.gated_mlp else 2) * h * arch.ffn_size
    if gpt2:
        one_mlp += arch.ffn_size + h  # biases
    router = h * experts if arch.is_moe else 0

    norm_width = 2 * h if gpt2 else h  # LayerNorm has a bias, RMSNorm does not
    norms_per_layer = 4 if arch.model_type in ("gemma2", "gemma3") else 2
    layer_norms = norms_per_layer * norm_width

    embedding = arch.vocab_size * h
    positions = (arch.max_position_embeddings or 0) * h if arch.learned_positions else 0
    lm_head = 0 if arch.tie_word_embeddings else arch.vocab_size * h

    return ParamBreakdown(
        embedding=embedding,
        positions=positions,
        attention=attention * layers,
        mlp=(one_mlp * experts + router) * layers,
        mlp_active=(one_mlp * active_experts + router) * layers,
        norms=layer_norms * layers + norm_width,
        lm_head=lm_head,
        layers=layers,
        _layer_norms=layer_norms,
        lm_head_matmul=arch.vocab_size * h,
    )


def derived_params(arch: Architecture) -> int:
    return param_breakdown(arch).total

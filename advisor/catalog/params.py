"""Parameter counts derived from an architecture (pure functions), layer by layer.

Shapes follow the transformers modeling files that each architectures.yaml entry names (v5.24.0):
  attention   q_proj hidden -> heads x head_dim (x2 with attn_output_gate: qwen3_next/qwen3_5
              Qwen3NextAttention), k/v_proj hidden -> kv_heads x head_dim, o_proj back; biases per the
              config's attention_bias, else the family's qkv_bias/o_bias (qwen2: q/k/v only); q/k norms
              of head_dim (qwen3, gemma3) or of all heads (olmo2); one sink logit per head (gpt_oss).
  mlp         gated: gate/up/down (3 x hidden x width); plain: up/down (2 x); biases per mlp_bias.
  experts     E x (gated 3 | plain 2) x hidden x expert width (moe_intermediate_size, else
              intermediate_size: mixtral, gpt_oss, granitemoehybrid); gpt_oss adds gate_up/down biases;
              router hidden x E (+E bias for gpt_oss, +E stored score-correction bias for nemotron_h).
  shared      shared_expert_intermediate_size (qwen2_moe, qwen3_next, qwen3_5_moe, + a Linear(hidden, 1)
              gate), moe_shared_expert_intermediate_size (Nemotron 3), n_shared_experts x
              moe_intermediate_size (DeepSeek), intermediate_size (llama4 shared_expert), and granite's
              shared_mlp of shared_intermediate_size in every layer (GraniteMoeHybridMLP).
  Gated DeltaNet (qwen3_next Qwen3NextGatedDeltaNet, qwen3_5 Qwen3_5GatedDeltaNet):
              in_proj hidden -> 2 x key_dim + 2 x value_dim + 2 x value_heads, depthwise conv1d over
              2 x key_dim + value_dim (kernel linear_conv_kernel_dim, no bias), dt_bias and A_log
              (value_heads each), gated RMSNorm over linear_value_head_dim, out_proj value_dim -> hidden.
  Mamba-2     (nemotron_h NemotronHMamba2Mixer, granitemoehybrid GraniteMoeHybridMambaLayer):
              in_proj hidden -> inner + conv_dim + heads (conv_dim = inner + 2 x n_groups x state),
              conv1d conv_dim x kernel (+ conv_dim bias), dt_bias, A_log, D (heads each), gated RMSNorm
              over inner, out_proj inner -> hidden.
  norms       norms_per_layer x hidden (x2 for LayerNorm's bias) per layer, plus the final norm;
              Nemotron-H has one norm per block; DeciLM one per present attention / FFN block.
  NAS         DeciLM block_configs: no_op blocks hold nothing, replace_with_linear a hidden x hidden
              Linear, FFN width round_up(int(2 x ffn_mult x hidden / 3), 256) (modeling_decilm.py).
  per-layer embeddings (gemma3n/gemma4 E models): embed_tokens_per_layer
              (vocab_size_per_layer_input x layers x width), per_layer_model_projection, its norm, and
              per layer per_layer_input_gate, per_layer_projection and post_per_layer_input_norm.
  MTP         stored multi-token-prediction layers (qwen3_next / qwen3_5 mtp.*): one full-attention
              decoder layer, fc (2 x hidden -> hidden) and three norms each; counted in the stored
              total (what the checkpoint holds) but not in the resident weights (vLLM loads them only
              for speculative decoding).
Tied embeddings count once. `total` is what a serving process holds: the text model plus the vision
tower where the entry gives params_vision (Architecture.vision_params).
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.layers import LayerSpec, cached, mamba_inner
from advisor.catalog.schema import Architecture


@dataclass(frozen=True)
class ParamBreakdown:
    embedding: int          # token embedding table
    positions: int          # learned position table (gpt2); 0 for rotary models
    attention: int          # attention layers (and NAS linear replacements), with q/k norms and sinks
    mlp: int                # every feed-forward: dense, all experts, shared experts, routers
    mlp_active: int         # the same with only the experts a token uses
    norms: int              # all layers plus the final norm
    lm_head: int            # 0 when tied to the embedding
    layers: int
    mixer: int = 0          # Gated DeltaNet and Mamba-2 layers
    per_layer_embedding: int = 0
    mtp: int = 0            # stored multi-token-prediction layers (not resident)
    vision: int = 0         # vision tower + projector (from the catalog entry)
    experts: int = 0        # the routed experts' weights (part of mlp): what MXFP4 checkpoints quantise
    _layer_norms: int = 0
    lm_head_matmul: int = 0

    @property
    def total(self) -> int:
        """Resident weights: the text model and the vision tower, without MTP layers."""
        return (self.embedding + self.positions + self.attention + self.mixer + self.mlp + self.norms
                + self.lm_head + self.per_layer_embedding + self.vision)

    @property
    def text(self) -> int:
        return self.total - self.vision

    @property
    def stored(self) -> int:
        """Everything a checkpoint stores: text, MTP layers and vision tower."""
        return self.total + self.mtp

    @property
    def active(self) -> int:
        return self.total - self.mlp + self.mlp_active

    @property
    def per_layer(self) -> int:
        """Weights of one decoder block on average (mixer + MLP + its norms), all experts."""
        return (self.attention + self.mixer + self.mlp + self.norms - self.final_norm) // self.layers

    @property
    def final_norm(self) -> int:
        return self.norms - self._layer_norms

    @property
    def matmul_params_active(self) -> int:
        """Weights a token multiplies by in one forward step (no norms, no embedding lookup)."""
        return self.attention + self.mixer + self.mlp_active + self.lm_head_matmul


def _attention(arch: Architecture, kv_heads: int) -> int:
    fam = arch.family
    h, hd, heads = arch.hidden_size, arch.head_size, arch.num_attention_heads
    q_out, kv_out = heads * hd, kv_heads * hd
    gate = arch.attn_output_gate if arch.attn_output_gate is not None else fam.attn_output_gate
    q_proj = q_out * (2 if gate else 1)
    n = h * q_proj + 2 * h * kv_out + q_out * h
    qkv_bias = arch.attention_bias if arch.attention_bias is not None else fam.qkv_bias
    o_bias = arch.attention_bias if arch.attention_bias is not None else fam.o_bias
    if qkv_bias:
        n += q_proj + 2 * kv_out
    if o_bias:
        n += h
    if fam.qk_norm == "head":
        n += 2 * hd
    elif fam.qk_norm == "full":
        n += q_out + kv_out
    if fam.attention_sinks:
        n += heads
    return n


def _dense_mlp(arch: Architecture, width: int, gated: bool | None = None) -> int:
    fam = arch.family
    gated = (fam.mlp == "gated") if gated is None else gated
    h = arch.hidden_size
    n = (3 if gated else 2) * h * width
    bias = arch.mlp_bias if arch.mlp_bias is not None else fam.mlp_bias
    if bias:
        n += (2 * width if gated else width) + h
    return n


def _shared_expert_width(arch: Architecture) -> int:
    if arch.moe_shared_expert_intermediate_size:
        return arch.moe_shared_expert_intermediate_size
    if arch.shared_expert_intermediate_size:
        return arch.shared_expert_intermediate_size
    if arch.n_shared_experts:
        return arch.n_shared_experts * arch.expert_size
    if arch.family.shared_expert == "intermediate_size":
        return arch.intermediate_size or 0
    return 0


def _moe(arch: Architecture) -> tuple[int, int, int]:
    """(all parameters, active parameters, routed-expert parameters) of one MoE feed-forward block."""
    fam = arch.family
    h, e, k = arch.hidden_size, arch.num_local_experts, arch.num_experts_per_tok
    width = arch.expert_size
    gated = fam.expert_mlp == "gated"
    one = (3 if gated else 2) * h * width
    if fam.expert_bias:
        one += (2 * width if gated else width) + h
    router = h * e + (e if fam.router_bias else 0) + e * fam.router_extra_per_expert
    shared = 0
    sw = _shared_expert_width(arch)
    if sw:
        shared = _dense_mlp(arch, sw, gated=gated) + (h if fam.shared_expert_gate else 0)
    return one * e + router + shared, one * k + router + shared, one * e


def _gated_deltanet(arch: Architecture) -> int:
    h = arch.hidden_size
    key_dim = arch.linear_num_key_heads * arch.linear_key_head_dim
    value_dim = arch.linear_num_value_heads * arch.linear_value_head_dim
    nv = arch.linear_num_value_heads
    in_proj = h * (2 * key_dim + 2 * value_dim + 2 * nv)
    conv = (2 * key_dim + value_dim) * arch.linear_conv_kernel_dim
    return in_proj + conv + 2 * nv + arch.linear_value_head_dim + value_dim * h


def _mamba2(arch: Architecture) -> int:
    fam = arch.family
    h = arch.hidden_size
    inner = mamba_inner(arch)
    heads = arch.mamba_num_heads
    conv_dim = inner + 2 * (arch.n_groups or 1) * arch.ssm_state_size
    proj_out = inner + conv_dim + heads
    n = h * proj_out + (proj_out if fam.mamba_proj_bias else 0)
    n += conv_dim * arch.conv_kernel + (conv_dim if fam.mamba_conv_bias else 0)
    n += 3 * heads + inner                      # dt_bias, A_log, D; gated RMSNorm
    n += inner * h + (h if fam.mamba_proj_bias else 0)
    return n


def _layer(arch: Architecture, spec: LayerSpec, norm_width: int) -> tuple[int, int, int, int, int, int]:
    """(attention, mixer, mlp, mlp_active, norms, routed experts) of one layer."""
    fam = arch.family
    h = arch.hidden_size
    attention = mixer = mlp = active = experts = 0
    if spec.mixer in ("full", "sliding", "chunked"):
        attention = _attention(arch, spec.kv_heads or arch.kv_heads)
    elif spec.mixer == "dense_linear":
        attention = h * h
    elif spec.mixer == "linear":
        mixer = _gated_deltanet(arch)
    elif spec.mixer == "mamba":
        mixer = _mamba2(arch)
    if spec.ffn == "moe":
        mlp, active, experts = _moe(arch)
    elif spec.ffn == "dense" and fam.shared_mlp_every_layer:
        pass  # granite without experts: its only feed-forward is the shared MLP below
    elif spec.ffn == "dense":
        mlp = active = _dense_mlp(arch, spec.ffn_size or arch.ffn_size)
    elif spec.ffn == "dense_linear":
        mlp = active = h * h
    if fam.shared_mlp_every_layer and arch.shared_intermediate_size:
        shared = _dense_mlp(arch, arch.shared_intermediate_size)
        mlp += shared
        active += shared
    if arch.block_configs is not None:
        norms = norm_width * ((spec.mixer != "none") + (spec.ffn != "none"))
    else:
        norms = norm_width * fam.norms_per_layer
    if arch.hidden_size_per_layer_input:
        pl = arch.hidden_size_per_layer_input
        mlp += 2 * h * pl
        active += 2 * h * pl
        norms += norm_width
    return attention, mixer, mlp, active, norms, experts


def param_breakdown(arch: Architecture) -> ParamBreakdown:
    return cached("params", arch, _param_breakdown)


def _param_breakdown(arch: Architecture) -> ParamBreakdown:
    fam = arch.family
    h = arch.hidden_size
    norm_width = h * fam.norm_params_per_width
    attention = mixer = mlp = active = layer_norms = experts = 0
    for spec in arch.layer_plan():
        a, m, f, fa, n, e = _layer(arch, spec, norm_width)
        attention += a
        mixer += m
        mlp += f
        active += fa
        layer_norms += n
        experts += e
    embedding = arch.vocab_size * h
    positions = (arch.max_position_embeddings or 0) * h if fam.learned_positions else 0
    lm_head = 0 if arch.tied_embeddings else arch.vocab_size * h
    final = norm_width if fam.final_norm else 0
    ple = 0
    if arch.hidden_size_per_layer_input:
        width = arch.num_hidden_layers * arch.hidden_size_per_layer_input
        ple = (arch.vocab_size_per_layer_input or arch.vocab_size) * width + h * width \
            + arch.hidden_size_per_layer_input * fam.norm_params_per_width
    mtp_layers = arch.mtp_layers if arch.mtp_layers is not None else fam.mtp_layers
    mtp = 0
    if mtp_layers:
        # one full-attention layer with the model's feed-forward kind, fc (2h -> h), three norms
        ffn = "moe" if arch.is_moe else "dense"
        a, _, f, _, n, _ = _layer(arch, LayerSpec("full", ffn, kv_heads=arch.kv_heads, ffn_size=arch.ffn_size),
                                  norm_width)
        mtp = mtp_layers * (a + f + n + 2 * h * h + 3 * norm_width)
    return ParamBreakdown(
        embedding=embedding,
        positions=positions,
        attention=attention,
        mlp=mlp,
        mlp_active=active,
        norms=layer_norms + final,
        lm_head=lm_head,
        layers=arch.num_hidden_layers,
        mixer=mixer,
        per_layer_embedding=ple,
        mtp=mtp,
        vision=arch.vision_params or 0,
        experts=experts,
        _layer_norms=layer_norms,
        lm_head_matmul=arch.vocab_size * h,
    )


def derived_params(arch: Architecture) -> int:
    """What a checkpoint of this architecture stores: text model, MTP layers and (when known) vision tower."""
    return param_breakdown(arch).stored

"""Which layer does what: the per-layer plan of an Architecture (pure functions).

For every layer: its token mixer and the cache it keeps, and its feed-forward.
  mixer  full      full attention: a KV cache over every token
         sliding   sliding-window attention: a KV cache over min(tokens, window)
         chunked   chunked local attention (Llama 4): a KV cache over min(tokens, chunk)
         linear    Gated DeltaNet (Qwen3-Next, Qwen3.5): a fixed-size recurrent state per sequence
         mamba     Mamba-2 (Nemotron-H, Granite-4.0-H): a fixed-size recurrent state per sequence
         dense_linear  a single hidden x hidden Linear in place of attention (DeciLM NAS): no cache
         none      no token mixer (a Nemotron-H MLP/MoE block, a NAS no-op)
  ffn    dense | moe | dense_linear | none

Where the plan comes from, in order:
  1. hybrid_override_pattern (Nemotron-H): M Mamba-2, * attention, - MLP, E MoE, one per block
     (NemotronHConfig converts it to layers_block_type, transformers nemotron_h/configuration_nemotron_h.py);
  2. block_configs (DeciLM): attention / ffn no_op, replace_with_linear or a regular block;
  3. layer_types, verbatim from the config: full_attention | attention -> full, sliding_attention,
     chunked_attention, linear_attention -> the family's linear kind, mamba;
  4. full_attention_interval (Qwen3-Next): layer i is full attention when (i + 1) % interval == 0,
     Gated DeltaNet otherwise (Qwen3NextConfig's default layer_types);
  5. sliding_window with the family's rule: all, alternate (even layers, Gemma 2) or pattern
     (every sliding_window_pattern-th layer global, Gemma 3: is_sliding = bool((i + 1) % pattern));
  6. attention_chunk_size with the family's chunked_attention_interval (Llama 4: layers with
     (i + 1) % 4 != 0 are chunked, Llama4TextConfig's default no_rope_layers / layer_types);
  7. otherwise full attention everywhere.
Feed-forward: MoE on the layers the config's MoE keys select (mlp_only_layers, decoder_sparse_step
as in Qwen2MoE/Qwen3MoE: (i + 1) % step == 0; first_k_dense_replace as in DeepSeek: i >= k;
interleave_moe_layer_step as in Llama 4: layers step-1, 2*step-1, ...), dense otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.catalog.schema import Architecture

KV_MIXERS = ("full", "sliding", "chunked")
STATE_MIXERS = ("linear", "mamba")
_CACHE: dict[tuple, object] = {}
_CACHE_MAX = 8192


def cached(kind: str, arch: Architecture, compute):
    """Derived figures of an architecture, computed once per Architecture object (the estimator asks for
    the same model's plan thousands of times in one recommend). Architectures are frozen: a changed copy
    (model_copy) is a new object with its own entry. The cache holds the object, so its id is not
    reused while cached; it is keyed on the family rules' generation too."""
    from advisor.catalog.families import REGISTRY

    key = (kind, REGISTRY.generation, id(arch))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is arch:
        return hit[1]
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    result = compute(arch)
    _CACHE[key] = (arch, result)
    return result


@dataclass(frozen=True)
class LayerSpec:
    mixer: str                 # full | sliding | chunked | linear | mamba | dense_linear | none
    ffn: str                   # dense | moe | dense_linear | none
    window: int | None = None  # tokens a sliding/chunked layer keeps
    kv_heads: int = 0          # KV heads of an attention layer (NAS layers differ)
    ffn_size: int = 0          # width of a dense MLP (NAS layers differ; Llama 4 dense layers)

    @property
    def keeps_kv(self) -> bool:
        return self.mixer in KV_MIXERS

    @property
    def keeps_state(self) -> bool:
        return self.mixer in STATE_MIXERS


def _layer_type_mixer(arch: Architecture, name: str) -> str:
    if name in ("full_attention", "attention"):
        return "full"
    if name == "sliding_attention":
        return "sliding"
    if name == "chunked_attention":
        return "chunked"
    if name == "mamba":
        return "mamba"
    # linear_attention: Gated DeltaNet for Qwen, Mamba-2 for Nemotron-H / Granite spellings
    return "linear" if arch.family.linear_attention == "gated_deltanet" else "mamba"


def _is_moe_layer(arch: Architecture, i: int) -> bool:
    if not arch.is_moe:
        return False
    if arch.mlp_only_layers and i in arch.mlp_only_layers:
        return False
    if arch.decoder_sparse_step and (i + 1) % arch.decoder_sparse_step != 0:
        return False
    if arch.first_k_dense_replace is not None and i < arch.first_k_dense_replace:
        return False
    if arch.interleave_moe_layer_step and (i + 1) % arch.interleave_moe_layer_step != 0:
        return False
    return True


def _dense_width(arch: Architecture, moe_model: bool) -> int:
    # Llama 4's dense layers use intermediate_size_mlp; an MoE model's dense layers intermediate_size
    if moe_model and arch.intermediate_size_mlp:
        return arch.intermediate_size_mlp
    return arch.intermediate_size or 4 * arch.hidden_size


def nas_ffn_size(ffn_mult: float, hidden: int) -> int:
    """DeciLM's _ffn_mult_to_intermediate_size: round_up(int(2 * ffn_mult * hidden / 3), 256)."""
    size = int(2 * ffn_mult * hidden / 3)
    return size if size % 256 == 0 else size + 256 - size % 256


def layer_plan(arch: Architecture) -> tuple[LayerSpec, ...]:
    return cached("plan", arch, _layer_plan)


def _layer_plan(arch: Architecture) -> tuple[LayerSpec, ...]:
    fam = arch.family
    n = arch.num_hidden_layers
    kv = arch.kv_heads
    window = arch.sliding_window
    dense = _dense_width(arch, arch.is_moe)
    if arch.hybrid_override_pattern:
        kinds = {"M": ("mamba", "none"), "*": ("full", "none"), "-": ("none", "dense"), "E": ("none", "moe")}
        return tuple(LayerSpec(kinds[c][0], kinds[c][1], kv_heads=kv if c == "*" else 0,
                               ffn_size=(arch.intermediate_size or 0) if c == "-" else 0)
                     for c in arch.hybrid_override_pattern)
    if arch.block_configs:
        out = []
        for block in arch.block_configs:
            a, f = block.attention, block.ffn
            if a.no_op:
                mixer, heads = "none", 0
            elif a.replace_with_linear:
                mixer, heads = "dense_linear", 0
            else:
                mixer, heads = "full", arch.num_attention_heads // (a.n_heads_in_group or 1)
            if f.no_op:
                ffn, width = "none", 0
            elif f.replace_with_linear:
                ffn, width = "dense_linear", 0
            else:
                ffn = "dense"
                width = f.intermediate_size or (nas_ffn_size(f.ffn_mult, arch.hidden_size) if f.ffn_mult else dense)
            out.append(LayerSpec(mixer, ffn, kv_heads=heads, ffn_size=width))
        return tuple(out)
    if arch.layer_types is not None:
        mixers = [_layer_type_mixer(arch, t) for t in arch.layer_types]
    elif arch.full_attention_interval:
        k = arch.full_attention_interval
        mixers = ["full" if (i + 1) % k == 0 else fam_linear(arch) for i in range(n)]
    elif window and fam.sliding_layers == "all":
        mixers = ["sliding"] * n
    elif window and fam.sliding_layers == "alternate":
        mixers = ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    elif window and fam.sliding_layers == "pattern":
        p = arch.sliding_window_pattern or fam.sliding_window_pattern or 1
        mixers = ["sliding" if (i + 1) % p else "full" for i in range(n)]
    elif arch.attention_chunk_size and fam.chunked_attention_interval:
        k = fam.chunked_attention_interval
        mixers = ["chunked" if (i + 1) % k else "full" for i in range(n)]
    else:
        mixers = ["full"] * n
    out = []
    for i, m in enumerate(mixers):
        w = window if m == "sliding" else arch.attention_chunk_size if m == "chunked" else None
        if m in ("sliding", "chunked") and w is None:
            m = "full"  # a layer type without its window size attends over everything
        moe = _is_moe_layer(arch, i)
        out.append(LayerSpec(m, "moe" if moe else "dense", window=w, kv_heads=kv if m in KV_MIXERS else 0,
                             ffn_size=0 if moe else dense))
    return tuple(out)


def fam_linear(arch: Architecture) -> str:
    return "linear" if arch.family.linear_attention == "gated_deltanet" else "mamba"


def mamba_inner(arch: Architecture) -> int:
    """Mamba-2 inner width: mamba_num_heads x mamba_head_dim (Nemotron-H), else expand x hidden (Granite)."""
    if arch.mamba_num_heads and arch.mamba_head_dim:
        return arch.mamba_num_heads * arch.mamba_head_dim
    return int((arch.expand or 2) * arch.hidden_size)


def missing_dims(arch: Architecture) -> list[str]:
    """Keys a hybrid layer needs that the config does not give (one message each)."""
    needs: list[str] = []
    uses_linear = uses_mamba = False
    if arch.hybrid_override_pattern:
        uses_mamba = "M" in arch.hybrid_override_pattern
    elif arch.block_configs:
        pass
    elif arch.layer_types is not None:
        for t in set(arch.layer_types):
            if t == "mamba":
                uses_mamba = True
            elif t == "linear_attention":
                if arch.family.linear_attention == "gated_deltanet":
                    uses_linear = True
                else:
                    uses_mamba = True
    elif arch.full_attention_interval:
        uses_linear = arch.family.linear_attention == "gated_deltanet"
        uses_mamba = not uses_linear
    if uses_linear:
        for key in ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                    "linear_value_head_dim", "linear_conv_kernel_dim"):
            if getattr(arch, key) is None:
                needs.append(f"Gated DeltaNet layers need '{key}'")
    if uses_mamba:
        for key in ("mamba_num_heads", "ssm_state_size", "conv_kernel"):
            if getattr(arch, key) is None:
                needs.append(f"Mamba-2 layers need '{key}' (Granite: the mamba_n_heads / mamba_d_state / "
                             "mamba_d_conv spelling)")
        if arch.mamba_head_dim is None and arch.expand is None:
            needs.append("Mamba-2 layers need 'mamba_head_dim' or 'expand'")
    if arch.block_configs:
        for i, b in enumerate(arch.block_configs):
            a, f = b.attention, b.ffn
            if not a.no_op and not a.replace_with_linear:
                g = a.n_heads_in_group
                if g is None or arch.num_attention_heads % g:
                    needs.append(f"block_configs[{i}].attention.n_heads_in_group must divide num_attention_heads")
                    break
            if not f.no_op and not f.replace_with_linear and f.ffn_mult is None and f.intermediate_size is None:
                needs.append(f"block_configs[{i}].ffn needs ffn_mult or intermediate_size")
                break
    return needs


def state_elements(arch: Architecture, spec: LayerSpec) -> tuple[int, int]:
    """(conv-state elements, recurrent-state elements) that one layer keeps per sequence.

    Shapes from vLLM's MambaStateShapeCalculator (vllm/model_executor/layers/mamba/mamba_utils.py):
      gated_delta_net_state_shape: conv (conv_kernel - 1, 2 x key_heads x key_dim + value_heads x value_dim),
                                   temporal (value_heads, key_dim, value_dim)
      mamba2_state_shape:          conv (conv_kernel - 1, inner + 2 x n_groups x state_size),
                                   temporal (num_heads, head_dim, state_size)
    """
    if spec.mixer == "linear":
        conv_dim = 2 * arch.linear_num_key_heads * arch.linear_key_head_dim + \
            arch.linear_num_value_heads * arch.linear_value_head_dim
        conv = (arch.linear_conv_kernel_dim - 1) * conv_dim
        temporal = arch.linear_num_value_heads * arch.linear_key_head_dim * arch.linear_value_head_dim
        return conv, temporal
    if spec.mixer == "mamba":
        inner = mamba_inner(arch)
        groups = arch.n_groups or 1
        conv = (arch.conv_kernel - 1) * (inner + 2 * groups * arch.ssm_state_size)
        heads = arch.mamba_num_heads
        head_dim = arch.mamba_head_dim or inner // heads
        return conv, heads * head_dim * arch.ssm_state_size
    return 0, 0


def kv_profile(arch: Architecture) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(K+V elements per token of the uncapped layers, ((window, K+V elements per token), ...) of the
    capped ones): kv_cache_bytes in closed form."""
    def compute(a):
        full = 0
        capped: dict[int, int] = {}
        for spec in a.layer_plan():
            if not spec.keeps_kv:
                continue
            width = 2 * spec.kv_heads * a.head_size
            if spec.mixer == "full" or spec.window is None:
                full += width
            else:
                capped[spec.window] = capped.get(spec.window, 0) + width
        return full, tuple(sorted(capped.items()))

    return cached("kv", arch, compute)


def state_profile(arch: Architecture) -> tuple[int, int]:
    """(conv-state elements, recurrent-state elements) of all state-keeping layers, per sequence."""
    def compute(a):
        conv = temporal = 0
        for spec in a.layer_plan():
            if spec.keeps_state:
                c, t = state_elements(a, spec)
                conv += c
                temporal += t
        return conv, temporal

    return cached("state", arch, compute)


def summary(arch: Architecture) -> dict:
    """Counts for `catalog show` / `list --json`: layers by mixer and feed-forward, windows, MoE facts."""
    plan = arch.layer_plan()
    mixers: dict[str, int] = {}
    ffns: dict[str, int] = {}
    for s in plan:
        mixers[s.mixer] = mixers.get(s.mixer, 0) + 1
        ffns[s.ffn] = ffns.get(s.ffn, 0) + 1
    out: dict = {"layers": len(plan), "mixers": mixers, "ffn": ffns,
                 "kv_cache_layers": sum(1 for s in plan if s.keeps_kv),
                 "recurrent_state_layers": sum(1 for s in plan if s.keeps_state)}
    windows = sorted({s.window for s in plan if s.window})
    if windows:
        out["windows"] = windows
    if arch.is_moe:
        out["experts"] = arch.num_local_experts
        out["experts_per_token"] = arch.num_experts_per_tok
    if arch.hidden_size_per_layer_input:
        out["per_layer_embedding_width"] = arch.hidden_size_per_layer_input
    return out

"""Build a truncated decoder (random weights, no download) and a full-size LM head for the probes.

With transformers installed the decoder is transformers' own class for the model_type, built from
a config made from the Architecture (AutoModel.from_config, attn_implementation="sdpa"); without
it, or for a model_type it does not know, the built-in Llama-style block (advisor.probe.blocks).
The LM head is built on its own at full vocabulary size because it does not scale with depth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.catalog.schema import Architecture
from advisor.probe.layer_mix import truncated_layers

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# The truncated decoder never needs the real vocabulary: the LM head is timed on its own.
SMALL_VOCAB = 512


def torch_dtype(fmt: str):
    import torch

    return getattr(torch, TORCH_DTYPES[fmt])


def cheap_fill_(module: Any, scale: float = 0.02) -> None:
    """Fill parameters with small pseudo-random values quickly (a random block tiled over each tensor).

    Random normal init of a 150k-vocabulary table takes seconds on a small CPU; timings do not depend
    on the values as long as they are finite and not denormal, except for the recurrent mixers' decay
    parameters (library_init_recurrent_ gives those the library's init).
    """
    import torch

    with torch.no_grad():
        for p in module.parameters():
            flat = p.data.view(-1)
            block = torch.empty(min(flat.numel(), 1 << 16), dtype=p.dtype, device=p.device).uniform_(-scale, scale)
            n = flat.numel()
            reps = n // block.numel()
            if reps:
                flat[: reps * block.numel()].view(reps, -1).copy_(block.expand(reps, -1))
            rest = n - reps * block.numel()
            if rest:
                flat[n - rest:].copy_(block[:rest])


# The decay parameters of Mamba-2 and Gated DeltaNet mixers: their values set how fast the recurrent
# state decays, and the reference (non-CUDA) kernels run at a speed that depends on them (exp of a
# cumulative decay). qwen3.5-0.8b's 3-layer prefill ran 25.7% slower with the library's
# own init of these than with cheap_fill_ (2026-12-01, this CPU), and the full model has the library's.
RECURRENT_DECAY_PARAMS = ("A_log", "dt_bias", "D")


def library_init_recurrent_(module: Any) -> list[str]:
    """Give the recurrent mixers' decay parameters the model class's own initialisation (cheap: a few
    values per head); every other tensor keeps cheap_fill_'s values. Returns a note when it cannot."""
    init = getattr(module, "_init_weights", None)
    subs = [m for m in module.modules()
            if any(name in RECURRENT_DECAY_PARAMS for name, _ in m.named_parameters(recurse=False))]
    if not subs:
        return []
    if init is None:
        return ["the recurrent layers' decay parameters keep placeholder values (no _init_weights): "
                "their reference kernels may run faster than with real weights"]
    import torch

    with torch.no_grad():
        for m in subs:
            init(m)
    return []


# Architecture keys passed through to the transformers config as they are (after truncating the
# per-layer ones to the probe's depth). MoE experts go under every name the families use.
_PASSTHROUGH = ("num_key_value_heads", "head_dim", "intermediate_size", "sliding_window", "attention_bias",
                "mlp_bias", "attn_output_gate", "sliding_window_pattern", "attention_chunk_size",
                "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                "moe_shared_expert_intermediate_size", "shared_intermediate_size", "n_shared_experts",
                "first_k_dense_replace", "decoder_sparse_step", "interleave_moe_layer_step", "intermediate_size_mlp",
                "full_attention_interval", "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                "linear_value_head_dim", "linear_conv_kernel_dim", "mamba_num_heads", "mamba_head_dim",
                "ssm_state_size", "n_groups", "conv_kernel", "expand", "hidden_size_per_layer_input",
                "vocab_size_per_layer_input")
# Granite-4.0-H spells the Mamba-2 keys its own way (GraniteMoeHybridConfig).
_GRANITE_MAMBA = {"mamba_num_heads": "mamba_n_heads", "mamba_head_dim": "mamba_d_head",
                  "ssm_state_size": "mamba_d_state", "n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv",
                  "expand": "mamba_expand"}


def hf_config_kwargs(arch: Architecture, layers: int, vocab_size: int, min_positions: int) -> dict:
    positions = max(arch.max_position_embeddings or 0, min_positions)
    common = {"vocab_size": vocab_size, "tie_word_embeddings": arch.tied_embeddings,
              "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if arch.family.config_names == "gpt2":
        return {"n_embd": arch.hidden_size, "n_layer": layers, "n_head": arch.num_attention_heads,
                "n_inner": arch.intermediate_size, "n_positions": positions, **common}
    kw: dict[str, Any] = {
        "hidden_size": arch.hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": arch.num_attention_heads,
        "max_position_embeddings": positions,
        **common,
    }
    for key in _PASSTHROUGH:
        value = getattr(arch, key)
        if value is not None:
            # Our schema keeps ratios such as `expand` as floats; transformers 5.x type-checks its config
            # fields and refuses 2.0 where its field is an int.
            kw[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    if arch.num_local_experts is not None:
        for name in ("num_local_experts", "num_experts", "n_routed_experts"):
            kw[name] = arch.num_local_experts
    # A hybrid keeps one layer of every kind (layer_mix); any other model its first `layers` layers.
    idx = truncated_layers(arch, layers)
    if arch.layer_types is not None:
        kw["layer_types"] = [arch.layer_types[i] for i in idx]
    elif arch.full_attention_interval and idx != list(range(layers)):
        k = arch.full_attention_interval   # the config's default layer_types would not follow idx
        kw["layer_types"] = ["full_attention" if (i + 1) % k == 0 else "linear_attention" for i in idx]
    if arch.hybrid_override_pattern is not None:
        kw["hybrid_override_pattern"] = "".join(arch.hybrid_override_pattern[i] for i in idx)
    if arch.mlp_only_layers:
        kw["mlp_only_layers"] = [j for j, i in enumerate(idx) if i in arch.mlp_only_layers]
    if arch.block_configs is not None:
        kw["block_configs"] = [arch.block_configs[i].model_dump() for i in idx]
    if arch.family.config_names == "granite":
        for ours, theirs in _GRANITE_MAMBA.items():
            if ours in kw:
                kw[theirs] = kw.pop(ours)
    return kw


def find_layers(module: Any, count: int) -> list:
    """The decoder blocks: the ModuleList of `count` entries with the most parameters."""
    from torch import nn

    best, best_n = None, -1
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList) and len(sub) == count:
            n = sum(p.numel() for p in sub.parameters())
            if n > best_n:
                best, best_n = sub, n
    if best is None:
        raise RuntimeError("cannot find the decoder layers")
    return list(best)


@dataclass
class Body:
    """A truncated decoder: forward(ids, cache) -> (last hidden states, cache)."""

    module: Any
    layers: list
    forward: Callable[[Any, Any], tuple[Any, Any]]
    backend: str
    notes: list[str] = field(default_factory=list)


class ConfigRefused(ValueError):
    """transformers refused the truncated config we built from a catalog architecture."""


def _build_transformers(arch: Architecture, layers: int, dtype, device: str, min_positions: int) -> Body:
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        from transformers.modeling_utils import no_init_weights

    try:
        cfg = AutoConfig.for_model(arch.model_type, **hf_config_kwargs(arch, layers, SMALL_VOCAB, min_positions))
    except Exception as exc:  # each release validates configs its own way (5.x: huggingface_hub's strict fields)
        raise ConfigRefused(f"{type(exc).__name__}: {exc}") from exc
    with no_init_weights(), torch.device(device):
        try:
            module = AutoModel.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
        except TypeError:
            module = AutoModel.from_config(cfg, torch_dtype=dtype, attn_implementation="sdpa")
    module.eval()
    cheap_fill_(module)
    notes = library_init_recurrent_(module)

    from advisor.probe.hf_cache import cache_name, cache_of

    kv = cache_name(module)

    def forward(ids, cache):
        out = module(input_ids=ids, use_cache=True, **{kv: cache})
        return out.last_hidden_state, cache_of(out)

    return Body(module, find_layers(module, layers), forward, "transformers", notes)


def _build_builtin(arch: Architecture, layers: int, dtype, device: str) -> Body:
    import torch

    from advisor.probe.blocks import build_llama_like

    with torch.device(device):
        module = build_llama_like(arch, layers, vocab_size=SMALL_VOCAB).to(dtype)
    module.eval()
    cheap_fill_(module)
    return Body(module, list(module.layers), lambda ids, cache: module(ids, cache), "built-in")


def transformers_available() -> bool:
    try:
        import transformers  # noqa: F401
    except Exception:
        return False
    return True


def build_body(arch: Architecture, layers: int, fmt: str, device: str, *, min_positions: int = 0,
               prefer: str = "transformers") -> Body:
    dtype = torch_dtype(fmt)
    if prefer == "transformers" and transformers_available():
        try:
            return _build_transformers(arch, layers, dtype, device, min_positions)
        except (ValueError, KeyError, ImportError) as exc:  # unknown model_type, missing class
            body = _build_builtin(arch, layers, dtype, device)
            body.notes.append(f"transformers cannot build model_type '{arch.model_type}' "
                              f"({type(exc.__cause__ or exc).__name__}); timed the built-in Llama-style block "
                              "instead")
            return body
    body = _build_builtin(arch, layers, dtype, device)
    if prefer == "transformers":
        body.notes.append("transformers is not installed: timed the built-in Llama-style block")
    return body


PREFILL_HEAD_COLUMNS = 65536


class LMHead:
    """The full-vocabulary LM head (and final logit soft-capping where the architecture has it).

    For a prompt the head is a large compute-bound GEMM (prompt x hidden x vocab) whose time is linear
    in the vocabulary; `prefill_call` times it on a slice of PREFILL_HEAD_COLUMNS rows of the weight
    and reports `prefill_scale` (vocab / slice) to multiply by. Decode steps use the whole weight:
    there the head is memory-bound and a slice could sit in cache.
    """

    def __init__(self, arch: Architecture, fmt: str, device: str):
        import torch
        from torch import nn

        # skip_init: nn.Linear's own random init of a 150k x 1k weight costs about a second on a small CPU
        self.linear = torch.nn.utils.skip_init(nn.Linear, arch.hidden_size, arch.vocab_size, bias=False,
                                               dtype=torch_dtype(fmt), device=device)
        cheap_fill_(self.linear)
        self.softcap = arch.family.logit_softcap  # final-logit soft-capping (gemma2: 30), architectures.yaml
        vocab = arch.vocab_size
        self.prefill_columns = vocab if vocab <= 1.5 * PREFILL_HEAD_COLUMNS else PREFILL_HEAD_COLUMNS
        self.prefill_scale = vocab / self.prefill_columns

    def _apply(self, hidden, weight):
        import torch
        import torch.nn.functional as F

        logits = F.linear(hidden, weight)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def __call__(self, hidden):
        return self._apply(hidden, self.linear.weight)

    def prefill_call(self, hidden):
        """Logits over the first `prefill_columns` tokens only; time x prefill_scale = the full head."""
        return self._apply(hidden, self.linear.weight[: self.prefill_columns])

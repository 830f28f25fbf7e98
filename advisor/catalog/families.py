"""Architecture family rules (catalog/architectures.yaml), keyed by a config.json `model_type`.

Every per-family fact that the parameter count, the KV/state model and the probes need (gated MLP
or not, norm kind, biases, q/k norms, which layers slide, ...) is data in architectures.yaml, read
from the transformers modeling file each entry names. This module only resolves an entry: a rule
it does not set comes from its `like` family, then from the `llama` entry, which sets every rule.
A model_type with no entry gets the llama rules and a note saying so, never an error.

The table is read lazily (first use), so importing the CLI stays cheap; catalog files that define
`architectures:` entries of their own register them here when the loader reads them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from advisor.catalog.schema import Strict
from advisor.catalog.schema import _check_source as check_source

BASE_FAMILY = "llama"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

# Rules that resolution fills in; every one is set by the base family.
RULES = ("tie_word_embeddings", "mlp", "norm", "norms_per_layer", "final_norm", "qkv_bias", "o_bias", "mlp_bias",
         "qk_norm", "learned_positions", "config_names", "sliding_layers", "sliding_window_pattern",
         "chunked_attention_interval", "linear_attention", "attn_output_gate", "attention_sinks",
         "expert_mlp", "expert_bias", "router_bias", "router_extra_per_expert", "shared_expert_gate",
         "shared_mlp_every_layer", "shared_expert", "mtp_layers", "mamba_conv_bias", "mamba_proj_bias",
         "ssm_state_dtype", "logit_softcap")


class ArchitectureFamily(Strict):
    """The rules of one model_type. Unset rules are inherited (see the module docstring)."""

    id: str                                   # the config.json model_type
    like: str | None = None                   # inherit unset rules from this family
    description: str | None = None
    source: str                               # the modeling file the rules were read from
    # the config class's default when a config.json has no tie_word_embeddings key
    tie_word_embeddings: bool | None = None
    # MLP: gated = gate/up/down (SwiGLU, GeGLU); plain = up/down (gpt2 fc/proj, Nemotron-H relu2)
    mlp: Literal["gated", "plain"] | None = None
    # rmsnorm: one weight vector; layernorm: weight and bias
    norm: Literal["rmsnorm", "layernorm"] | None = None
    norms_per_layer: int | None = Field(default=None, ge=0, le=16)
    final_norm: bool | None = None
    # bias defaults when the config has no attention_bias (attention_bias, when given, sets both)
    qkv_bias: bool | None = None
    o_bias: bool | None = None
    mlp_bias: bool | None = None
    # q/k norms: none; head = one weight of head_dim each (qwen3, gemma3); full = over all heads (olmo2)
    qk_norm: Literal["none", "head", "full"] | None = None
    learned_positions: bool | None = None
    # how the transformers config spells its keys: hf; gpt2 (n_embd, n_layer, ...); granite
    # (mamba_n_heads, mamba_d_state, ... for the Mamba-2 keys)
    config_names: Literal["hf", "gpt2", "granite"] | None = None
    # which layers use the sliding window when the config has sliding_window but no layer_types:
    # none; all; alternate (even layers, from layer 0); pattern (every sliding_window_pattern-th
    # layer is global, the others slide)
    sliding_layers: Literal["none", "all", "alternate", "pattern"] | None = None
    sliding_window_pattern: int | None = Field(default=None, ge=1, le=10_000)
    # chunked local attention when attention_chunk_size is set and layer_types absent: every
    # interval-th layer is global (llama4's NoPE layers), the others attend within their chunk
    chunked_attention_interval: int | None = Field(default=None, ge=0, le=10_000)
    # what a "linear_attention" layer is in this family
    linear_attention: Literal["gated_deltanet", "mamba2"] | None = None
    attn_output_gate: bool | None = None      # q_proj also emits a sigmoid gate (2 x heads x head_dim)
    attention_sinks: bool | None = None       # one learned sink logit per head (gpt-oss)
    expert_mlp: Literal["gated", "plain"] | None = None
    expert_bias: bool | None = None
    router_bias: bool | None = None
    router_extra_per_expert: int | None = Field(default=None, ge=0, le=16)  # e.g. a stored correction bias
    shared_expert_gate: bool | None = None    # Linear(hidden, 1) gating the shared expert (qwen2_moe)
    shared_mlp_every_layer: bool | None = None  # granite: a shared MLP of shared_intermediate_size in every layer
    # the shared expert's width when the config names none: none, or intermediate_size (llama4)
    shared_expert: Literal["none", "intermediate_size"] | None = None
    mtp_layers: int | None = Field(default=None, ge=0, le=64)   # stored multi-token-prediction layers
    mamba_conv_bias: bool | None = None
    mamba_proj_bias: bool | None = None
    # dtype of the recurrent (SSM / delta-rule) state: the model's, or float32 where the config asks for it
    ssm_state_dtype: Literal["model", "float32"] | None = None
    logit_softcap: float | None = Field(default=None, gt=0, le=1e6)
    notes: str | None = None

    _src = field_validator("source")(check_source)

    @field_validator("id", "like")
    @classmethod
    def _id_form(cls, value):
        if value is not None and not _ID_RE.match(value):
            raise ValueError(f"'{value}' is not a model_type (lowercase letters, digits, _ . -)")
        return value


class ResolvedFamily:
    """Every rule set: the entry's own, its `like` chain's, then the base family's."""

    def __init__(self, model_type: str, chain: list[ArchitectureFamily], known: bool):
        self.model_type = model_type
        self.known = known
        self.sources = [f.source for f in chain]
        for rule in RULES:
            value = next((getattr(f, rule) for f in chain if getattr(f, rule) is not None), None)
            setattr(self, rule, value)

    @property
    def note(self) -> str | None:
        if self.known:
            return None
        return (f"model_type '{self.model_type}' has no entry in architectures.yaml: its parameters, KV cache "
                f"and probes follow the {BASE_FAMILY} rules (gated MLP, RMSNorm, no biases)")

    # ---- the rules resolved as the counts use them ----
    tie_word_embeddings: bool
    mlp: str
    norm: str
    norms_per_layer: int
    final_norm: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    qk_norm: str
    learned_positions: bool
    config_names: str
    sliding_layers: str
    sliding_window_pattern: int | None
    chunked_attention_interval: int | None
    linear_attention: str
    attn_output_gate: bool
    attention_sinks: bool
    expert_mlp: str
    expert_bias: bool
    router_bias: bool
    router_extra_per_expert: int
    shared_expert_gate: bool
    shared_mlp_every_layer: bool
    shared_expert: str
    mtp_layers: int
    mamba_conv_bias: bool
    mamba_proj_bias: bool
    ssm_state_dtype: str
    logit_softcap: float | None

    @property
    def norm_params_per_width(self) -> int:
        """LayerNorm stores a weight and a bias per channel; RMSNorm a weight only."""
        return 2 if self.norm == "layernorm" else 1


class _Registry:
    def __init__(self):
        self._families: dict[str, ArchitectureFamily] | None = None
        self._resolved: dict[str, ResolvedFamily] = {}
        self.generation = 0   # bumped when the rules change: caches of derived figures key on it

    def _builtin(self) -> dict[str, ArchitectureFamily]:
        if self._families is None:
            from advisor.catalog.loader import builtin_catalog_dir
            from advisor.yamlio import load_yaml, strip_lines

            doc = strip_lines(load_yaml(builtin_catalog_dir() / "architectures.yaml", with_lines=True)) or {}
            self._families = {}
            for raw in doc.get("architectures") or []:
                fam = ArchitectureFamily.model_validate(raw)
                self._families[fam.id] = fam
        return self._families

    def all(self) -> dict[str, ArchitectureFamily]:
        return dict(self._builtin())

    def register(self, families: list[ArchitectureFamily]) -> None:
        """Entries from catalog files (a user's file may add or override a model_type)."""
        table = self._builtin()
        for fam in families:
            table[fam.id] = fam
        self._resolved.clear()
        self.generation += 1

    def reset(self) -> None:
        self._families = None
        self._resolved.clear()
        self.generation += 1

    def resolve(self, model_type: str) -> ResolvedFamily:
        if model_type in self._resolved:
            return self._resolved[model_type]
        table = self._builtin()
        known = model_type in table
        chain: list[ArchitectureFamily] = []
        name: str | None = model_type if known else BASE_FAMILY
        while name is not None and name in table and table[name] not in chain:
            chain.append(table[name])
            name = table[name].like
        if BASE_FAMILY in table and table[BASE_FAMILY] not in chain:
            chain.append(table[BASE_FAMILY])
        resolved = ResolvedFamily(model_type, chain, known)
        missing = [r for r in RULES if getattr(resolved, r) is None and r not in _OPTIONAL_RULES]
        if missing:
            from advisor.errors import CatalogError

            raise CatalogError(f"architectures.yaml: family '{BASE_FAMILY}' must set every rule; missing: "
                               + ", ".join(missing))
        self._resolved[model_type] = resolved
        return resolved


# rules whose absence is meaningful (no pattern, no interval, no softcap)
_OPTIONAL_RULES = {"sliding_window_pattern", "chunked_attention_interval", "logit_softcap"}

REGISTRY = _Registry()


def family_of(model_type: str) -> ResolvedFamily:
    return REGISTRY.resolve(model_type)


def check_families(families: dict[str, ArchitectureFamily], *, require_base: bool = True) -> list[tuple[str, str, str]]:
    """(family id, field, message) for every `like` that names no family, a cycle, or an incomplete base."""
    problems = []
    for fam in families.values():
        seen = {fam.id}
        name = fam.like
        while name is not None:
            if name not in families:
                problems.append((fam.id, "like", f"unknown family '{name}'"))
                break
            if name in seen:
                problems.append((fam.id, "like", f"'like' chain loops back to '{name}'"))
                break
            seen.add(name)
            name = families[name].like
    base = families.get(BASE_FAMILY)
    if not require_base:
        return problems
    if families and base is None:
        problems.append((BASE_FAMILY, "id", f"the '{BASE_FAMILY}' family (the defaults) is missing"))
    elif base is not None:
        for rule in RULES:
            if rule not in _OPTIONAL_RULES and getattr(base, rule) is None:
                problems.append((BASE_FAMILY, rule, "the base family must set every rule"))
    return problems

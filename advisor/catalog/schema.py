"""Pydantic models for everything the catalog holds: models, hardware targets, tasks, formats, tiers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The 16-bit (and fp32) releases every model is assumed to have unless `official_16bit` is false.
FLOAT_FORMATS = ("fp32", "bf16", "fp16")
# Format and benchmark ids are data (catalog/formats.yaml, catalog/benchmarks.yaml); the loader checks
# that every id a model or task names is defined there.
_FORMAT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.+_-]*$")
# Aliases may also be Hugging Face repo ids ("Qwen/Qwen2.5-0.5B"); lookups are case-insensitive.
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*(/[A-Za-z0-9][A-Za-z0-9.+_-]*)?$")
_SOURCE_RE = re.compile(r"^(https?://\S+|arxiv:\S+|.{8,})$")

# gpt2-style config names and the Hugging Face names they stand for.
GPT2_KEY_ALIASES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "n_positions": "max_position_embeddings",
    "n_inner": "intermediate_size",
    "n_ctx": "max_position_embeddings",
}


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a catalog file must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_source(value: str) -> str:
    if not value or not _SOURCE_RE.match(value.strip()):
        raise ValueError("must be a URL or a paper reference")
    return value


LayerTypeName = Literal["full_attention", "sliding_attention", "chunked_attention", "linear_attention", "mamba",
                        "attention"]

# Other spellings of the same config keys, and the name this schema keeps (a config's own names are
# accepted verbatim; both spellings with different values are an error).
KEY_ALIASES = {
    **GPT2_KEY_ALIASES,
    "num_experts": "num_local_experts",          # Qwen
    "n_routed_experts": "num_local_experts",     # DeepSeek, Nemotron
    "mamba_n_heads": "mamba_num_heads",          # Granite-4.0-H -> Nemotron-H names
    "mamba_d_head": "mamba_head_dim",
    "mamba_d_state": "ssm_state_size",
    "mamba_n_groups": "n_groups",
    "mamba_d_conv": "conv_kernel",
    "mamba_expand": "expand",
    "mtp_num_hidden_layers": "mtp_layers",       # Qwen3.5
    "num_nextn_predict_layers": "mtp_layers",    # DeepSeek / vLLM's name
}
# A zero in these means "none" in published configs (granite dense: num_local_experts 0).
_ZERO_IS_NONE = ("num_local_experts", "num_experts_per_tok", "shared_expert_intermediate_size",
                 "moe_shared_expert_intermediate_size", "shared_intermediate_size", "n_shared_experts",
                 "sliding_window", "attention_chunk_size", "full_attention_interval")


class NasAttention(BaseModel):
    """One DeciLM block's attention (block_configs[i].attention), keys verbatim; extra keys kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    n_heads_in_group: int | None = Field(default=None, gt=0, le=100_000)
    no_op: bool = False
    replace_with_linear: bool = False


class NasFfn(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    ffn_mult: float | None = Field(default=None, gt=0, le=1000)
    intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)
    no_op: bool = False
    replace_with_linear: bool = False


class NasBlock(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    attention: NasAttention
    ffn: NasFfn


class Architecture(Strict):
    """Architecture with the key names of a Hugging Face config.json (the text model's, for a multimodal one).

    Hybrid, MoE, NAS and per-layer-embedding keys are optional; which layers hold a KV cache, which
    hold a recurrent state and which are MoE is derived in advisor/catalog/layers.py. Family rules
    (biases, norms, gated MLP, ...) come from catalog/architectures.yaml by model_type.
    """

    model_type: str
    hidden_size: int = Field(gt=0, le=1_000_000)
    num_hidden_layers: int = Field(gt=0, le=10_000)
    num_attention_heads: int = Field(gt=0, le=100_000)
    num_key_value_heads: int | None = Field(default=None, gt=0, le=100_000)
    head_dim: int | None = Field(default=None, gt=0, le=100_000)
    intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)
    vocab_size: int = Field(gt=0, le=100_000_000)
    max_position_embeddings: int | None = Field(default=None, gt=0, le=100_000_000)
    # None: the transformers config class's default for the family (gemma, gpt2: tied; llama: not)
    tie_word_embeddings: bool | None = None
    sliding_window: int | None = Field(default=None, gt=0, le=100_000_000)
    # The config's per-layer list verbatim; None means the family's convention (architectures.yaml).
    layer_types: list[LayerTypeName] | None = Field(default=None, max_length=10_000)
    attention_bias: bool | None = None
    mlp_bias: bool | None = None
    attn_output_gate: bool | None = None
    sliding_window_pattern: int | None = Field(default=None, gt=0, le=10_000)
    attention_chunk_size: int | None = Field(default=None, gt=0, le=100_000_000)
    # MoE (num_experts / n_routed_experts are accepted as num_local_experts)
    num_local_experts: int | None = Field(default=None, gt=0, le=100_000)
    num_experts_per_tok: int | None = Field(default=None, gt=0, le=100_000)
    moe_intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)
    shared_expert_intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)
    moe_shared_expert_intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)  # Nemotron 3
    shared_intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)             # Granite
    n_shared_experts: int | None = Field(default=None, gt=0, le=100_000)
    first_k_dense_replace: int | None = Field(default=None, ge=0, le=10_000)
    mlp_only_layers: list[int] | None = Field(default=None, max_length=10_000)
    decoder_sparse_step: int | None = Field(default=None, gt=0, le=10_000)
    interleave_moe_layer_step: int | None = Field(default=None, gt=0, le=10_000)
    intermediate_size_mlp: int | None = Field(default=None, gt=0, le=10_000_000)              # Llama 4 dense layers
    # Gated DeltaNet (Qwen3-Next, Qwen3.5/3.6)
    full_attention_interval: int | None = Field(default=None, gt=0, le=10_000)
    linear_num_key_heads: int | None = Field(default=None, gt=0, le=100_000)
    linear_num_value_heads: int | None = Field(default=None, gt=0, le=100_000)
    linear_key_head_dim: int | None = Field(default=None, gt=0, le=100_000)
    linear_value_head_dim: int | None = Field(default=None, gt=0, le=100_000)
    linear_conv_kernel_dim: int | None = Field(default=None, gt=0, le=1_000)
    # Mamba-2 (Nemotron-H names; Granite's mamba_n_heads, mamba_d_head, ... are accepted)
    hybrid_override_pattern: str | None = Field(default=None, max_length=10_000, pattern=r"^[M*\-E]+$")
    mamba_num_heads: int | None = Field(default=None, gt=0, le=100_000)
    mamba_head_dim: int | None = Field(default=None, gt=0, le=100_000)
    ssm_state_size: int | None = Field(default=None, gt=0, le=100_000)
    n_groups: int | None = Field(default=None, gt=0, le=100_000)
    conv_kernel: int | None = Field(default=None, gt=0, le=1_000)
    expand: float | None = Field(default=None, gt=0, le=1_000)
    # Per-layer embeddings (Gemma 3n / Gemma 4 "E" models)
    hidden_size_per_layer_input: int | None = Field(default=None, gt=0, le=1_000_000)
    vocab_size_per_layer_input: int | None = Field(default=None, gt=0, le=100_000_000)
    # NAS-heterogeneous layers (DeciLM / Llama-3.3-Nemotron-Super): the config's list verbatim
    block_configs: list[NasBlock] | None = Field(default=None, max_length=10_000)
    # Stored multi-token-prediction layers (Qwen3.5 mtp_num_hidden_layers); None: the family's default
    mtp_layers: int | None = Field(default=None, ge=0, le=64)
    # Not a config.json key: the entry's params_vision (vision tower + projector), resident with the
    # text weights. Filled in by ModelEntry; a catalog file sets params_vision on the entry instead.
    vision_params: int | None = Field(default=None, ge=0, le=10**14, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _accept_config_names(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in KEY_ALIASES.items():
            if old in data:
                value = data.pop(old)
                if new in data and data[new] is not None and value is not None and data[new] != value:
                    raise ValueError(f"'{old}' ({value!r}) and '{new}' ({data[new]!r}) disagree")
                if data.get(new) is None:
                    data[new] = value
        for key in _ZERO_IS_NONE:
            if data.get(key) == 0 and not isinstance(data.get(key), bool):
                data[key] = None
        if data.get("mlp_only_layers") == []:
            data["mlp_only_layers"] = None
        return data

    @model_validator(mode="after")
    def _consistent(self):
        kv = self.num_key_value_heads
        if kv is not None and self.num_attention_heads % kv != 0:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                             f"num_key_value_heads ({kv})")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError("hidden_size is not a multiple of num_attention_heads and head_dim is not given")
        if (self.num_experts_per_tok is not None) != (self.num_local_experts is not None):
            raise ValueError("num_local_experts (or num_experts / n_routed_experts) "
                             "and num_experts_per_tok go together")
        if self.num_local_experts and self.num_experts_per_tok > self.num_local_experts:
            raise ValueError("num_experts_per_tok exceeds num_local_experts")
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError("layer_types must have one entry per layer")
        if self.hybrid_override_pattern is not None and len(self.hybrid_override_pattern) != self.num_hidden_layers:
            raise ValueError(f"hybrid_override_pattern has {len(self.hybrid_override_pattern)} layers, "
                             f"num_hidden_layers says {self.num_hidden_layers}")
        if self.block_configs is not None and len(self.block_configs) != self.num_hidden_layers:
            raise ValueError("block_configs must have one entry per layer")
        for i in self.mlp_only_layers or ():
            if not 0 <= i < self.num_hidden_layers:
                raise ValueError(f"mlp_only_layers names layer {i}, outside 0..{self.num_hidden_layers - 1}")
        from advisor.catalog import layers

        for problem in layers.missing_dims(self):
            raise ValueError(problem)
        return self

    # Derived figures: every consumer uses these rather than re-deriving defaults.
    @property
    def family(self):
        """The resolved architectures.yaml rules for this model_type."""
        from advisor.catalog.families import family_of

        return family_of(self.model_type)

    @property
    def tied_embeddings(self) -> bool:
        """Whether the LM head shares the embedding table (counted once)."""
        if self.tie_word_embeddings is not None:
            return self.tie_word_embeddings
        return self.family.tie_word_embeddings

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def ffn_size(self) -> int:
        """The dense MLP width (for an MoE model: one expert's when no dense width is given)."""
        return self.intermediate_size or self.moe_intermediate_size or 4 * self.hidden_size

    @property
    def expert_size(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size or 4 * self.hidden_size

    @property
    def gated_mlp(self) -> bool:
        """SwiGLU/GeGLU MLPs have three matrices; gpt2-style MLPs two."""
        return self.family.mlp == "gated"

    @property
    def is_moe(self) -> bool:
        return bool(self.num_local_experts and self.num_local_experts > 1)

    @property
    def learned_positions(self) -> bool:
        return self.family.learned_positions

    def layer_plan(self):
        """One LayerSpec per layer: its token mixer (full / sliding / chunked attention, linear attention,
        Mamba-2, none) with its window, and its feed-forward (dense / MoE / none)."""
        from advisor.catalog.layers import layer_plan

        return layer_plan(self)

    def sliding_layers(self) -> int:
        """How many layers attend over a sliding window only."""
        return sum(1 for spec in self.layer_plan() if spec.mixer == "sliding")

    @property
    def is_hybrid(self) -> bool:
        """Some layers keep a fixed-size recurrent state instead of a KV cache."""
        return any(spec.mixer in ("linear", "mamba") for spec in self.layer_plan())


class Benchmark(Strict):
    name: str
    value: float = Field(ge=0, le=1e6)
    variant: Literal["base", "instruct"]
    shots: int | None = Field(default=None, ge=0, le=1000)
    scale: float = Field(default=100.0, gt=0, le=1e6)
    metric: str | None = None
    # Who ran the evaluation when it was not the model's developer (e.g. "qwen3-report"): scores of
    # one benchmark from different evaluators are not comparable.
    evaluator: str | None = None
    source: str

    _src = field_validator("source")(_check_source)

    @model_validator(mode="after")
    def _within_scale(self):
        if self.value > self.scale:
            raise ValueError(f"value {self.value} exceeds its scale {self.scale}")
        return self

    @property
    def normalised(self) -> float:
        """The score on a 0-100 scale."""
        return 100.0 * self.value / self.scale


LineageMethod = Literal["distill", "prune", "nas", "quantise", "fine-tune", "merge", "continued-pretrain"]
# Older spellings (the first catalog wrote "distilled", "pruned+distilled").
_METHOD_ALIASES = {"distilled": "distill", "distillation": "distill", "pruned": "prune", "pruning": "prune",
                   "quantised": "quantise", "quantized": "quantise", "quantize": "quantise",
                   "fine-tuned": "fine-tune", "finetune": "fine-tune", "sft": "fine-tune", "merged": "merge",
                   "continued-pretraining": "continued-pretrain"}


class Lineage(Strict):
    """Where a model comes from: a catalog id or Hugging Face repo id, and how it was made from it."""

    derived_from: str
    method: list[LineageMethod] = Field(min_length=1, max_length=7)
    source: str

    _src = field_validator("source")(_check_source)

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "parent" in data:  # the first schema's name
            parent = data.pop("parent")
            if data.get("derived_from") not in (None, parent):
                raise ValueError("'parent' and 'derived_from' disagree")
            data["derived_from"] = parent
        method = data.get("method")
        if isinstance(method, str):
            method = [m for m in method.replace(",", "+").split("+") if m.strip()]
        if isinstance(method, list):
            data["method"] = [_METHOD_ALIASES.get(m.strip().lower(), m.strip().lower()) if isinstance(m, str) else m
                              for m in method]
        return data

    @field_validator("derived_from")
    @classmethod
    def _repo_or_id(cls, value: str) -> str:
        if not _ALIAS_RE.match(value):
            raise ValueError(f"'{value}' is neither a catalog id nor an org/name repo id")
        return value

    @property
    def parent(self) -> str:
        return self.derived_from

    @property
    def methods(self) -> str:
        return "+".join(self.method)


class ModelEntry(Strict):
    id: str
    name: str
    family: str
    aliases: list[str] = Field(default_factory=list)
    params_total: int = Field(gt=0, le=10**14)
    params_active: int | None = Field(default=None, gt=0, le=10**14)
    # Vision tower + projector of a multimodal model (in params_total; resident even for text use).
    params_vision: int | None = Field(default=None, ge=0, le=10**14)
    params_source: str
    architecture: Architecture | None = None
    # A local config.json path (relative to the catalog file); never fetched from a hub.
    hf_config: str | None = None
    architecture_source: str | None = None
    context_length: int | None = Field(default=None, gt=0, le=100_000_000)
    license: str
    license_source: str
    # Formats the model's developer publishes besides the 16-bit release (ids from formats.yaml).
    formats: list[str] = Field(default_factory=list)
    formats_source: str | None = None
    # False when the developer publishes no 16-bit checkpoint (gpt-oss ships MXFP4 only).
    official_16bit: bool = True
    lineage: Lineage | None = None
    benchmarks: list[Benchmark] = Field(default_factory=list)
    notes: str | None = None

    _src = field_validator("params_source", "license_source")(_check_source)

    @field_validator("id", mode="after")
    @classmethod
    def _lowercase_id(cls, value: str):
        if not _ID_RE.match(value):
            raise ValueError(f"'{value}' is not a lowercase id (letters, digits, . + _ -)")
        return value

    @field_validator("aliases", mode="after")
    @classmethod
    def _alias_form(cls, value: list[str]):
        for v in value:
            if not _ALIAS_RE.match(v):
                raise ValueError(f"alias '{v}' is not an id or an org/name repo id")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.architecture is None and self.hf_config is None:
            raise ValueError("give either 'architecture' or 'hf_config'")
        if self.architecture is not None and self.hf_config is not None:
            raise ValueError("give 'architecture' or 'hf_config', not both")
        if self.architecture is not None and not self.architecture_source:
            raise ValueError("'architecture' needs an 'architecture_source'")
        if self.formats and not self.formats_source:
            raise ValueError("quantised 'formats' need a 'formats_source'")
        if self.params_active is not None and self.params_active > self.params_total:
            raise ValueError("params_active exceeds params_total")
        if self.params_vision is not None and self.params_vision >= self.params_total:
            raise ValueError("params_vision must be less than params_total (which includes it)")
        if self.architecture is not None and self.architecture.vision_params is not None:
            raise ValueError("architecture.vision_params is derived: give params_vision on the entry")
        if self.params_vision and self.architecture is not None:
            # the vision tower is resident with the text weights: the memory model reads it from here
            object.__setattr__(self, "architecture",
                               self.architecture.model_copy(update={"vision_params": self.params_vision}))
        return self

    @property
    def arch(self) -> Architecture:
        assert self.architecture is not None, "hf_config entries are resolved by the loader"
        return self.architecture

    def with_architecture(self, arch: Architecture, **update) -> ModelEntry:
        """A copy with `arch` (resolved from hf_config or a local config), carrying params_vision into it."""
        if self.params_vision:
            arch = arch.model_copy(update={"vision_params": self.params_vision})
        return self.model_copy(update={"architecture": arch, **update})

    @property
    def params_text(self) -> int:
        """Parameters of the language model alone (what the architecture recount matches)."""
        return self.params_total - (self.params_vision or 0)

    @property
    def context(self) -> int | None:
        return self.context_length or (self.architecture.max_position_embeddings if self.architecture else None)

    def official_formats(self) -> list[str]:
        """Formats the developer publishes: the 16-bit release (unless absent) and `formats`."""
        floats = list(FLOAT_FORMATS) if self.official_16bit else []
        return floats + [f for f in self.formats if f not in floats]

    def offered_formats(self) -> list[str]:
        return self.official_formats()

    def format_origin(self, fmt: str) -> Literal["official", "community"]:
        """'official' when the developer publishes it; any other format is community or self-quantised."""
        return "official" if fmt in self.official_formats() else "community"


class Interconnect(Strict):
    """How the GPUs of one node talk to each other (tensor-parallel all-reduce runs over it)."""

    kind: Literal["nvlink", "pcie", "infinity-fabric", "none"]
    bandwidth_gbs: float = Field(gt=0, le=1e7)   # per GPU, as the datasheet prints it (both directions)
    generation: str | None = None               # "NVLink 4", "PCIe 4.0 x16"
    source: str

    _src = field_validator("source")(_check_source)


_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
# Fields an instance target (one with `device`) takes from its device target when it does not set them.
DEVICE_FIELDS = ("memory_gb", "memory_bytes", "memory_source", "memory_bandwidth_gbs", "peak_tflops", "tdp_w",
                 "interconnect")


class HardwareTarget(Strict):
    """A device type (one GPU, or a CPU host) or a cloud instance rented by name (`device` + `gpus`)."""

    id: str
    name: str
    kind: Literal["gpu", "cpu"]
    memory_gb: float | None = Field(default=None, gt=0, le=1e7)   # the marketing size, for display
    # What the driver reports (NVML memory total, or vLLM's total_gpu_memory line), in bytes.
    memory_bytes: int | None = Field(default=None, gt=0, le=10**15)
    memory_source: str | None = None
    memory_bandwidth_gbs: float | None = Field(default=None, gt=0, le=1e7)
    peak_tflops: dict[Literal["fp32", "fp16", "bf16", "fp8", "int8", "fp4", "int4"], float] | None = None
    tdp_w: float | None = Field(default=None, gt=0, le=1e7)
    gpus: int = Field(default=1, ge=1, le=1024)          # devices the target has by default
    gpus_per_node: int | None = Field(default=None, ge=1, le=1024)  # most devices one node holds
    interconnect: Interconnect | None = None
    # An instance target (a cloud machine rented by name) points at the device target of its GPUs.
    device: str | None = None
    cloud: Literal["aws", "gcp", "azure", "oci", "other"] | None = None
    instance: str | None = Field(default=None, max_length=100)
    instance_price_per_hour_usd: float | None = Field(default=None, ge=0, le=1e7)
    price_per_hour_usd: float | None = Field(default=None, ge=0, le=1e7)   # per GPU-hour
    price_source: str | None = None
    price_region: str | None = Field(default=None, max_length=64)
    price_date: str | None = None
    # NVML device-name patterns (regular expressions on the lower-cased name with - _ / as spaces)
    # and the NVML total in decimal GB, [from, below), that picks this size variant.
    nvml_names: list[str] = Field(default_factory=list, max_length=32)
    nvml_memory_gb: tuple[float, float] | None = None
    source: str | None = None
    notes: str | None = None

    @field_validator("source", "price_source", "memory_source")
    @classmethod
    def _sourced(cls, value):
        return None if value is None else _check_source(value)

    @field_validator("peak_tflops")
    @classmethod
    def _positive(cls, value):
        for k, v in (value or {}).items():
            if not 0 < v <= 1e7:
                raise ValueError(f"peak_tflops.{k} must be > 0 and <= 1e7")
        return value

    @field_validator("nvml_names")
    @classmethod
    def _patterns(cls, value):
        for pattern in value:
            if len(pattern) > 200:
                raise ValueError("an nvml_names pattern is longer than 200 characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"nvml_names pattern {pattern!r} is not a regular expression ({exc})") from None
        return value

    @field_validator("price_date")
    @classmethod
    def _date(cls, value):
        if value is not None and not _DATE_RE.match(value):
            raise ValueError("price_date must be YYYY-MM or YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.device is None:
            missing = [f for f in ("memory_gb", "memory_bandwidth_gbs", "peak_tflops", "source")
                       if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a device target needs {', '.join(missing)} (or 'device' for an instance)")
        elif self.nvml_names:
            raise ValueError("an instance target is matched through its device: put nvml_names on the device")
        if self.price_per_hour_usd is not None:
            missing = [f for f in ("price_source", "price_region", "price_date") if not getattr(self, f)]
            if missing:
                raise ValueError(f"price_per_hour_usd needs {', '.join(missing)}")
        if self.instance_price_per_hour_usd is not None:
            if self.device is None:
                raise ValueError("instance_price_per_hour_usd is for instance targets (give 'device')")
            per_gpu = self.instance_price_per_hour_usd / self.gpus
            if self.price_per_hour_usd is None:
                raise ValueError("an instance price needs price_per_hour_usd (per GPU-hour) beside it")
            if abs(per_gpu - self.price_per_hour_usd) > 0.01 * max(per_gpu, 1e-9):
                raise ValueError(f"price_per_hour_usd {self.price_per_hour_usd} is not instance price / gpus "
                                 f"({per_gpu:.4f})")
        if self.memory_bytes is not None and not self.memory_source:
            raise ValueError("memory_bytes needs a memory_source")
        if self.memory_bytes is not None and self.memory_gb is not None:
            ratio = self.memory_bytes / (self.memory_gb * 1e9)
            if not 0.85 <= ratio <= 1.15:
                raise ValueError(f"memory_bytes {self.memory_bytes:,} is {ratio:.2f} x memory_gb: a typo?")
        if self.gpus_per_node is not None and self.gpus > self.gpus_per_node:
            raise ValueError(f"gpus ({self.gpus}) exceeds gpus_per_node ({self.gpus_per_node})")
        if self.nvml_memory_gb is not None and not 0 <= self.nvml_memory_gb[0] < self.nvml_memory_gb[1]:
            raise ValueError("nvml_memory_gb must be [from, below) with from < below")
        return self

    @property
    def max_gpus(self) -> int:
        """The most devices a deployment on this target may use (one node)."""
        return max(self.gpus, self.gpus_per_node or 1)

    @property
    def device_memory_bytes(self) -> int:
        """Bytes one device offers: the driver's total where known, else memory_gb in decimal GB."""
        return self.memory_bytes or int(self.memory_gb * 1e9)

    @property
    def is_instance(self) -> bool:
        return self.device is not None

    def with_device(self, device: HardwareTarget) -> HardwareTarget:
        """This instance with every figure it does not set taken from its device target."""
        update = {f: getattr(device, f) for f in DEVICE_FIELDS if getattr(self, f) is None}
        if self.source is None:
            update["source"] = device.source
        return self.model_copy(update=update)


class QualityProxy(Strict):
    """How a task's quality PROXY is built from published scores (advisor/recommend/quality.py)."""

    description: str
    weights: dict[str, float]
    # Benchmarks a model must have (in `variant`) to be scored at all; without them it is unscored.
    core: list[str] = Field(default_factory=list)
    min_coverage: float = Field(default=0.5, ge=0, le=1)
    # Only scores of this checkpoint variant count: base and instruct scores are never mixed in one figure.
    variant: Literal["base", "instruct"] = "instruct"
    # Differences smaller than this many points are ties (the proxy is not more precise than that).
    band_points: float = Field(default=3.0, ge=0, le=100)
    # Position points per benchmark point of a format's documented loss (formats.yaml): one benchmark's
    # scores span about 40 points across the catalog, so one point is about 2.5 positions. One constant,
    # not each benchmark's own span, so that a model's proxy never depends on which peers it has.
    format_delta_scale: float = Field(default=2.5, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data):
        if isinstance(data, dict) and "prefer_variant" in data:
            data = dict(data)
            data.setdefault("variant", data.pop("prefer_variant"))
        return data

    @field_validator("weights")
    @classmethod
    def _known(cls, value):
        if not value:
            raise ValueError("needs at least one benchmark weight")
        for k, w in value.items():
            if not 0 < w <= 1e6:
                raise ValueError(f"weight of '{k}' must be > 0 and <= 1e6")
        return value

    @model_validator(mode="after")
    def _core_weighted(self):
        missing = [b for b in self.core if b not in self.weights]
        if missing:
            raise ValueError(f"core benchmarks need a weight: {', '.join(missing)}")
        return self


class GenerationSettings(Strict):
    temperature: float = Field(ge=0, le=2)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(gt=0)
    rationale: str


class TaskProfile(Strict):
    id: str
    description: str
    prompt_tokens: int = Field(gt=0, le=10_000_000)
    new_tokens: int = Field(gt=0, le=10_000_000)
    batch: int = Field(default=1, gt=0, le=100_000)
    lengths_source: str | None = None
    latency_budget_ms: float = Field(gt=0, le=1e10)
    quality_proxy: QualityProxy
    generation: GenerationSettings


class FormatSpec(Strict):
    """One weight format: how its weights are stored, which kernels run it, and its quality proxy delta.

    Weight bytes: `quantized_tensors: linear` stores the attention and MLP matrices at `bytes_per_param`
    plus `scale_bytes` (and `zero_bytes`) per group of `group_size` inputs, or per output channel when
    `group_size` is absent, and keeps embeddings, LM head and norms in 16-bit (GPTQ, AWQ, bitsandbytes,
    fp8 checkpoints); `experts` does so for the MoE expert matrices only (gpt-oss MXFP4; the linear
    layers of a dense model). `quantized_tensors: all` stores every parameter at `bits_per_weight` (GGUF files,
    whose block scales and tensor mix are folded into that figure) or at `bytes_per_param`.
    """

    id: str
    bytes_per_param: float = Field(gt=0, le=64)
    quality_delta_points: float = Field(default=0.0, ge=-100, le=100)
    quality_delta_source: str | None = None
    group_size: int | None = Field(default=None, gt=0, le=1_000_000)
    # Kernel family: which efficiency of a runtime applies (catalog/runtimes.yaml keys by `kernel`).
    family: Literal["float", "fp8", "int8", "int4", "fp4", "gguf"] = "float"
    kernel: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*$")
    bits_per_weight: float | None = Field(default=None, gt=0, le=64)
    bits_source: str | None = None
    quantized_tensors: Literal["all", "linear", "experts"] = "all"
    scale_bytes: float = Field(default=0.0, ge=0, le=64)
    zero_bytes: float = Field(default=0.0, ge=0, le=64)
    # native: multiplies in its own dtype; w8a8 / w4a4: activations quantised too, at the fp8 / fp4
    # tensor-core rate on GPUs that have one (weight-only elsewhere); weight-only: dequantised and
    # multiplied in 16-bit.
    compute: Literal["native", "w8a8", "w4a4", "weight-only"] = "native"
    method: str | None = None                   # awq, gptq, k-quant, bitsandbytes, microscaling ...
    variant_of: str | None = None               # awq/gptq are named int4 methods (same storage as int4)
    source: str | None = None
    note: str | None = None

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not _FORMAT_ID_RE.match(value):
            raise ValueError(f"'{value}' is not a lowercase format id (letters, digits, _)")
        return value

    @model_validator(mode="after")
    def _sourced_bits(self):
        if self.bits_per_weight is not None and not self.bits_source:
            raise ValueError("bits_per_weight needs a bits_source")
        return self

    @property
    def kernel_key(self) -> str:
        """The efficiency key a runtime looks this format up by."""
        if self.kernel:
            return self.kernel
        if self.family == "float":
            return "fp32" if self.bytes_per_param >= 4 else "16bit"
        return self.family

    @property
    def is_float(self) -> bool:
        return self.family == "float"


class BenchmarkSpec(Strict):
    """One benchmark of the closed vocabulary (catalog/benchmarks.yaml) that model scores may name."""

    id: str
    name: str
    measures: str
    scale: float = Field(default=100.0, gt=0, le=1e6)   # the best possible score
    higher_is_better: bool = True
    # Scored by an LLM judge against a baseline: scores from different documents (judges, baselines)
    # are not comparable, so the quality proxy compares them only within one source document.
    llm_judged: bool = False
    source: str

    _src = field_validator("source")(_check_source)

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.+_-]*$", value):
            raise ValueError(f"'{value}' is not a lowercase benchmark id")
        return value


class LicenceSpec(Strict):
    """A licence id models may name, with the spellings users type for it (SPDX id, "Apache 2.0")."""

    id: str
    name: str
    spdx: str | None = None
    aliases: list[str] = Field(default_factory=list)
    source: str

    _src = field_validator("source")(_check_source)


class Tier(Strict):
    id: str
    min_params: float | None = Field(default=None, ge=0, le=1e15)
    max_params: float | None = Field(default=None, gt=0, le=1e15)
    # Prefer this tier's best over the best of smaller tiers only when its quality proxy is at least
    # this many points higher (a smaller model is cheaper and faster at equal quality).
    min_quality_gain: float = Field(default=0.0, ge=0, le=100)
    description: str

    def contains(self, params: int) -> bool:
        return (self.min_params is None or params >= self.min_params) and (
            self.max_params is None or params < self.max_params)

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


class Architecture(Strict):
    """Architecture with the key names of a Hugging Face config.json."""

    model_type: str
    hidden_size: int = Field(gt=0, le=1_000_000)
    num_hidden_layers: int = Field(gt=0, le=10_000)
    num_attention_heads: int = Field(gt=0, le=100_000)
    num_key_value_heads: int | None = Field(default=None, gt=0, le=100_000)
    head_dim: int | None = Field(default=None, gt=0, le=100_000)
    intermediate_size: int | None = Field(default=None, gt=0, le=10_000_000)
    vocab_size: int = Field(gt=0, le=100_000_000)
    max_position_embeddings: int | None = Field(default=None, gt=0, le=100_000_000)
    tie_word_embeddings: bool = False
    num_local_experts: int | None = Field(default=None, gt=0, le=100_000)
    num_experts_per_tok: int | None = Field(default=None, gt=0, le=100_000)
    sliding_window: int | None = Field(default=None, gt=0, le=100_000_000)
    # Which layers use the sliding window; None means the model_type's convention.
    layer_types: list[Literal["sliding_attention", "full_attention"]] | None = None
    attention_bias: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_gpt2_names(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            for old, new in GPT2_KEY_ALIASES.items():
                if old in data:
                    value = data.pop(old)
                    data.setdefault(new, value)
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
            raise ValueError("num_local_experts and num_experts_per_tok go together")
        if self.num_local_experts and self.num_experts_per_tok > self.num_local_experts:
            raise ValueError("num_experts_per_tok exceeds num_local_experts")
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError("layer_types must have one entry per layer")
        return self

    # Derived figures: every consumer uses these rather than re-deriving defaults.
    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size

    @property
    def gated_mlp(self) -> bool:
        """SwiGLU/GeGLU MLPs have three matrices; gpt2-style MLPs two."""
        return self.model_type not in ("gpt2", "gpt_neox", "opt", "bloom", "falcon")

    @property
    def is_moe(self) -> bool:
        return bool(self.num_local_experts and self.num_local_experts > 1)

    @property
    def learned_positions(self) -> bool:
        return self.model_type in ("gpt2", "opt")

    def sliding_layers(self) -> int:
        """How many layers attend over a sliding window only."""
        if self.layer_types is not None:
            return sum(1 for t in self.layer_types if t == "sliding_attention")
        if not self.sliding_window:
            return 0
        if self.model_type in ("gemma2", "gemma3"):
            # Gemma 2 alternates local (sliding) and global attention, starting with local.
            return (self.num_hidden_layers + 1) // 2
        if self.model_type in ("mistral", "mixtral", "phi3", "starcoder2"):
            return self.num_hidden_layers
        return 0


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


class Lineage(Strict):
    parent: str
    method: str
    source: str

    _src = field_validator("source")(_check_source)


class ModelEntry(Strict):
    id: str
    name: str
    family: str
    aliases: list[str] = Field(default_factory=list)
    params_total: int = Field(gt=0, le=10**14)
    params_active: int | None = Field(default=None, gt=0, le=10**14)
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
        return self

    @property
    def arch(self) -> Architecture:
        assert self.architecture is not None, "hf_config entries are resolved by the loader"
        return self.architecture

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


class HardwareTarget(Strict):
    id: str
    name: str
    kind: Literal["gpu", "cpu"]
    memory_gb: float = Field(gt=0, le=1e7)       # the marketing size, for display
    # What the driver reports (NVML memory total, or vLLM's total_gpu_memory line), in bytes.
    memory_bytes: int | None = Field(default=None, gt=0, le=10**15)
    memory_source: str | None = None
    memory_bandwidth_gbs: float = Field(gt=0, le=1e7)
    peak_tflops: dict[Literal["fp32", "fp16", "bf16", "fp8", "int8", "fp4", "int4"], float]
    tdp_w: float | None = Field(default=None, gt=0, le=1e7)
    gpus: int = Field(default=1, ge=1, le=1024)          # devices the target has by default
    gpus_per_node: int | None = Field(default=None, ge=1, le=1024)  # most devices one node holds
    interconnect: Interconnect | None = None
    # An instance target (a cloud machine rented by name) points at the device target of its GPUs.
    device: str | None = None
    price_per_hour_usd: float | None = Field(default=None, ge=0, le=1e7)   # per GPU-hour
    price_source: str | None = None
    price_region: str | None = None
    price_date: str | None = None
    source: str
    notes: str | None = None

    _src = field_validator("source")(_check_source)

    @field_validator("peak_tflops")
    @classmethod
    def _positive(cls, value):
        for k, v in value.items():
            if not 0 < v <= 1e7:
                raise ValueError(f"peak_tflops.{k} must be > 0 and <= 1e7")
        return value

    @model_validator(mode="after")
    def _price_sourced(self):
        if self.price_per_hour_usd is not None and not self.price_source:
            raise ValueError("price_per_hour_usd needs a price_source")
        if self.memory_bytes is not None and not self.memory_source:
            raise ValueError("memory_bytes needs a memory_source")
        if self.gpus_per_node is not None and self.gpus > self.gpus_per_node:
            raise ValueError(f"gpus ({self.gpus}) exceeds gpus_per_node ({self.gpus_per_node})")
        return self

    @property
    def max_gpus(self) -> int:
        """The most devices a deployment on this target may use (one node)."""
        return max(self.gpus, self.gpus_per_node or 1)


class QualityProxy(Strict):
    description: str
    weights: dict[str, float]
    min_coverage: float = Field(default=0.5, ge=0, le=1)
    prefer_variant: Literal["base", "instruct"] = "instruct"

    @field_validator("weights")
    @classmethod
    def _known(cls, value):
        if not value:
            raise ValueError("needs at least one benchmark weight")
        for k, w in value.items():
            if not 0 < w <= 1e6:
                raise ValueError(f"weight of '{k}' must be > 0 and <= 1e6")
        return value


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
    source: str

    _src = field_validator("source")(_check_source)

    @field_validator("id")
    @classmethod
    def _id_form(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.+_-]*$", value):
            raise ValueError(f"'{value}' is not a lowercase benchmark id")
        return value


class Tier(Strict):
    id: str
    min_params: float | None = Field(default=None, ge=0, le=1e15)
    max_params: float | None = Field(default=None, gt=0, le=1e15)
    description: str

    def contains(self, params: int) -> bool:
        return (self.min_params is None or params >= self.min_params) and (
            self.max_params is None or params < self.max_params)

"""Which layers a truncated probe builds for a hybrid model, and how many of each kind the full model has.

A hybrid (Mamba-2 or Gated DeltaNet layers mixed with attention, Nemotron-H's MLP-only blocks) cut to
its first few layers can hold one kind only: Granite-4.0-H's first five layers are Mamba-2, and
transformers 5 cannot even run such a stack with a cache (`get_seq_length` needs an attention layer).
Timing it would also price all 40 layers as Mamba-2. So the probe keeps a prefix and adds the first
layer of every kind the prefix lacks, and the extrapolation adds each kind's missing layers at that
kind's own cost. Models whose layers differ only in attention window or MoE placement keep the plain
prefix: their layers cost about the same at the probe's request sizes (pure functions, no torch).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from advisor.catalog.layers import STATE_MIXERS, layer_plan

if TYPE_CHECKING:
    from advisor.catalog.schema import Architecture

_NAMES = {"full": "attention", "sliding": "attention", "chunked": "attention", "mamba": "mamba",
          "linear": "linear-attention", "dense_linear": "linear", "none": ""}


@dataclass(frozen=True)
class LayerMix:
    """The kind of each timed layer, in order, and the full model's count of each kind."""

    timed: tuple[str, ...]
    full: tuple[tuple[str, int], ...]

    @property
    def full_counts(self) -> dict[str, int]:
        return dict(self.full)

    def describe(self) -> str:
        return " + ".join(f"{n} {k}" for k, n in self.full)


def layer_kinds(arch: Architecture) -> list[str] | None:
    """Each layer's kind ("mamba", "attention+moe", "mlp", ...) when the model mixes recurrent and
    attention layers or has mixer-less blocks; None for a model the plain prefix represents."""
    plan = layer_plan(arch)
    if not any(s.mixer in STATE_MIXERS or s.mixer == "none" for s in plan):
        return None
    kinds = [_kind(s.mixer, s.ffn) for s in plan]
    return kinds if len(set(kinds)) > 1 else None


def _kind(mixer: str, ffn: str) -> str:
    ffn_name = {"dense": "mlp", "moe": "moe", "dense_linear": "linear-ffn", "none": ""}[ffn]
    return "+".join(p for p in (_NAMES[mixer], ffn_name) if p) or "no-op"


def probe_depth(arch: Architecture, depth: int) -> int:
    """Layers to build: at least one of each kind plus a second layer of the first, within the model."""
    kinds = layer_kinds(arch)
    need = depth if kinds is None else max(depth, len(set(kinds)) + 1)
    return min(arch.num_hidden_layers, need)


def truncated_layers(arch: Architecture, depth: int) -> list[int]:
    """The full model's layer indices the truncated copy builds, in order: `depth` of them.
    The longest prefix that leaves room for the first layer of every kind it lacks, then those."""
    kinds = layer_kinds(arch)
    depth = min(depth, arch.num_hidden_layers)
    if kinds is None:
        return list(range(depth))
    first: dict[str, int] = {}
    for i, k in enumerate(kinds):
        first.setdefault(k, i)
    for prefix in range(depth, 0, -1):
        missing = sorted(i for i in first.values() if i >= prefix)
        if prefix + len(missing) <= depth:
            return list(range(prefix)) + missing
    return list(range(depth))  # fewer layers than kinds: the prefix (the caller asks for probe_depth)


def layer_mix(arch: Architecture, depth: int) -> LayerMix | None:
    kinds = layer_kinds(arch)
    if kinds is None:
        return None
    counts = Counter(kinds)
    return LayerMix(timed=tuple(kinds[i] for i in truncated_layers(arch, depth)),
                    full=tuple((k, counts[k]) for k in dict.fromkeys(kinds)))


__all__ = ["LayerMix", "layer_kinds", "layer_mix", "probe_depth", "truncated_layers"]

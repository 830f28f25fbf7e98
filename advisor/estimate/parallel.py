"""Multi-GPU splits (pure functions): which --gpus degrees a runtime accepts for a model, how a split divides
weights and KV cache, and what its communication costs per step.

tensor  (vLLM, SGLang, TGI, TensorRT-LLM, gpt-fast): every layer is split over N GPUs; N must divide the
        attention heads (and N KV heads or be a multiple of them: KV heads are replicated beyond that).
        Two all-reduces of the hidden state per layer per step.
layer   (llama.cpp --split-mode layer, transformers device_map): whole layers per GPU, run one after
        another; any N up to the layer count. A token visits every device in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import Architecture
from advisor.errors import UsageError


@dataclass(frozen=True)
class Split:
    gpus: int
    kind: str                     # "tensor" | "layer" | "none"

    @property
    def tensor(self) -> int:
        return self.gpus if self.kind == "tensor" else 1

    @property
    def layer(self) -> int:
        return self.gpus if self.kind == "layer" else 1


@dataclass(frozen=True)
class Link:
    kind: str                     # nvlink | pcie | ...
    bandwidth_gbs: float          # per GPU, both directions, datasheet


def tensor_degree_ok(arch: Architecture, n: int) -> bool:
    """Heads must split evenly; KV heads split evenly or are replicated (n a multiple of them)."""
    heads, kv = arch.num_attention_heads, arch.kv_heads
    return heads % n == 0 and (kv % n == 0 or n % kv == 0)


def valid_degrees(arch: Architecture, runtime: RuntimeProfile, max_gpus: int) -> list[int]:
    """Every GPU count in 1..max_gpus this runtime can split `arch` over."""
    top = min(max_gpus, runtime.parallel.max_degree)
    if runtime.parallel.split == "layer":
        return list(range(1, min(top, arch.num_hidden_layers) + 1))
    return [n for n in range(1, top + 1) if tensor_degree_ok(arch, n)]


def split_for(arch: Architecture, runtime: RuntimeProfile, gpus: int, max_gpus: int | None = None) -> Split:
    """The split for --gpus N, or a usage error naming the degrees that work."""
    if gpus == 1:
        return Split(1, "none")
    if max_gpus is not None and gpus > max_gpus:
        raise UsageError(f"--gpus {gpus} exceeds the {max_gpus} GPU(s) one node of this target holds")
    degrees = valid_degrees(arch, runtime, gpus)
    if gpus not in degrees:
        ok = [n for n in valid_degrees(arch, runtime, max_gpus or gpus) if n > 1]
        raise UsageError(f"{runtime.id} cannot split this model over {gpus} GPUs: tensor parallelism needs a "
                         f"degree that divides its {arch.num_attention_heads} attention heads "
                         f"({arch.kv_heads} KV heads)",
                         hint=f"valid --gpus: {', '.join(map(str, ok)) or 'none above 1'}")
    return Split(gpus, runtime.parallel.split)


def kv_share(arch: Architecture, split: Split) -> int:
    """How many ways the KV cache divides: KV heads over tensor ranks (replicated past the head count),
    layers over layer-split devices."""
    if split.kind == "tensor":
        return min(split.gpus, arch.kv_heads)
    return split.gpus


def allreduce_ms(runtime: RuntimeProfile, link: Link | None, bytes_per_rank: float, ranks: int) -> float:
    """One ring all-reduce: a latency by link kind plus 2(n-1)/n of the message over one link direction."""
    if ranks <= 1:
        return 0.0
    p = runtime.parallel
    kind = link.kind if link else "pcie"
    latency = p.allreduce_latency_us.get(kind) / 1e3
    one_way = (link.bandwidth_gbs if link else 64.0) / 2 * p.link_efficiency.value * 1e9
    return latency + 1e3 * 2 * (ranks - 1) / ranks * bytes_per_rank / one_way


def communication_ms(arch: Architecture, runtime: RuntimeProfile, split: Split, link: Link | None,
                     tokens: float, act_bytes: int = 2) -> float:
    """Per forward of `tokens` tokens (all sequences): tensor-parallel all-reduces or layer hand-offs."""
    if split.gpus <= 1:
        return 0.0
    message = tokens * arch.hidden_size * act_bytes
    if split.kind == "tensor":
        per_layer = runtime.parallel.allreduces_per_layer.value
        return arch.num_hidden_layers * per_layer * allreduce_ms(runtime, link, message, split.gpus)
    one_way = (link.bandwidth_gbs if link else 64.0) / 2 * runtime.parallel.link_efficiency.value * 1e9
    hops = split.gpus - 1
    return hops * (runtime.parallel.hop_latency_us.value / 1e3 + 1e3 * message / one_way)

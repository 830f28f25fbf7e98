"""Memory of serving engines that preallocate their KV cache (pure functions), per device.

vLLM (kind utilization): budget = device memory x gpu_memory_utilization; the pool is the budget minus the
weights, the profiled activation peak, non-torch memory (NCCL, custom all-reduce buffers) and, from
v0.21, the CUDA-graph estimate. The pool is cut into blocks of `block_tokens` tokens; max concurrency is
pool tokens / max_model_len. The activation peak is the larger of the profiling forward over
max_num_batched_tokens tokens and the sampler's profile over max_num_seqs sequences x vocab (logged
'PyTorch activation peak memory'). vLLM refuses to start when the pool cannot hold one max_model_len
sequence. A hybrid model's Gated DeltaNet / Mamba-2 layers keep a fixed-size recurrent state per sequence
(memory.recurrent_state_bytes), which the pool holds beside that sequence's KV blocks, so every sequence
costs its KV blocks plus one state. SGLang, TGI, TensorRT-LLM and llama.cpp follow the other kinds described
in runtimes.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import Architecture
from advisor.estimate.memory import activation_bytes, kv_cache_bytes, recurrent_state_bytes
from advisor.estimate.parallel import Split, kv_share


@dataclass(frozen=True)
class EngineMemory:
    weights_per_device: int
    activation_peak: int
    non_torch: int
    cuda_graphs: int              # captured graphs (inside the budget only where graphs_in_budget)
    context: int                  # CUDA context, outside any budget
    budget: int                   # what the engine takes on one device
    kv_pool: int                  # KV bytes per device (negative: the budget does not even hold the rest)
    page_bytes: int               # one block of KV per device
    seq_kv_bytes: int             # one max_model_len sequence per device (block-rounded, with its recurrent state)
    request_kv_bytes: int         # the request's batch of prompt + new tokens per device (block-rounded, with states)
    max_model_len: int
    max_concurrent: int           # max_model_len sequences the pool holds
    per_device: int               # what the request needs of the budget
    fits: bool
    reason: str
    terms: dict[str, int] = field(default_factory=dict)

    @property
    def overhead(self) -> int:
        return self.non_torch + self.cuda_graphs + self.context


def profile_tokens(runtime: RuntimeProfile, target_id: str | None) -> int:
    return int(runtime.pool.max_num_batched_tokens.get(target_id))


def max_num_seqs(runtime: RuntimeProfile, target_id: str | None) -> int:
    return int(runtime.pool.max_num_seqs.get(target_id))


def activation_peak(arch: Architecture, runtime: RuntimeProfile, *, tokens: int, seqs: int, fmt: str,
                    tensor: int = 1) -> dict[str, int]:
    """The profiled peak: the forward over `tokens` tokens or the sampler over `seqs` x vocab, the larger.

    Per token the forward keeps hidden-size tensors (residual, normed input, attention output) and
    ffn-size ones (gate/up output and its activation) alive; tensor parallelism splits the ffn ones.
    """
    pool = runtime.pool
    act = activation_bytes(fmt)
    ffn = arch.ffn_size * (arch.num_experts_per_tok or 1) / tensor
    forward = tokens * (pool.profile_hidden_copies.value * arch.hidden_size + pool.profile_ffn_copies.value * ffn) * act
    sampler = seqs * arch.vocab_size * pool.sampler_bytes_per_logit.value
    return {"profile_forward": int(forward), "profile_sampler": int(sampler)}


def _round_up(tokens: int, block: int) -> int:
    return block * math.ceil(tokens / block) if block > 1 else tokens


def engine_memory(arch: Architecture, runtime: RuntimeProfile, *, weights_bytes: int, fmt: str, kv_element_bytes: int,
                  memory_bytes: int, split: Split, batch: int, request_tokens: int, max_model_len: int,
                  target_id: str | None = None, memory_fraction: float | None = None,
                  profile_tokens_override: int | None = None, seqs_override: int | None = None,
                  non_torch_override: int | None = None, graphs_in_budget: bool | None = None) -> EngineMemory:
    """Size the engine's memory on one device for `batch` requests of `request_tokens` tokens each."""
    pool = runtime.pool
    if pool is None:
        raise ValueError(f"{runtime.id} has no KV pool (an eager runtime): use memory.memory_breakdown")
    gpus = split.gpus
    weights = math.ceil(weights_bytes / gpus)
    block = max(1, int(pool.block_tokens.value))
    share = kv_share(arch, split)
    page = math.ceil(kv_cache_bytes(arch, block, 1, kv_element_bytes) / share)
    # fixed-size state of the hybrid layers, once per sequence; its heads divide over the devices as the layers do
    state = math.ceil(recurrent_state_bytes(arch, 1, kv_element_bytes) / gpus)
    seq_kv = math.ceil(kv_cache_bytes(arch, _round_up(max_model_len, block), 1, kv_element_bytes) / share) + state
    req_kv = batch * (math.ceil(kv_cache_bytes(arch, _round_up(request_tokens, block), 1, kv_element_bytes) / share)
                      + state)
    fraction = pool.memory_fraction.value if memory_fraction is None else memory_fraction
    tokens = profile_tokens(runtime, target_id) if profile_tokens_override is None else profile_tokens_override
    seqs = max_num_seqs(runtime, target_id) if seqs_override is None else seqs_override
    acts = activation_peak(arch, runtime, tokens=tokens, seqs=seqs, fmt=fmt, tensor=split.tensor)
    act = max(acts.values())
    non_torch = (int(pool.non_torch_bytes.get(str(split.tensor))) if non_torch_override is None
                 else non_torch_override)
    graphs = int(pool.cuda_graph_bytes.value)
    in_budget = pool.graphs_in_budget if graphs_in_budget is None else graphs_in_budget
    context = int(runtime.cuda_context_bytes.value)
    terms = {"weights": weights, **acts, "non_torch": non_torch, "cuda_graphs": graphs, "cuda_context": context}
    if state:
        terms["recurrent_state_per_sequence"] = state

    if pool.kind == "context":
        # no pool: the context asked for is allocated (batch sequences of max_model_len), plus a compute buffer
        kv = batch * seq_kv
        need = weights + act + kv + context
        fits = need <= memory_bytes
        reason = "" if fits else "weights, KV cache of the context and compute buffer exceed the device"
        return EngineMemory(weights, act, 0, 0, context, memory_bytes, kv, page, seq_kv, req_kv, max_model_len,
                            batch if fits else 0, need, fits, reason, {**terms, "kv_cache": kv})

    if pool.kind == "utilization":
        budget = int(memory_bytes * fraction)
        kv_pool = budget - weights - act - non_torch - (graphs if in_budget else 0)
    elif pool.kind == "static-fraction":
        budget = int(memory_bytes * fraction)
        kv_pool = budget - weights - act
    else:  # free-fraction: a fraction of what is free once the weights and activation buffers are in place
        free = memory_bytes - weights - act - context - non_torch
        kv_pool = int(fraction * free) if free > 0 else free
        budget = weights + act + non_torch + max(kv_pool, 0)
    if state:
        # a hybrid model's sequence holds its max_model_len KV blocks and one recurrent state
        concurrent = max(0, kv_pool) // seq_kv
    else:
        # pooled tokens / max_model_len, as vLLM logs its maximum concurrency
        blocks = max(0, kv_pool) // page if page else 0
        concurrent = (blocks * block) // max_model_len if max_model_len else 0
    need = weights + act + non_torch + (graphs if in_budget and pool.kind == "utilization" else 0) + req_kv
    if kv_pool < seq_kv:
        fits, reason = False, (f"the KV pool cannot hold one sequence of max_model_len {max_model_len} tokens "
                               f"({runtime.id} refuses to start)")
    elif kv_pool < req_kv:
        fits, reason = False, f"the KV pool holds {concurrent} of the {batch} concurrent sequences asked for"
    else:
        fits, reason = True, ""
    return EngineMemory(weights, act, non_torch, graphs, context, budget, kv_pool, page, seq_kv, req_kv,
                        max_model_len, concurrent, need, fits, reason, {**terms, "kv_pool": kv_pool})

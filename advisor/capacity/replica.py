"""One replica of a model on a serving engine, as the simulation sees it (pure functions).

The step and prefill times are the serving-engine model's own (advisor.estimate.latency.Model: weights
streamed, FLOPs, KV reads, host overhead, all-reduces); the KV pool and the scheduler's caps are the
engine's (advisor.estimate.pool, catalog/runtimes.yaml). Nothing here re-derives a latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.capacity.simulate import Replica
from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import FormatSpec, ModelEntry
from advisor.estimate.device import DeviceSpec
from advisor.estimate.formats import weight_terms
from advisor.estimate.latency import Model, Rates, spec_rates
from advisor.estimate.memory import kv_element_bytes
from advisor.estimate.parallel import Split
from advisor.estimate.pool import engine_memory, max_num_seqs, profile_tokens


@dataclass(frozen=True)
class ReplicaSpec:
    replica: Replica
    model: Model                   # the bound latency model (decode_terms tell the step's bound)
    split: Split
    fits: bool
    reason: str                    # why it does not fit ('' when it does)
    kv_pool_bytes: int | None      # per device
    kv_sequences: int | None       # prompt + new sequences the pool holds (None: no pool model)
    max_seqs: int                  # the scheduler's cap
    token_budget: int | None
    prefill: str                   # mixed | separate | static
    memory_per_device: int
    memory_available: int
    max_model_len: int


def prefill_mode(runtime: RuntimeProfile) -> str:
    if runtime.batching == "static":
        return "static"
    return runtime.scheduler.prefill if runtime.scheduler is not None else "mixed"


def bind_replica(entry: ModelEntry, fmt: FormatSpec, runtime: RuntimeProfile, device: DeviceSpec, split: Split, *,
                 prompt: int, new: int, kv_format: str = "fp16", rates: Rates | None = None,
                 memory_fraction: float | None = None, max_model_len: int | None = None,
                 prefill: str | None = None, scheduler_steps: int = 1, max_seqs: int | None = None,
                 token_budget: int | None = None, static_batch: int = 1) -> ReplicaSpec:
    """The replica of `entry` in `fmt` on `split.gpus` x `device` with `runtime`, for prompt + new tokens.

    max_seqs / token_budget default to the runtime's (max_num_seqs, max_num_batched_tokens for the target);
    prefill to its scheduler; a static-batching runtime takes `static_batch` sequences per batch.
    """
    arch = entry.arch
    kv_el = kv_element_bytes(kv_format, fmt.id, runtime.id)
    weights = sum(weight_terms(arch, fmt).values())
    used = rates if rates is not None else spec_rates(device, fmt, runtime)
    model = Model(arch, fmt, weights, kv_el, runtime, used, split, device.link)
    mml = max_model_len or (prompt + new)
    mode = prefill or prefill_mode(runtime)
    seqs_cap = max_seqs
    budget = token_budget
    kv_tokens = math.inf
    kv_seqs = None
    kv_pool = None
    block = 1
    if runtime.pool is not None:
        em = engine_memory(arch, runtime, weights_bytes=weights, fmt=fmt.id, kv_element_bytes=kv_el,
                           memory_bytes=device.memory_bytes, split=split, batch=1, request_tokens=prompt + new,
                           max_model_len=mml, target_id=device.workspace_key, memory_fraction=memory_fraction)
        fits, reason = em.fits, em.reason
        per_device, available = em.per_device, em.budget
        if seqs_cap is None:
            seqs_cap = max(1, max_num_seqs(runtime, device.workspace_key))
        if runtime.pool.kind == "context":
            # slots of max_model_len tokens allocated up front: the slot count is the only limit
            kv_seqs = seqs_cap
        else:
            block = max(1, int(runtime.pool.block_tokens.value))
            kv_pool = max(0, em.kv_pool)
            one = em.request_kv_bytes            # one prompt + new sequence, block-rounded, per device
            kv_seqs = int(kv_pool // one) if one > 0 else seqs_cap
            need = block * math.ceil((prompt + new) / block)
            kv_tokens = kv_seqs * need
        if budget is None:
            budget = profile_tokens(runtime, device.workspace_key) or None
    else:
        # an eager loop (transformers): the memory model of the estimate decides the fit elsewhere
        fits, reason, per_device, available = True, "", 0, device.memory_bytes
        seqs_cap = seqs_cap or static_batch
    if mode == "static":
        seqs_cap = min(seqs_cap, static_batch) if max_seqs is None else seqs_cap
    replica = Replica(model.step_ms, model.prefill_ms, model.prefill_extra_ms, prompt=prompt, new=new,
                      ttft_floor_ms=used.ttft_floor_ms, max_seqs=seqs_cap, kv_tokens=kv_tokens, block_tokens=block,
                      token_budget=budget, prefill=mode, scheduler_steps=scheduler_steps)
    return ReplicaSpec(replica=replica, model=model, split=split, fits=fits, reason=reason, kv_pool_bytes=kv_pool,
                       kv_sequences=kv_seqs, max_seqs=seqs_cap, token_budget=budget, prefill=mode,
                       memory_per_device=per_device, memory_available=available, max_model_len=mml)


def step_bound(spec: ReplicaSpec, n: int) -> str:
    """What dominates one decode step of n sequences: compute, memory-bandwidth, step-overhead, interconnect."""
    ctx = spec.replica.prompt + spec.replica.new / 2
    t = spec.model.decode_terms(max(1, n), ctx)
    compute_bound = t["compute_ms"] > t["weights_ms"]
    parts = {"compute": t["compute_ms"] if compute_bound else 0.0,
             "memory-bandwidth": (0.0 if compute_bound else t["weights_ms"]) + t["kv_ms"],
             "step-overhead": t["host_ms"], "interconnect": t["comm_ms"]}
    return max(parts, key=parts.get)

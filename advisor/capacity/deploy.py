"""What a target charges and how each of its layouts is built: shared by recommend and check.

A device target (one GPU type) is priced per GPU-hour; an instance target (a cloud machine rented by
name) per instance, its replicas packed onto its GPUs. `gpu_hour_cost` (--gpu-hour-cost) overrides
either; a target without a price stays unpriced (never a guessed price).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from advisor.capacity.plan import Pricing
from advisor.capacity.replica import ReplicaSpec, bind_replica
from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import FormatSpec, HardwareTarget, ModelEntry
from advisor.estimate.device import DeviceSpec
from advisor.estimate.parallel import Split


def pricing_for(hw: HardwareTarget | None, gpu_hour_cost: float | None) -> Pricing:
    if hw is not None and hw.is_instance:
        if gpu_hour_cost is not None:
            return Pricing(gpu_hour_cost, hw.gpus, gpu_hour_cost * hw.gpus, "--gpu-hour-cost")
        return Pricing(hw.price_per_hour_usd, hw.gpus, hw.instance_price_per_hour_usd, price_source(hw))
    if gpu_hour_cost is not None:
        return Pricing(gpu_hour_cost, source="--gpu-hour-cost")
    if hw is not None and hw.price_per_hour_usd is not None:
        return Pricing(hw.price_per_hour_usd, source=price_source(hw))
    return Pricing(None)


def price_source(hw: HardwareTarget) -> str:
    where = " ".join(x for x in (hw.price_region, hw.price_date) if x)
    return f"catalog on-demand price ({where})" if where else "catalog on-demand price"


def cost_basis(pricing: Pricing) -> str | None:
    if not pricing.known:
        return None
    return "user" if pricing.source == "--gpu-hour-cost" else "catalog"


def layouts_builder(entry: ModelEntry, fmt: FormatSpec, runtime: RuntimeProfile, device: DeviceSpec, *, prompt: int,
                    new: int, headroom: float, rates=None, static_batch: int = 1,
                    kv_format: str = "fp16") -> Callable[[int], ReplicaSpec]:
    """tp -> the replica on tp GPUs; a replica whose need passes the memory headroom does not fit (the
    same rule the memory check applies)."""
    from advisor.rules.table import gb

    def build(tp: int) -> ReplicaSpec:
        split = Split(tp, runtime.parallel.split) if tp > 1 else Split(1, "none")
        rs = bind_replica(entry, fmt, runtime, device, split, prompt=prompt, new=new, rates=rates,
                          static_batch=static_batch, kv_format=kv_format)
        limit = rs.memory_available * (1 - headroom)
        if rs.fits and runtime.pool is not None and rs.memory_per_device > limit:
            rs = replace(rs, fits=False, reason=f"needs {gb(rs.memory_per_device)} per device, the limit is "
                                                f"{gb(limit)}, {headroom:.0%} headroom kept free")
        return rs

    return build

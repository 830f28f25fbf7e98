"""Derived facts about catalog entries for `catalog list` / `catalog show` (pure, JSON-ready)."""

from __future__ import annotations

from advisor.catalog.schema import HardwareTarget, ModelEntry


def lineage_dict(m: ModelEntry) -> dict | None:
    if m.lineage is None:
        return None
    return {"derived_from": m.lineage.derived_from, "method": list(m.lineage.method), "source": m.lineage.source}


def model_facts(m: ModelEntry) -> dict:
    """Parameter split, layer pattern, KV-cache and recurrent-state sizes (16-bit), formats, lineage."""
    from advisor.catalog import layers
    from advisor.catalog.params import param_breakdown
    from advisor.estimate.memory import kv_cache_bytes, recurrent_state_bytes

    arch = m.arch
    pb = param_breakdown(arch)
    plan = layers.summary(arch)
    kv_1 = kv_cache_bytes(arch, 1, 1, 2)
    facts = {
        "params_stated": m.params_total,
        "params_text": m.params_text,
        "params_vision": m.params_vision,
        "params_derived": pb.stored,
        "params_derived_text": pb.text + pb.mtp,
        "params_mtp": pb.mtp or None,
        "params_active_derived": pb.active if arch.is_moe else None,
        "moe": arch.is_moe,
        "hybrid": arch.is_hybrid,
        "multimodal": bool(m.params_vision),
        "layer_pattern": plan,
        # 16-bit KV cache of one sequence: per token below every window, and the state that does not grow
        "kv_bytes_per_token_16bit": kv_1,
        "recurrent_state_bytes_per_sequence_16bit": recurrent_state_bytes(arch, 1, 2) or 0,
        "official_formats": m.official_formats(),
        "official_16bit": m.official_16bit,
        "lineage": lineage_dict(m),
    }
    note = arch.family.note
    if note:
        facts["family_note"] = note
    return facts


def lineage_matches(m: ModelEntry, method: str | None, derived_from: str | None, resolve) -> bool:
    """Filter for `catalog list --lineage METHOD --derived-from ID` (ids resolved through aliases)."""
    if method is None and derived_from is None:
        return True
    if m.lineage is None:
        return False
    if method is not None and method.lower() not in ("any", "*") and method.lower() not in m.lineage.method:
        return False
    if derived_from is not None:
        want = resolve(derived_from)
        if resolve(m.lineage.derived_from) != want:
            return False
    return True


def target_facts(t: HardwareTarget) -> dict:
    return {
        "id": t.id, "name": t.name, "kind": t.kind, "device": t.device, "cloud": t.cloud, "instance": t.instance,
        "gpus": t.gpus, "gpus_per_node": t.gpus_per_node,
        "memory_gb": t.memory_gb, "memory_bytes": t.memory_bytes, "device_memory_bytes": t.device_memory_bytes,
        "memory_source": t.memory_source, "memory_bandwidth_gbs": t.memory_bandwidth_gbs,
        "peak_tflops": dict(t.peak_tflops or {}),
        "interconnect": t.interconnect.model_dump() if t.interconnect else None,
        "price_per_gpu_hour_usd": t.price_per_hour_usd, "instance_price_per_hour_usd": t.instance_price_per_hour_usd,
        "price_region": t.price_region, "price_date": t.price_date, "price_source": t.price_source,
    }

"""The static hardware inventory as MLflow tags (advisor.gpu.*, advisor.cpu.*, advisor.ram_gb).

Pure functions of a HardwareProfile (or its model_dump()); no imports beyond the standard library,
so the run-context plugin can use them while MLflow loads.
"""

from __future__ import annotations

from typing import Any

PREFIX = "advisor."


def _gb(n: Any) -> str | None:
    return f"{n / 1e9:.1f}" if isinstance(n, (int, float)) and n > 0 else None


def inventory_tags(profile: Any) -> dict[str, str]:
    """Tags for a HardwareProfile or its dict; keys whose value is unknown are left out."""
    p = profile.model_dump() if hasattr(profile, "model_dump") else dict(profile or {})
    gpus = [g for g in (p.get("gpus") or []) if isinstance(g, dict)]
    cpu = p.get("cpu") or {}
    names = list(dict.fromkeys(g.get("name") for g in gpus if g.get("name")))
    caps = list(dict.fromkeys(str(g["compute_capability"]) for g in gpus if g.get("compute_capability")))
    tags = {
        "gpu.name": ", ".join(names) or ("none" if not gpus and not p.get("gpu_count") else None),
        "gpu.count": str(p.get("gpu_count") if p.get("gpu_count") is not None else len(gpus)),
        "gpu.memory_gb": _gb(gpus[0].get("memory_total_bytes")) if gpus else None,
        "gpu.driver": p.get("driver_version"),
        "gpu.compute_capability": ", ".join(caps) or None,
        "cpu.model": cpu.get("model_name"),
        "cpu.cores": str(cpu.get("physical_cores") or cpu.get("logical_cores") or "") or None,
        "ram_gb": _gb(cpu.get("ram_total_bytes")),
        "hardware.fingerprint": p.get("fingerprint") or None,
    }
    from advisor.tracking.limits import tag as clip  # PostgreSQL/MySQL stores refuse tag values over 8000 chars

    return {PREFIX + k: clip(str(v)) for k, v in tags.items() if v not in (None, "")}


def local_inventory_tags() -> dict[str, str]:
    """Tags for this machine (detect_profile without torch; cached per process by the detector)."""
    from advisor.hardware.profile import detect_profile

    return inventory_tags(detect_profile(include_torch=False))

"""Which hardware.yaml target a detected GPU is: NVML name (+ memory for size variants) -> target id.

Pure matching over rules that are data: each device target in catalog/hardware.yaml lists its
`nvml_names` (regular expressions on the normalised NVML name) and, for size variants of one name
(A100 40/80 GB), `nvml_memory_gb` [from, below) in decimal GB of the NVML total. The built-in
table is read once from hardware.yaml (YAML only, no catalog validation on the hot path); callers
that loaded a catalog pass its targets so that user targets can be matched too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

GB = 1e9


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern
    target_id: str
    memory_from_gb: float = 0.0
    memory_below_gb: float = float("inf")


def _normal(name: str) -> str:
    # "A100-SXM4-80GB" -> "a100 sxm4 80gb": separators become spaces so \b works on every spelling.
    return " ".join(re.sub(r"[-_/]", " ", name.lower()).split())


def rules_from_targets(targets: Iterable) -> tuple[NameRule, ...]:
    """NameRules from HardwareTarget objects or raw hardware.yaml mappings, in file order."""
    rules = []
    for t in targets:
        get = t.get if isinstance(t, dict) else (lambda k, d=None, _t=t: getattr(_t, k, d))
        if get("device") is not None:
            continue
        lo, hi = get("nvml_memory_gb") or (0.0, float("inf"))
        for pattern in get("nvml_names") or ():
            try:
                rules.append(NameRule(re.compile(pattern), str(get("id")), float(lo), float(hi)))
            except (re.error, TypeError, ValueError):
                continue  # `advisor catalog validate` reports a bad pattern; matching just skips it
    return tuple(rules)


_BUILTIN: tuple[NameRule, ...] | None = None


def builtin_rules() -> tuple[NameRule, ...]:
    global _BUILTIN
    if _BUILTIN is None:
        from advisor.catalog.loader import builtin_catalog_dir
        from advisor.errors import CatalogError
        from advisor.yamlio import load_yaml

        try:
            doc = load_yaml(builtin_catalog_dir() / "hardware.yaml") or {}
        except CatalogError:
            doc = {}
        targets = doc.get("targets") if isinstance(doc, dict) else None
        _BUILTIN = rules_from_targets(t for t in targets or () if isinstance(t, dict))
    return _BUILTIN


def match_target(name: str | None, memory_total_bytes: int | None = None,
                 known_ids: Collection[str] | None = None,
                 rules: Iterable[NameRule] | None = None) -> str | None:
    """The target id for a GPU, or None when no rule names it.

    memory_total_bytes picks the size variant (A100 40/80 GB); when it is unknown the first rule
    for the name wins. With known_ids, an id that the loaded catalog does not define gives None.
    """
    if not name or not isinstance(name, str):
        return None
    text = _normal(name)
    mem_gb = None
    if isinstance(memory_total_bytes, (int, float)) and 0 <= memory_total_bytes < 2**62:
        mem_gb = memory_total_bytes / GB
    for rule in builtin_rules() if rules is None else rules:
        if not rule.pattern.search(text):
            continue
        if mem_gb is not None and not rule.memory_from_gb <= mem_gb < rule.memory_below_gb:
            continue
        if known_ids is not None and rule.target_id not in known_ids:
            return None
        return rule.target_id
    return None

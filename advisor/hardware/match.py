"""Which hardware.yaml target a detected GPU is: NVML name (+ memory for size variants) -> target id.

Pure. The table below only maps names to ids; every figure (peak TFLOPS, bandwidth, price) lives
in catalog/hardware.yaml. Order matters: the more specific name comes first ("h100 nvl" before
"h100", "a10g" before "a10", "l40s" before "l40" before "l4").
"""

from __future__ import annotations

import re
from collections.abc import Collection

GB = 1e9

# (pattern on the lower-cased NVML name, target id, smallest memory in GB, largest memory in GB).
# NVML names seen: "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA H100 NVL",
# "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A10G",
# "Tesla T4", "Tesla V100-SXM2-16GB", "NVIDIA L4", "NVIDIA L40S", "NVIDIA GeForce RTX 4090".
_RULES: tuple[tuple[str, str, float, float], ...] = (
    (r"\bgh200\b", "gh200-96gb", 0, 1e9),
    (r"\bh200\b", "h200-141gb", 0, 1e9),
    (r"\bh100\b.*\bnvl\b", "h100-nvl-94gb", 0, 1e9),
    (r"\bh100\b.*\bpcie\b", "h100-pcie-80gb", 0, 1e9),
    (r"\bh100\b", "h100-sxm-80gb", 0, 1e9),          # "H100 80GB HBM3" and "H100 SXM5 80GB"
    (r"\ba100\b.*\bpcie\b", "a100-pcie-80gb", 60, 1e9),
    (r"\ba100\b.*\bpcie\b", "a100-pcie-40gb", 0, 60),
    (r"\ba100\b", "a100-80gb", 60, 1e9),
    (r"\ba100\b", "a100-40gb", 0, 60),
    (r"\ba10g\b", "a10g-24gb", 0, 1e9),
    (r"\ba10\b", "a10-24gb", 0, 1e9),
    (r"\bl40s\b", "l40s-48gb", 0, 1e9),
    (r"\bl40\b", "l40-48gb", 0, 1e9),
    (r"\bl4\b", "l4-24gb", 0, 1e9),
    (r"\bt4\b", "t4-16gb", 0, 1e9),
    (r"\bv100\b", "v100-32gb", 24, 1e9),
    (r"\bv100\b", "v100-16gb", 0, 24),
    (r"\brtx 6000 ada\b", "rtx6000ada-48gb", 0, 1e9),
    (r"\brtx a6000\b", "rtxa6000-48gb", 0, 1e9),
    (r"\brtx 5090\b", "rtx5090-32gb", 0, 1e9),
    (r"\brtx 4090\b", "rtx4090-24gb", 0, 1e9),
    (r"\brtx 4080\b", "rtx4080-16gb", 0, 1e9),
    (r"\brtx 4060 ti\b", "rtx4060ti-16gb", 12, 1e9),
    (r"\brtx 4060 ti\b", "rtx4060ti-8gb", 0, 12),
    (r"\brtx 4060\b", "rtx4060-8gb", 0, 1e9),
    (r"\brtx 3090\b", "rtx3090-24gb", 0, 1e9),        # also "RTX 3090 Ti"
    (r"\brtx 3080\b", "rtx3080-10gb", 0, 1e9),
    (r"\brtx 3070\b", "rtx3070-8gb", 0, 1e9),
)


def _normal(name: str) -> str:
    # "A100-SXM4-80GB" -> "a100 sxm4 80gb": separators become spaces so \b works on every spelling.
    return " ".join(re.sub(r"[-_/]", " ", name.lower()).split())


def match_target(name: str | None, memory_total_bytes: int | None = None,
                 known_ids: Collection[str] | None = None) -> str | None:
    """The target id for a GPU, or None when the name is unknown.

    memory_total_bytes picks the size variant (A100 40/80 GB); when it is unknown the first rule
    for the name wins. With known_ids, an id that the loaded catalog does not define gives None.
    """
    if not name or not isinstance(name, str):
        return None
    text = _normal(name)
    mem_gb = None
    if isinstance(memory_total_bytes, (int, float)) and 0 <= memory_total_bytes < 2**62:
        mem_gb = memory_total_bytes / GB
    for pattern, target_id, lo, hi in _RULES:
        if not re.search(pattern, text):
            continue
        if mem_gb is not None and not lo <= mem_gb < hi:
            continue
        if known_ids is not None and target_id not in known_ids:
            return None
        return target_id
    return None

"""Thin reader for the host: psutil, /proc/cpuinfo, platform and cgroup limits -> a raw dict.

Each reading is taken on its own; one that fails becomes None and its error goes under
"errors", so a locked-down container still gives a partial profile. advisor.hardware.parse turns
the dict into a CPUInfo.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.errors import one_line

PROC_CPUINFO = Path("/proc/cpuinfo")
# cgroup v2, then v1: a container's memory limit is what a model must fit in, not the host's RAM.
CGROUP_MEMORY_FILES = (Path("/sys/fs/cgroup/memory.max"),
                       Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
NO_LIMIT = 1 << 60


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first value of each key in /proc/cpuinfo (all cores repeat the same model and flags)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def _proc_cpuinfo() -> dict[str, str]:
    try:
        return _cpuinfo_fields(PROC_CPUINFO.read_text(errors="replace"))
    except OSError:
        return {}


def _model_name(info: dict[str, str]) -> str | None:
    # x86 "model name"; some ARM kernels give "Model" or nothing (then platform.processor()).
    return info.get("model name") or info.get("Model") or platform.processor() or None


def _flags(info: dict[str, str]) -> list[str]:
    # x86 calls them "flags", ARM "Features".
    return (info.get("flags") or info.get("Features") or "").split()


def _max_freq() -> float | None:
    import psutil

    freq = psutil.cpu_freq()
    return freq.max if freq else None


def _usable_cores() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _memory_limit() -> int | None:
    for path in CGROUP_MEMORY_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        # "max" (v2) or a page-rounded LLONG_MAX (v1) both mean no limit.
        return int(text) if text.isdigit() and int(text) < NO_LIMIT else None
    return None


def read_cpu() -> dict[str, Any]:
    """The raw host readout. Never raises."""
    import psutil

    info = _proc_cpuinfo()
    getters: dict[str, Callable[[], Any]] = {
        "model_name": lambda: _model_name(info),
        "architecture": platform.machine,
        "physical_cores": lambda: psutil.cpu_count(logical=False),
        "logical_cores": lambda: psutil.cpu_count(logical=True),
        "usable_cores": _usable_cores,
        "max_frequency_mhz": _max_freq,
        "flags": lambda: _flags(info),
        "ram_total_bytes": lambda: psutil.virtual_memory().total,
        "ram_available_bytes": lambda: psutil.virtual_memory().available,
        "memory_limit_bytes": _memory_limit,
        "os": platform.platform,
        "hostname": platform.node,
        "python": platform.python_version,
    }
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, getter in getters.items():
        try:
            out[key] = getter()
        except Exception as exc:  # psutil.AccessDenied, missing /sys, odd platforms
            out[key] = None
            errors[key] = one_line(exc)
    if errors:
        out["errors"] = errors
    return out

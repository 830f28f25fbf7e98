"""Energy counters read around a decode loop: NVML on NVIDIA GPUs, RAPL on (Intel/AMD) CPUs.

Both are cumulative counters; the meter takes a reading before and after and returns joules,
or None when no counter is readable (VMs, containers without /sys/class/powercap access).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

RAPL_GLOB = "/sys/class/powercap/intel-rapl:*"


def _nvml_index(device: str) -> int:
    """NVML ignores CUDA_VISIBLE_DEVICES; map the CUDA index through it when it lists plain indices."""
    idx = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if parts and all(p.isdigit() for p in parts) and idx < len(parts):
        return int(parts[idx])
    return idx


class RaplZone:
    """One top-level RAPL package zone (intel-rapl:N, not its subzones)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.max_uj = int((self.path / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            self.max_uj = None

    def read_uj(self) -> int | None:
        try:
            return int((self.path / "energy_uj").read_text().strip())
        except (OSError, ValueError):
            return None


def rapl_zones(pattern: str = RAPL_GLOB) -> list[RaplZone]:
    zones = [RaplZone(Path(p)) for p in sorted(glob.glob(pattern)) if p.count(":") == 1]
    return [z for z in zones if z.read_uj() is not None]


def counter_delta(before: int, after: int, wrap: int | None) -> int:
    """Difference of a cumulative counter that wraps around at `wrap`."""
    if after >= before:
        return after - before
    if wrap:
        return wrap - before + after
    return 0


class EnergyMeter:
    """start() then stop() -> joules spent in between, or None when unreadable."""

    def __init__(self, device: str, rapl_pattern: str = RAPL_GLOB):
        self.device = device
        self.source: str | None = None
        self._zones: list[RaplZone] = []
        self._start: list[int] | int | None = None
        if device.startswith("cuda"):
            self.source = "nvml"
        elif device == "cpu":
            self._zones = rapl_zones(rapl_pattern)
            self.source = "rapl" if self._zones else None

    def _read(self):
        if self.source == "nvml":
            try:
                from advisor.hardware.nvml import total_energy_mj

                return total_energy_mj(_nvml_index(self.device))
            except Exception:
                return None
        if self.source == "rapl":
            vals = [z.read_uj() for z in self._zones]
            return None if any(v is None for v in vals) else vals
        return None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if self._start is None or end is None:
            return None
        if self.source == "nvml":
            return max(0, end - self._start) / 1000.0
        total_uj = sum(counter_delta(b, a, z.max_uj) for b, a, z in zip(self._start, end, self._zones))
        return total_uj / 1e6

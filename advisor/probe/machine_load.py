"""Whether other processes compete for the CPU while a probe runs (its timings then come out slow)."""

from __future__ import annotations

import time


def cpu_pressure(path: str = "/proc/pressure/cpu") -> float | None:
    """Share of the last 10 s (percent) in which some task waited for a CPU (Linux PSI), or None."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("some "):
                    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                    return float(fields["avg10"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def own_load() -> float:
    """This process's average number of busy CPUs since it started (its share of the load average).

    The load average counts this process's own threads too: after a long probe it reads about the
    thread count on a machine nobody else uses, which must not count as busy.
    """
    try:
        import psutil

        proc = psutil.Process()
        cpu = sum(proc.cpu_times()[:2])
        wall = max(1.0, time.time() - proc.create_time())
        return cpu / wall
    except Exception:
        return 0.0


def busy_note(own: float | None = None) -> list[str]:
    """A note when other processes compete for the CPU: timings on a busy machine come out slow."""
    import os

    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        load, cores = 0.0, os.cpu_count() or 1
    others = max(0.0, load - (own_load() if own is None else own))
    psi = cpu_pressure()
    if others > 0.5 * cores or (psi is not None and psi > 40):
        why = f"load average {load:.1f} on {cores} cores, {others:.1f} of it other processes" + (
            f", CPU pressure {psi:.0f}%" if psi is not None else "")
        return [f"the machine was busy ({why}): timings may be inflated; re-run with --refresh when it is idle"]
    return []


__all__ = ["busy_note", "cpu_pressure", "own_load"]

"""Timing helpers: the probe device, device sync, timed repeats."""

from __future__ import annotations

import time
from typing import Callable


def resolve_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str) -> float:
    """Wall time of one call in ms, synchronised with the device at both ends."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return 1000.0 * (time.perf_counter() - t0)


def repeat_ms(fn: Callable[[], object], device: str, *, repeats: int, warmup: int = 1,
              deadline: Callable[[], bool] | None = None) -> list[float]:
    """Warm up, then time `repeats` calls; stops early (keeping at least one sample) at the deadline."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    for _ in range(repeats):
        out.append(timed(fn, device))
        if deadline is not None and deadline():
            break
    return out

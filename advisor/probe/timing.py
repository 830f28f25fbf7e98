"""Timing helpers: the probe device, device sync, timed repeats."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable


def resolve_device(device: str | None) -> str:
    if device:
        return device
    return _auto_device()


@functools.cache
def _auto_device() -> str:
    """cuda:0 when torch sees a GPU, else cpu; remembered per machine and torch version in the cache
    dir, so reading cached probe results does not import torch (1-2 s)."""
    import json

    from advisor.paths import cache_dir
    from advisor.probe.cache import machine_fingerprint, software_versions

    key = f"{machine_fingerprint()}|{software_versions()[0]}"
    path = cache_dir() / "probes" / "device.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("key") == key and doc.get("device") in ("cpu", "cuda:0"):
            return doc["device"]
    except Exception:  # absent, corrupt or foreign: decide with torch below
        pass
    import torch

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "device": device}), encoding="utf-8")
    except OSError:
        pass
    return device


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

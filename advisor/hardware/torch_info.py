"""What torch can use here. Imports torch only when it is installed and backends are asked for."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from advisor.errors import one_line
from advisor.hardware.schema import TorchInfo


def torch_installed() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _dist_version() -> str | None:
    # The installed version without importing torch (1-2 s): keeps the fingerprint the same
    # whether or not backends were checked.
    try:
        return importlib.metadata.version("torch")
    except Exception:
        return None


def detect_torch(check_backends: bool = True) -> TorchInfo:
    """TorchInfo for this process. Never raises; a broken torch install is reported in `error`."""
    if not torch_installed():
        return TorchInfo(installed=False)
    if not check_backends:
        return TorchInfo(installed=True, version=_dist_version(), backends_checked=False)
    try:
        import torch
    except Exception as exc:  # a torch wheel that does not match the system (missing libs...)
        return TorchInfo(installed=True, version=_dist_version(), backends_checked=False,
                         error=f"import torch failed: {one_line(exc, 200)}")
    info = TorchInfo(installed=True, version=str(torch.__version__), backends_checked=True)
    errors = []
    try:
        info.cuda_available = bool(torch.cuda.is_available())
        info.cuda_version = torch.version.cuda
        info.device_count = torch.cuda.device_count() if info.cuda_available else 0
        # bf16 on the CUDA device; None without one (CPU bf16 works, only slowly without AMX).
        info.bf16_supported = bool(torch.cuda.is_bf16_supported()) if info.cuda_available else None
    except Exception as exc:
        errors.append(f"cuda: {type(exc).__name__}: {exc}")
    try:
        mps = getattr(torch.backends, "mps", None)
        info.mps_available = bool(mps.is_available()) if mps is not None else False
    except Exception as exc:
        errors.append(f"mps: {type(exc).__name__}: {exc}")
    if errors:
        info.error = "; ".join(" ".join(e.split()) for e in errors)[:300]
    return info

"""Thin reader around pynvml: one raw readout dict, in the shape of tests/fixtures/hardware/nvml-h100.json.

Nothing here interprets a value; advisor.hardware.parse does that. Every getter is called on its
own and a getter that raises leaves its error, as a string starting with "error: ", in place of
the value, so one unsupported query (MIG on a consumer card, power on a VM) never loses the rest.
Indices are NVML's, which ignore CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advisor.hardware.parse import ERROR_PREFIX  # the parser recognises failed getters by it

# pynvml keeps NVML initialised per process (reference counted); we initialise once and keep it,
# so the probes' per-sample helpers below cost a getter call, not an nvmlInit.
_STATE: dict[str, Any] = {}


def _import_pynvml():
    """The pynvml module (package nvidia-ml-py); a separate function so tests can replace it."""
    import pynvml

    return pynvml


def error_value(exc: BaseException) -> str:
    return f"{ERROR_PREFIX}{type(exc).__name__}: {' '.join(str(exc).split())}"


def _session():
    """(pynvml, None) once NVML is initialised, or (None, why) when it cannot be."""
    if "nvml" in _STATE or "why" in _STATE:
        return _STATE.get("nvml"), _STATE.get("why")
    try:
        nv = _import_pynvml()
    except Exception as exc:  # ImportError, or a broken install
        _STATE["why"] = f"pynvml not importable ({type(exc).__name__}: {exc}); pip install nvidia-ml-py"
        return None, _STATE["why"]
    try:
        nv.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded on machines without a GPU
        _STATE["why"] = error_value(exc)[len(ERROR_PREFIX):]
        return None, _STATE["why"]
    _STATE["nvml"] = nv
    return nv, None


def reset() -> None:
    """Forget the NVML session (tests; or after a driver reload)."""
    nv = _STATE.get("nvml")
    _STATE.clear()
    if nv is not None:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return _plain(fn())
    except Exception as exc:
        return error_value(exc)


def _plain(value: Any) -> Any:
    """NVML structs, tuples and bytes as JSON-able data."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "_fields_"):  # ctypes structure
        return {name: _plain(getattr(value, name)) for name, *_ in value._fields_
                if not name.startswith("_") and name != "version"}
    return value


def _processes(nv, h) -> list[dict]:
    return [{"pid": p.pid, "used_gpu_memory": p.usedGpuMemory}
            for p in nv.nvmlDeviceGetComputeRunningProcesses(h)]


def _device_getters(nv, h) -> dict[str, Callable[[], Any]]:
    return {
        "name": lambda: nv.nvmlDeviceGetName(h),
        "uuid": lambda: nv.nvmlDeviceGetUUID(h),
        "memory": lambda: nv.nvmlDeviceGetMemoryInfo(h),
        "bar1": lambda: nv.nvmlDeviceGetBAR1MemoryInfo(h),
        "cuda_compute_capability": lambda: nv.nvmlDeviceGetCudaComputeCapability(h),
        "architecture": lambda: nv.nvmlDeviceGetArchitecture(h),
        "bus_width_bits": lambda: nv.nvmlDeviceGetMemoryBusWidth(h),
        "max_clock_mem_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
        "max_clock_sm_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
        "clock_sm_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
        "clock_mem_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
        "num_cores": lambda: nv.nvmlDeviceGetNumGpuCores(h),
        "power_limit_mw": lambda: nv.nvmlDeviceGetPowerManagementLimit(h),
        "enforced_power_limit_mw": lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h),
        "power_usage_mw": lambda: nv.nvmlDeviceGetPowerUsage(h),
        "total_energy_mj": lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h),
        "temperature_c": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
        "utilization": lambda: nv.nvmlDeviceGetUtilizationRates(h),
        "pcie_gen_max": lambda: nv.nvmlDeviceGetMaxPcieLinkGeneration(h),
        "pcie_width_max": lambda: nv.nvmlDeviceGetMaxPcieLinkWidth(h),
        "mig_mode": lambda: nv.nvmlDeviceGetMigMode(h),
        "persistence_mode": lambda: nv.nvmlDeviceGetPersistenceMode(h),
        "compute_mode": lambda: nv.nvmlDeviceGetComputeMode(h),
        "brand": lambda: nv.nvmlDeviceGetBrand(h),
        "vbios": lambda: nv.nvmlDeviceGetVbiosVersion(h),
        "processes": lambda: _processes(nv, h),
    }


def read_nvml() -> dict[str, Any]:
    """The raw readout. Never raises: without NVML it is {"init_error": why}.

    The serial number is not read: the profile does not use it and it identifies one card.
    """
    nv, why = _session()
    if nv is None:
        return {"init_error": why}
    out: dict[str, Any] = {
        "driver": _call(nv.nvmlSystemGetDriverVersion),
        "nvml": _call(nv.nvmlSystemGetNVMLVersion),
        "cuda_driver": _call(nv.nvmlSystemGetCudaDriverVersion),
        "count": _call(nv.nvmlDeviceGetCount),
        "devices": [],
    }
    count = out["count"] if isinstance(out["count"], int) else 0
    for i in range(count):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
        except Exception as exc:
            out["devices"].append({"index": i, "handle": error_value(exc)})
            continue
        device: dict[str, Any] = {"index": i}
        for key, getter in _device_getters(nv, h).items():
            device[key] = _call(getter)
        out["devices"].append(device)
    return out


def _handle(index: int):
    nv, _ = _session()
    if nv is None:
        return None, None
    try:
        return nv, nv.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return None, None


def free_memory_bytes(index: int) -> int | None:
    """Free memory of NVML device `index` now, or None when NVML cannot say. Never raises."""
    nv, h = _handle(index)
    if h is None:
        return None
    try:
        return int(nv.nvmlDeviceGetMemoryInfo(h).free)
    except Exception:
        return None


def total_energy_mj(index: int) -> int | None:
    """Energy used by device `index` since the driver loaded, in millijoules (Volta and later).

    Sample before and after a probe and subtract. None when unsupported. Never raises.
    """
    nv, h = _handle(index)
    if h is None:
        return None
    try:
        return int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
    except Exception:
        return None


def index_of_uuid(uuid: str) -> int | None:
    """The NVML index of the GPU with this UUID ("GPU-..." or bare, as torch's device properties
    give it), or None. Torch numbers devices after CUDA_VISIBLE_DEVICES, NVML does not. Never raises."""
    nv, _ = _session()
    if nv is None or not uuid:
        return None
    want = str(uuid).lower().removeprefix("gpu-")
    try:
        for i in range(nv.nvmlDeviceGetCount()):
            got = _plain(nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(i)))
            if str(got).lower().removeprefix("gpu-") == want:
                return i
    except Exception:
        return None
    return None

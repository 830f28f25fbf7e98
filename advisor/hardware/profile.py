"""The HardwareProfile of this machine (detected, or loaded from a recorded fixture) or of a named target.

detect_profile() reads NVML, the host and torch once per process. ADVISOR_HARDWARE_FIXTURE=path.json
replaces detection with a recording (tests and scenario runs simulate other machines with it):
a HardwareProfile JSON; a raw document {"nvml": <readout or null>, "cpu": <host dict>,
"torch": <TorchInfo or absent>} that goes through the same parser as a live reading; or a bare
NVML readout (host unknown).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from advisor.errors import INSTALL_HINT, UsageError
from advisor.hardware.parse import cpu_notes, parse_cpu, parse_nvml
from advisor.hardware.schema import CPUInfo, GPUInfo, HardwareProfile, TorchInfo

ENV_FIXTURE = "ADVISOR_HARDWARE_FIXTURE"
GB = 1e9
TORCH_MISSING_NOTE = f"torch not installed: probes unavailable ({INSTALL_HINT})"
TORCH_UNCHECKED_NOTE = "torch backends were not checked (only the installed version was read)"

_CACHE: dict[tuple[str, bool], HardwareProfile] = {}
_RAW: dict[str, Any] = {}


def fingerprint(profile: HardwareProfile) -> str:
    """16 hex digits of sha256 over what decides model speed and fit, and nothing that drifts.

    In: each GPU's name, total memory and compute capability (in index order); NVIDIA driver and
    CUDA driver versions; CPU model, physical and logical cores; total RAM rounded to whole GB;
    the OS string (platform.platform(), kernel included); the target id for named targets. Out:
    hostname, free/used memory, clocks, serials, uuids, so two identical machines share a
    fingerprint and it changes when hardware or drivers change; and the Python environment (torch
    installed or not, its version), so two venvs on one machine are one machine in `advisor compare`
    (the probe caches key on the torch version themselves).
    """
    ram = profile.cpu.ram_total_bytes
    basis = {
        "gpus": [[g.name, g.memory_total_bytes, g.compute_capability]
                 for g in sorted(profile.gpus, key=lambda g: g.index)],
        "driver": profile.driver_version,
        "cuda_driver": profile.cuda_driver_version,
        "cpu": profile.cpu.model_name,
        "physical_cores": profile.cpu.physical_cores,
        "logical_cores": profile.cpu.logical_cores,
        "ram_gb": round(ram / GB) if ram else None,
        "os": profile.os,
        "target": profile.target_id,
    }
    text = json.dumps(basis, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _torch_notes(torch: TorchInfo | None) -> list[str]:
    if torch is None:
        return []
    if not torch.installed:
        return [TORCH_MISSING_NOTE]
    notes = []
    if torch.error:
        notes.append(f"torch: {torch.error}")
    elif torch.backends_checked is False:
        notes.append(TORCH_UNCHECKED_NOTE)
    return notes


def build_profile(nvml_readout: Any, cpu_raw: Any, torch: TorchInfo | None,
                  source: str = "detected") -> HardwareProfile:
    """Pure: raw readouts -> HardwareProfile, fingerprint included."""
    nv = parse_nvml(nvml_readout)
    cpu = parse_cpu(cpu_raw)
    host = cpu_raw if isinstance(cpu_raw, dict) else {}
    text = lambda key: host.get(key) if isinstance(host.get(key), str) else None  # noqa: E731
    profile = HardwareProfile(
        source=source, hostname=text("hostname"), os=text("os"), python=text("python"),
        driver_version=nv.driver_version, cuda_driver_version=nv.cuda_driver_version,
        nvml_version=nv.nvml_version, gpu_count=len(nv.gpus), gpus=nv.gpus, cpu=cpu, torch=torch,
        notes=nv.notes + cpu_notes(cpu_raw, cpu) + _torch_notes(torch),
    )
    if torch is not None and torch.mps_available and not profile.gpus:
        profile.notes.append("an Apple GPU (MPS) is available to torch; its memory is the shared RAM")
    profile.fingerprint = fingerprint(profile)
    return profile


def _fail(path: str, why: str) -> UsageError:
    return UsageError(f"{ENV_FIXTURE}={path}: {why}",
                      hint="a HardwareProfile JSON or {\"nvml\": ..., \"cpu\": ...}; empty to detect")


def load_fixture(path: str) -> HardwareProfile:
    """A recorded profile or raw readout as a HardwareProfile with source="fixture"."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read ({type(exc).__name__})") from None
    except RecursionError:
        raise _fail(path, "JSON nested too deeply") from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise _fail(path, "not valid JSON (a number out of range)") from None
    if not isinstance(doc, dict):
        raise _fail(path, "expected a JSON object")
    if "devices" in doc and "gpus" not in doc:  # a bare NVML readout, like nvml-h100.json
        doc = {"nvml": doc, "cpu": None}
    # A raw document: parsed like a live reading. (A bare readout's own "nvml" is a string.)
    raw = "nvml" in doc and (doc["nvml"] is None or isinstance(doc["nvml"], dict))
    try:
        if raw:
            torch = TorchInfo.model_validate(doc["torch"]) if doc.get("torch") is not None else None
            return build_profile(doc["nvml"], doc.get("cpu"), torch, source="fixture")
        profile = HardwareProfile.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in (("torch",) if raw else ()) + tuple(err["loc"])) or "document"
        raise _fail(path, f"{where}: {err['msg']}") from None
    except RecursionError:
        raise _fail(path, "document nested too deeply") from None
    profile = profile.model_copy(update={"source": "fixture", "gpu_count": len(profile.gpus)})
    profile.fingerprint = fingerprint(profile)
    return profile


def _raw_readouts() -> tuple[dict, dict]:
    if not _RAW:
        from advisor.hardware.cpu import read_cpu
        from advisor.hardware.nvml import read_nvml

        _RAW["nvml"], _RAW["cpu"] = read_nvml(), read_cpu()
    return _RAW["nvml"], _RAW["cpu"]


def detect_profile(include_torch: bool = True) -> HardwareProfile:
    """This machine's profile (or ADVISOR_HARDWARE_FIXTURE's), cached per process. Never raises
    for odd hardware; a broken fixture file raises UsageError.

    include_torch=False reads torch's installed version without importing torch (fast: MLflow
    plugins, `check`); the fingerprint is the same either way.
    """
    fixture = os.environ.get(ENV_FIXTURE, "")
    key = (fixture, include_torch)
    if key not in _CACHE:
        if fixture:
            _CACHE[key] = load_fixture(fixture)
        else:
            from advisor.hardware.torch_info import detect_torch

            nvml_readout, cpu_raw = _raw_readouts()
            _CACHE[key] = build_profile(nvml_readout, cpu_raw, detect_torch(check_backends=include_torch))
    return _CACHE[key].model_copy(deep=True)  # callers may edit their copy


def clear_cache() -> None:
    """Forget detected profiles and raw readings (tests; long-lived processes after a change)."""
    _CACHE.clear()
    _RAW.clear()


def target_profile(target) -> HardwareProfile:
    """A named hardware.yaml target as a profile (source="target"), from its spec-sheet figures.

    Memory (the driver's total in memory_bytes, else memory_gb as 1e9-byte GB) and tdp_w are per GPU,
    repeated for each of target.gpus.
    """
    notes = [f"named target '{target.id}': spec-sheet figures from the catalog, not detected"]
    memory = target.device_memory_bytes
    if target.kind == "gpu":
        gpus = [GPUInfo(index=i, name=target.name, memory_total_bytes=memory,
                        peak_bandwidth_gbs=target.memory_bandwidth_gbs, power_limit_w=target.tdp_w,
                        matched_target=target.id) for i in range(target.gpus)]
        cpu = CPUInfo()
    else:
        gpus = []
        cpu = CPUInfo(model_name=target.name, ram_total_bytes=memory,
                      memory_bandwidth_gbs=target.memory_bandwidth_gbs)
    profile = HardwareProfile(source="target", target_id=target.id, gpu_count=len(gpus), gpus=gpus,
                              cpu=cpu, notes=notes)
    profile.fingerprint = fingerprint(profile)
    return profile


def restrict_targets(profile: HardwareProfile, known_ids) -> HardwareProfile:
    """A copy whose GPUs keep matched_target only when the loaded catalog defines that id."""
    out = profile.model_copy(deep=True)
    for gpu in out.gpus:
        if gpu.matched_target is not None and gpu.matched_target not in known_ids:
            gpu.matched_target = None
    return out

"""The probes' public API for the estimator and the CLI.

    local_calibration(entry, fmt, batch, prompt_tokens, new_tokens) -> CalibrationResult
    microprobe_rates(device=None) -> MeasuredRates
    probe_real_model(path_or_uri, ...) -> LatencyMeasurement (advisor.probe.real_model)

Results are cached per machine fingerprint, software versions, architecture, format and request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from advisor.catalog.schema import Architecture, ModelEntry
from advisor.estimate.schema import LatencyMeasurement, MeasuredRates
from advisor.probe.arch_probe import ArchProbeDetail
from advisor.probe.base import (
    DEFAULT_BUDGET_S,
    PROBED_FORMATS,
    TORCH_MISSING,
    Budget,
    BudgetExhausted,
    DoesNotFit,
    ProbeConfig,
    Progress,
)
from advisor.probe.cache import CacheKey, ProbeCache, architecture_hash, machine_fingerprint, software_versions

MICRO_MAX_S = 10.0


class CalibrationResult(BaseModel):
    rates: MeasuredRates | None = None
    measurement: LatencyMeasurement | None = None
    skipped: str | None = None          # why nothing (or only the rates) was measured
    from_cache: bool = False
    does_not_fit: bool = False          # the probe itself did not fit in the allowed memory
    detail: ArchProbeDetail | None = None
    notes: list[str] = []


def probe_failed(exc: BaseException) -> str:
    """One line for a probe that failed on the device (not out of memory, not the budget)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"probe failed: {text[:240]}"


def torch_available() -> bool:
    """Whether torch can be imported, without importing it (that costs 1-2 s)."""
    import importlib.util
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except Exception:  # a broken or blocked installation
        return False


def _device(device: str | None) -> str:
    from advisor.probe.timing import resolve_device

    return resolve_device(device)


def microprobe_rates(device: str | None = None, *, budget_s: float | None = MICRO_MAX_S, refresh: bool = False,
                     run: bool = True, progress: Progress | None = None, cache: ProbeCache | None = None,
                     fingerprint: str | None = None, memory_fraction: float = 0.5) -> MeasuredRates | None:
    """Achieved matmul/bandwidth/overhead rates of the local device (cached); None without torch or run=False."""
    if not torch_available():
        return None
    from advisor.probe.micro import run_microprobes

    device = _device(device)
    fingerprint = fingerprint or machine_fingerprint()
    tv, _ = software_versions()
    key = CacheKey(kind="microprobes", fingerprint=fingerprint, device=device, torch=tv)
    cache = cache or ProbeCache()
    if not refresh:
        hit = cache.load_entry(key, MeasuredRates)
        if hit is not None and (not hit[1] or not run or _busy()):
            return hit[0]   # taken under load: reused while the machine is still busy, replaced once quiet
    if not run:
        return None
    rates = run_microprobes(device, budget=Budget(budget_s), fingerprint=fingerprint, progress=progress,
                            memory_fraction=memory_fraction)
    cache.save(key, rates, under_load=_busy())
    return rates


def _busy() -> bool:
    """Whether results are taken under load (cached as such). ADVISOR_PROBE_IGNORE_LOAD=1: never (tests)."""
    import os

    if os.environ.get("ADVISOR_PROBE_IGNORE_LOAD"):
        return False
    from advisor.probe.machine_load import busy_note

    return bool(busy_note())


def probe_architecture(model_id: str, arch: Architecture, fmt: str, batch: int, prompt_tokens: int, *,
                       new_tokens: int = 32, device: str | None = None, budget_s: float | None = None,
                       config: ProbeConfig | None = None, progress: Progress | None = None,
                       prefer: str = "transformers", budget: Budget | None = None,
                       clock: Callable[[], float] = time.perf_counter,
                       ) -> tuple[LatencyMeasurement, ArchProbeDetail]:
    """Run the architecture probe now (no cache). Raises DoesNotFit / BudgetExhausted.

    `clock` times the probe (and the budget, when none is given): tests pass a fake one."""
    from advisor.probe.arch_probe import ArchProbe

    cfg = config or ProbeConfig()
    cfg = cfg.model_copy(update={"decode_steps": max(2, min(cfg.decode_steps, new_tokens))})
    probe = ArchProbe(model_id, arch, fmt, batch, prompt_tokens, device=_device(device), config=cfg,
                      progress=progress, prefer=prefer, new_tokens=new_tokens, clock=clock)
    m = probe.run(budget or Budget(budget_s if budget_s is not None else cfg.budget_s, clock))
    assert probe.detail is not None
    return m, probe.detail


def _cross_check(detail: ArchProbeDetail, arch: Architecture, fmt: str, batch: int,
                 rates: MeasuredRates | None) -> list[str]:
    """Compare the per-layer decode time with what the bandwidth microprobe allows."""
    # The 1-token matmul's weight-read rate in this format, else the copy's traffic (read + write:
    # a read-only stream runs at about that rate, not half of it).
    gbs = (rates.decode_gbs.get(fmt) or rates.bandwidth_gbs) if rates is not None else None
    if not gbs:
        return []
    from advisor.catalog.params import param_breakdown
    from advisor.probe.safety import dtype_bytes

    layer_bytes = param_breakdown(arch).per_layer * dtype_bytes(fmt)
    floor_ms = layer_bytes / (gbs * 1e9) * 1000
    if detail.decode.layer_ms < 0.5 * floor_ms:
        return [f"per-layer decode time {detail.decode.layer_ms:.2f} ms is under half the {floor_ms:.2f} ms "
                "that reading its weights at the measured bandwidth takes (cache-resident truncated model?); "
                "treat the decode figure as optimistic"]
    return []


def local_calibration(entry: ModelEntry, fmt: str, batch: int, prompt_tokens: int, new_tokens: int, *,
                      budget_s: float | None = None, refresh: bool = False, run: bool = True,
                      progress: Progress | None = None, config: ProbeConfig | None = None,
                      device: str | None = None) -> CalibrationResult:
    """Measured rates and the architecture probe's latency of `entry` on this machine (cached)."""
    if fmt not in PROBED_FORMATS:
        return CalibrationResult(skipped=f"format {fmt} is not probed "
                                         f"(the probes time {', '.join(PROBED_FORMATS)} in torch)")
    if not torch_available():
        return CalibrationResult(skipped=TORCH_MISSING)
    cfg = config or ProbeConfig()
    if budget_s is not None:
        cfg = cfg.model_copy(update={"budget_s": budget_s})
    device = _device(device or cfg.device)
    arch = entry.arch
    fingerprint = machine_fingerprint()
    tv, hv = software_versions()
    cache = ProbeCache()
    key = CacheKey(kind="calibration", fingerprint=fingerprint, device=device, torch=tv, transformers=hv,
                   model=entry.id, architecture=architecture_hash(arch), format=fmt, batch=batch,
                   prompt_tokens=prompt_tokens, new_tokens=new_tokens)
    if not refresh:
        entry_hit = cache.load_entry(key, CalibrationResult)
        if entry_hit is not None:
            hit, under_load = entry_hit
            if not under_load or not run or _busy():
                notes = list(hit.notes)
                if under_load:
                    notes.append("cached figures were measured while the machine was busy; a run on a quiet "
                                 "machine replaces them")
                return hit.model_copy(update={"from_cache": True, "notes": notes})
    if not run:
        rates = microprobe_rates(device, run=False, cache=cache, fingerprint=fingerprint)
        return CalibrationResult(rates=rates,
                                 skipped=f"not probed yet on this machine (run 'advisor probe {entry.id}')")

    budget = Budget(cfg.budget_s)
    try:
        rates = microprobe_rates(device, budget_s=min(MICRO_MAX_S, budget.left * 0.25), refresh=refresh,
                                 progress=progress, cache=cache, fingerprint=fingerprint,
                                 memory_fraction=cfg.memory_fraction)
    except DoesNotFit as exc:
        return CalibrationResult(skipped=f"does not fit: {exc}", does_not_fit=True)
    except BudgetExhausted as exc:
        return CalibrationResult(skipped=str(exc))
    except RuntimeError as exc:       # a device fault (CUDA error, lost GPU): a result, not a crash
        return CalibrationResult(skipped=probe_failed(exc))
    try:
        m, detail = probe_architecture(entry.id, arch, fmt, batch, prompt_tokens, new_tokens=new_tokens,
                                       device=device, config=cfg, progress=progress, budget=budget)
    except DoesNotFit as exc:
        return CalibrationResult(rates=rates, skipped=f"does not fit: {exc}", does_not_fit=True)
    except BudgetExhausted as exc:
        return CalibrationResult(rates=rates, skipped=str(exc))
    except RuntimeError as exc:
        return CalibrationResult(rates=rates, skipped=probe_failed(exc))
    extra = _cross_check(detail, arch, fmt, batch, rates)
    if extra:
        m = m.model_copy(update={"notes": m.notes + extra})
    result = CalibrationResult(rates=rates, measurement=m, detail=detail)
    busy = _busy()
    cache.save(key, result, under_load=busy)
    if busy:
        result.notes.append("measured while the machine was busy: cached as such, and a run on a quiet machine "
                            "measures again and replaces it")
    return result


__all__ = ["CalibrationResult", "DEFAULT_BUDGET_S", "local_calibration", "microprobe_rates", "probe_architecture"]


def probe_real_model(*, model_path: str | None = None, model_uri: str | None = None, fmt: str = "fp32",
                     batch: int = 1, prompt_tokens: int = 256, new_tokens: int = 32, budget_s: float | None = None,
                     device: str | None = None, progress: Progress | None = None,
                     config: ProbeConfig | None = None) -> LatencyMeasurement:
    """Run real weights from a local folder or an MLflow model URI (never cached: weights can change).

    Raises TorchMissingError, UsageError (bad path/URI, no transformers), InfraError (MLflow down),
    DoesNotFit and BudgetExhausted.
    """
    import tempfile
    from pathlib import Path

    from advisor.errors import TorchMissingError, UsageError
    from advisor.probe.build import transformers_available
    from advisor.probe.real_model import RealModelProbe, download_mlflow_model, find_transformers_dir

    if (model_path is None) == (model_uri is None):
        raise UsageError("give exactly one of --model-path and --model-uri")
    if fmt not in PROBED_FORMATS:
        raise UsageError(f"format {fmt} cannot be run by the real-model probe (use {', '.join(PROBED_FORMATS)})")
    if not torch_available():
        raise TorchMissingError(TORCH_MISSING)
    if not transformers_available():
        raise UsageError("transformers is not installed (pip install 'model-advisor[hf]')")
    cfg = config or ProbeConfig()
    budget = Budget(budget_s if budget_s is not None else cfg.budget_s)
    with tempfile.TemporaryDirectory(prefix="advisor-model-") as tmp:
        if model_uri is not None:
            folder, name = download_mlflow_model(model_uri, Path(tmp)), model_uri
        else:
            p = Path(model_path).expanduser()
            if not p.exists():
                raise UsageError(f"{p}: no such folder")
            folder, name = find_transformers_dir(p), str(p)
        probe = RealModelProbe(folder, name, fmt, batch, prompt_tokens, new_tokens,
                               device=_device(device or cfg.device), config=cfg, progress=progress)
        return probe.run(budget)


__all__ += ["probe_real_model"]

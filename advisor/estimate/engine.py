"""estimate(): memory and latency of one model on one target, with the basis of every figure."""

from __future__ import annotations

import os
from dataclasses import dataclass

from advisor.catalog.schema import FormatSpec, HardwareTarget, ModelEntry
from advisor.errors import UsageError
from advisor.estimate import device as devmod
from advisor.estimate.device import DeviceSpec
from advisor.estimate.latency import Rates, calibrated_rates, latency_estimate, spec_rates
from advisor.estimate.memory import (KV_FORMAT_BYTES, DeviceShare, MemoryBreakdown, device_share,
                                     kv_cache_bytes, kv_element_bytes, memory_breakdown)
from advisor.catalog.runtimes import RuntimeProfile
from advisor.estimate.schema import Estimate, LatencyMeasurement, MeasuredRates, MemoryEstimate

DEFAULT_PROMPT_TOKENS = 512   # a typical chat/RAG prompt
DEFAULT_NEW_TOKENS = 128      # a typical answer
RUNTIMES = ("transformers", "vllm")
MAX_GPUS_SEARCHED = 64


@dataclass(frozen=True)
class Request:
    fmt: str
    kv_format: str
    batch: int
    prompt: int
    new: int
    gpus: int


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def validate_request(entry: ModelEntry, req: Request, runtime: str, known_formats=None) -> None:
    for name, value in (("batch", req.batch), ("prompt tokens", req.prompt), ("new tokens", req.new),
                        ("gpus", req.gpus)):
        if not isinstance(value, int) or value <= 0:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if known_formats is not None and req.fmt not in known_formats:
        from advisor.errors import unknown_id

        raise unknown_id("format", req.fmt, list(known_formats))
    if req.fmt not in entry.offered_formats():
        raise UsageError(f"{entry.id} is not offered in {req.fmt}",
                         hint=f"offered: {', '.join(entry.offered_formats())}")
    if req.kv_format not in KV_FORMAT_BYTES:
        raise UsageError(f"unknown KV-cache format '{req.kv_format}'", hint="choose fp16 or fp8")
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime '{runtime}'", hint="choose transformers or vllm")
    ctx = entry.context
    if ctx is not None and req.prompt + req.new > ctx:
        raise UsageError(f"prompt + new tokens ({req.prompt + req.new}) exceed {entry.id}'s context of {ctx} tokens")


def _workspace(device: DeviceSpec, runtime: RuntimeProfile) -> int:
    return int(runtime.gemm_workspace_bytes.get(device.workspace_key)) if device.kind == "gpu" else 0


def memory_for(entry: ModelEntry, fmt: FormatSpec, req: Request, device: DeviceSpec, runtime: RuntimeProfile,
               gpus: int) -> tuple[MemoryBreakdown, DeviceShare]:
    arch = entry.arch
    mb = memory_breakdown(arch, fmt=fmt.id, bytes_per_param=fmt.bytes_per_param, kv_format=req.kv_format,
                          batch=req.batch, prompt=req.prompt, new=req.new, runtime=runtime,
                          workspace=_workspace(device, runtime), group_size=fmt.group_size)
    one_seq = kv_cache_bytes(arch, req.prompt + req.new, 1, kv_element_bytes(req.kv_format, fmt.id, runtime.id))
    share = device_share(mb, gpus=gpus, device_kind=device.kind, memory_bytes=device.memory_bytes,
                         ram_bytes=device.ram_bytes, runtime=runtime, kv_one_sequence=one_seq)
    return mb, share


def alternatives(entry: ModelEntry, fmt: FormatSpec, req: Request, device: DeviceSpec, runtime: RuntimeProfile,
                 formats: dict[str, FormatSpec], targets: dict[str, HardwareTarget]) -> dict:
    """What would hold it: the least-compressed smaller format, a GPU count, named targets (this format)."""
    out: dict = {"format": None, "format_bytes": None, "gpus": None, "targets": [], "cpu_targets": [],
                 "int4_bytes": None}
    smaller = sorted((formats[f] for f in entry.offered_formats() if f in formats
                      and formats[f].bytes_per_param < fmt.bytes_per_param),
                     key=lambda f: -f.bytes_per_param)
    for cand in smaller:
        _, share = memory_for(entry, cand, req, device, runtime, req.gpus)
        if share.fits:
            out["format"], out["format_bytes"] = cand.id, share.per_device
            break
    if out["format"] is None and "int4" in formats and fmt.id != "int4":
        out["int4_bytes"] = memory_for(entry, formats["int4"], req, device, runtime, req.gpus)[1].per_device
    if device.kind == "gpu":
        for n in range(req.gpus + 1, MAX_GPUS_SEARCHED + 1):
            if memory_for(entry, fmt, req, device, runtime, n)[1].fits:
                out["gpus"] = n
                break
    for t in sorted(targets.values(), key=lambda t: (t.memory_gb * t.gpus, t.id)):
        if t.id == device.id or (runtime.id == "vllm" and t.kind != "gpu"):
            continue
        if memory_for(entry, fmt, req, devmod.from_target(t), runtime, t.gpus)[1].fits:
            out["targets"].append(t.id)
            if t.kind == "cpu":
                out["cpu_targets"].append(t.id)
    return out


def _memory_explanation(entry: ModelEntry, fmt: str, mb: MemoryBreakdown, share: DeviceShare, device: DeviceSpec,
                        gpus: int, alt: dict | None) -> str:
    where = "this machine" if device.id == "local" else device.id
    on = f"{gpus} x {where}" if gpus > 1 else where
    need = (f"{entry.id} at {fmt} needs {_gb(share.per_device)} per device (weights {_gb(mb.weights)}, "
            f"KV cache {_gb(mb.kv_cache)}, activations {_gb(mb.activations)}, overhead {_gb(share.overhead)})")
    offers = f"{_gb(share.available)}" + (" to vLLM (gpu_memory_utilization)" if share.kv_pool is not None else "")
    if share.verdict == "fits":
        return f"Fits: {need}; {on} offers {offers}."
    if share.verdict == "fits-with-offload":
        return (f"Fits only with CPU offload: {need} but {on} offers {_gb(share.available)}, so "
                f"{_gb(share.offload)} of weights stay in host RAM and stream over PCIe every step (slow).")
    text = f"Does not fit: {need} but {on} offers {offers}."
    options = []
    if alt:
        if alt["format"]:
            options.append(f"at {alt['format']} ({_gb(alt['format_bytes'])} per device)")
        if alt["gpus"]:
            options.append(f"on {alt['gpus']} x {device.id} at {fmt}")
        if alt["targets"]:
            shown = [f"{t} (CPU)" if t in alt.get("cpu_targets", ()) else t for t in alt["targets"][:5]]
            options.append(f"at {fmt} on {', '.join(shown)}" + (" ..." if len(alt["targets"]) > 5 else ""))
        if not alt["format"]:
            text += f" No offered format ({', '.join(entry.offered_formats())}) fits one {where} either"
            if alt.get("int4_bytes") and "int4" not in entry.offered_formats():
                text += f"; even int4 (not offered for it) would need {_gb(alt['int4_bytes'])} per device"
            text += "."
    if options:
        text += " It would fit " + "; or ".join(options) + "."
    elif alt is not None:
        text += " Nothing tried holds it (formats, up to 64 GPUs, named targets)."
    return text


def estimate_entry(entry: ModelEntry, *, device: DeviceSpec, fmt: FormatSpec, runtime: RuntimeProfile,
                   req: Request, formats: dict[str, FormatSpec], targets: dict[str, HardwareTarget],
                   rates: MeasuredRates | None = None, measurement: LatencyMeasurement | None = None,
                   notes: list[str] | None = None) -> Estimate:
    """The pure core: no catalog loading, no probing."""
    validate_request(entry, req, runtime.id)
    notes = list(notes or []) + list(device.notes)
    if runtime.id == "vllm" and device.kind != "gpu":
        raise UsageError("the vllm runtime needs a GPU target", hint="use --runtime transformers for CPUs")
    if req.gpus > device.count:
        raise UsageError(f"--gpus {req.gpus} exceeds the {device.count} GPU(s) of {device.id}")
    mb, share = memory_for(entry, fmt, req, device, runtime, req.gpus)
    alt = None
    if share.verdict != "fits":
        alt = alternatives(entry, fmt, req, device, runtime, formats, targets)
    memory = MemoryEstimate(
        weights_bytes=mb.weights, kv_cache_bytes=mb.kv_cache, activations_bytes=mb.activations, peak_bytes=mb.peak,
        overhead_bytes=share.overhead, per_device_bytes=share.per_device, available_bytes=share.available,
        offload_bytes=share.offload, fits=share.fits, verdict=share.verdict, basis="spec", terms=dict(mb.terms),
        fits_with_format=alt["format"] if alt else None, fits_with_gpus=alt["gpus"] if alt else None,
        fits_on_targets=alt["targets"] if alt else [],
        explanation=_memory_explanation(entry, fmt.id, mb, share, device, req.gpus, alt),
        kv_pool_bytes=share.kv_pool, max_concurrent_sequences=share.concurrent)
    if share.concurrent is not None:
        cap = runtime.max_num_seqs.value if runtime.max_num_seqs else None
        notes.append(f"vLLM's KV pool ({_gb(share.kv_pool or 0)} per device) holds {share.concurrent} concurrent "
                     f"sequences of {req.prompt + req.new} tokens"
                     + (f" (vLLM schedules at most {int(cap)} at once by default)" if cap and share.concurrent > cap else ""))
    if rates is not None:
        used = calibrated_rates(rates, fmt.id, runtime)
    else:
        try:
            used = spec_rates(device, fmt.id, runtime)
        except UsageError:
            if measurement is None:
                raise
            # timed directly: the roofline terms are only context, and none can be had here
            used = Rates(tflops=0.0, bandwidth_gbs=0.0, step_overhead_ms=0.0, per_layer_ms=0.0,
                         prefill_per_layer_ms=0.0, basis="spec", compute_known=False)
            notes.append(f"no datasheet peaks for '{device.name}': roofline terms left at zero")
    if measurement is not None and (measurement.batch != req.batch or measurement.prompt_tokens != req.prompt):
        notes.append(f"the measurement was taken at batch {measurement.batch}, prompt {measurement.prompt_tokens}")
    latency = latency_estimate(entry.arch, fmt=fmt.id, weights_bytes=mb.weights,
                               kv_element_bytes=kv_element_bytes(req.kv_format, fmt.id, runtime.id),
                               batch=req.batch, prompt=req.prompt, new=req.new, runtime=runtime, rates=used,
                               offload_bytes=share.offload, measurement=measurement)
    if runtime.id == "transformers" and req.kv_format == "fp8":
        notes.append("an 8-bit KV cache in transformers needs a quantized cache (cache_implementation='quantized')")
    if kv_element_bytes(req.kv_format, fmt.id, runtime.id) > KV_FORMAT_BYTES[req.kv_format]:
        notes.append("transformers keeps the KV cache in the model dtype: fp32 (4 bytes) here, not fp16")
    retained = mb.terms.get("retained_outputs", 0)
    if retained:
        notes.append(f"peak includes {_gb(retained)} of a previous forward's logits and KV cache still referenced "
                     "while the next runs (`out = model(ids)` in a loop, as measured on the H100 reference data)")
    if share.verdict == "does-not-fit":
        latency = latency.model_copy(update={"explanation": "If it were held (it does not fit here): "
                                             + latency.explanation})
    if req.gpus > 1:
        notes.append("multi-GPU latency is estimated as for one device (interconnect costs not modelled)")
    return Estimate(model=entry.id, target=device.id, format=fmt.id, kv_format=req.kv_format, runtime=runtime.id,
                    batch=req.batch, prompt_tokens=req.prompt, new_tokens=req.new, gpus=req.gpus, memory=memory,
                    latency=latency, notes=notes)


def _local_device(profile, targets: dict[str, HardwareTarget], runtime: RuntimeProfile) -> DeviceSpec:
    if profile is None:
        try:
            from advisor.hardware.profile import detect_profile
        except ImportError:
            raise UsageError("local hardware detection is not available in this install",
                             hint="pass --target ID (see 'advisor profile --help')") from None
        profile = detect_profile()
    return devmod.from_profile(profile, targets, runtime)


def _calibrate(entry: ModelEntry, fmt: str, req: Request, notes: list[str]):
    try:
        from advisor.probe.api import local_calibration
    except ImportError:
        notes.append("probes unavailable in this install: spec figures only")
        return None, None
    try:
        cal = local_calibration(entry, fmt, req.batch, req.prompt, req.new, budget_s=None, refresh=False, run=True)
    except Exception as exc:  # a failed probe must not cost the user the spec estimate
        if os.environ.get("ADVISOR_DEBUG"):
            raise
        notes.append(f"probe failed ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}): spec figures")
        return None, None
    if cal.skipped:
        notes.append(f"probe skipped: {cal.skipped}")
    if cal.from_cache and (cal.rates or cal.measurement):
        notes.append("probe results from the local cache")
    notes.extend(getattr(cal, "notes", None) or [])
    return cal.rates, cal.measurement


def estimate(model: str | ModelEntry, *, target: str = "local", format: str = "bf16", kv_format: str = "fp16",
             batch: int = 1, prompt_tokens: int = DEFAULT_PROMPT_TOKENS, new_tokens: int = DEFAULT_NEW_TOKENS,
             runtime: str = "transformers", gpus: int = 1, catalog_paths: tuple[str, ...] | list[str] = (),
             probe: bool = True, rates: MeasuredRates | None = None,
             measurement: LatencyMeasurement | None = None, profile=None) -> Estimate:
    """Memory and latency of `model` on `target` ("local" or a hardware.yaml id).

    Basis: "measured" with a measurement, "calibrated" with probe rates, otherwise "spec".
    """
    from advisor.catalog.loader import get_catalog

    catalog = get_catalog(tuple(catalog_paths))
    entry = model if isinstance(model, ModelEntry) else catalog.model(model)
    req = Request(fmt=format, kv_format=kv_format, batch=batch, prompt=prompt_tokens, new=new_tokens, gpus=gpus)
    validate_request(entry, req, runtime, catalog.formats)
    if runtime not in catalog.runtimes:
        raise UsageError(f"no runtime profile '{runtime}' in the catalog", hint="catalog/runtimes.yaml defines them")
    rt = catalog.runtimes[runtime]
    fmt = catalog.format(format)
    notes: list[str] = []
    if target == "local":
        device = _local_device(profile, catalog.targets, rt)
        if probe and rates is None and measurement is None:
            rates, measurement = _calibrate(entry, format, req, notes)
    else:
        device = devmod.from_target(catalog.target(target))
    if target != "local" and (rates is not None or measurement is not None):
        notes.append(f"probe figures were given for the named target {target}: they are used as-is")
    return estimate_entry(entry, device=device, fmt=fmt, runtime=rt, req=req, formats=catalog.formats,
                          targets=catalog.targets, rates=rates, measurement=measurement, notes=notes)

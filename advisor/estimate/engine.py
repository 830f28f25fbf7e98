"""estimate(): memory and latency of one model on one target and runtime, with the basis of every figure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import FormatSpec, HardwareTarget, ModelEntry
from advisor.errors import UsageError, one_line
from advisor.estimate import device as devmod
from advisor.estimate.device import DeviceSpec
from advisor.estimate.formats import COMMUNITY_LABEL, compute_dtype, format_origin, servable_formats, weight_terms
from advisor.estimate.latency import Rates, calibrated_rates, latency_estimate, spec_rates
from advisor.estimate.memory import (
    KV_FORMAT_BYTES,
    device_share,
    kv_cache_bytes,
    kv_element_bytes,
    memory_breakdown,
    recurrent_state_bytes,
)
from advisor.estimate.parallel import Split, split_for, valid_degrees
from advisor.estimate.pool import engine_memory, max_num_seqs
from advisor.estimate.schema import Estimate, LatencyMeasurement, MeasuredRates, MemoryEstimate

DEFAULT_PROMPT_TOKENS = 512   # a typical chat/RAG prompt
DEFAULT_NEW_TOKENS = 128      # a typical answer
MODES = ("static", "continuous", "open-loop", "saturated")


@dataclass(frozen=True)
class Request:
    fmt: str
    kv_format: str
    batch: int                    # sequences decoding together (static batch or continuous concurrency)
    prompt: int
    new: int
    gpus: int
    max_model_len: int | None = None      # engines: the longest sequence they are sized for (default: prompt + new)
    memory_fraction: float | None = None  # vLLM --gpu-memory-utilization, SGLang --mem-fraction-static, ...
    mode: str | None = None               # scheduling override; default: the runtime's own
    request_rate: float | None = None     # open-loop arrivals per second
    scheduler_steps: int = 1              # vLLM --num-scheduler-steps

    @property
    def model_len(self) -> int:
        return self.max_model_len or (self.prompt + self.new)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


# --- runtimes -----------------------------------------------------------------------------------------------

def resolve_runtime(runtimes: dict[str, RuntimeProfile], name: str) -> RuntimeProfile:
    """A runtime by id or alias (Ollama is llama.cpp), case-insensitive; `id@build` picks one of its older
    builds (catalog/runtimes.yaml `builds`, e.g. llama.cpp@2023-12)."""
    key, _, build = name.strip().lower().partition("@")
    found = runtimes.get(key)
    if found is None:
        found = next((rt for rt in runtimes.values() if key in (a.lower() for a in rt.aliases)), None)
    if found is None:
        from advisor.errors import unknown_id

        raise unknown_id("runtime", name, runtime_names(runtimes))
    if not build:
        return found
    if build not in found.build_ids():
        known = ", ".join(f"{found.id}@{b}" for b in found.build_ids())
        raise UsageError(f"unknown build '{build}' of runtime {found.id}",
                         hint=f"known: {known}" if known else f"{found.id} lists no older builds")
    return found.for_build(build)


def runtime_names(runtimes: dict[str, RuntimeProfile]) -> list[str]:
    return list(runtimes) + [a for rt in runtimes.values() for a in rt.aliases]


def default_runtime_id(runtimes: dict[str, RuntimeProfile], *, local: bool, device_kind: str) -> str:
    """Named GPU targets get the engine teams deploy with; the local machine what the probes measure."""
    role = "local" if local else ("gpu-target" if device_kind == "gpu" else "cpu-target")
    for rt in runtimes.values():
        if role in rt.default_for:
            return rt.id
    for rt in runtimes.values():
        if device_kind in rt.devices:
            return rt.id
    raise UsageError(f"no runtime in the catalog runs on a {device_kind}")


def runtimes_serving(runtimes: dict[str, RuntimeProfile], fmt: str, device_kind: str) -> list[str]:
    return [rt.id for rt in runtimes.values() if fmt in rt.formats and device_kind in rt.devices]


# --- validation ---------------------------------------------------------------------------------------------

def validate_request(entry: ModelEntry, req: Request, runtime: RuntimeProfile, known_formats=None,
                     runtimes: dict[str, RuntimeProfile] | None = None, device_kind: str | None = None) -> None:
    for name, value in (("batch", req.batch), ("prompt tokens", req.prompt), ("new tokens", req.new),
                        ("gpus", req.gpus), ("scheduler steps", req.scheduler_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if known_formats is not None and req.fmt not in known_formats:
        from advisor.errors import unknown_id

        raise unknown_id("format", req.fmt, list(known_formats))
    if req.kv_format not in KV_FORMAT_BYTES:
        raise UsageError(f"unknown KV-cache format '{req.kv_format}'", hint="choose fp16 or fp8")
    if req.fmt not in runtime.formats:
        others = runtimes_serving(runtimes or {}, req.fmt, device_kind or "gpu")
        raise UsageError(f"the {runtime.id} runtime does not serve {req.fmt} weights",
                         hint=(f"runtimes that do: {', '.join(others)}" if others else
                               f"{runtime.id} serves: {', '.join(runtime.formats)}"))
    if device_kind is not None and device_kind not in runtime.devices:
        raise UsageError(f"the {runtime.id} runtime needs a {' or '.join(runtime.devices)} target",
                         hint="use --runtime llama.cpp or --runtime transformers for CPUs")
    if req.max_model_len is not None and (not isinstance(req.max_model_len, int) or req.max_model_len <= 0):
        raise UsageError(f"max model length must be a positive integer, got {req.max_model_len!r}")
    if req.max_model_len is not None and req.max_model_len < req.prompt + req.new:
        raise UsageError(f"--max-model-len {req.max_model_len} is shorter than prompt + new tokens "
                         f"({req.prompt + req.new})")
    if req.memory_fraction is not None and not 0 < req.memory_fraction <= 1:
        raise UsageError(f"GPU memory utilization must be in (0, 1], got {req.memory_fraction!r}")
    if req.mode is not None and req.mode not in MODES:
        raise UsageError(f"unknown scheduling mode '{req.mode}'", hint=f"choose {', '.join(MODES)}")
    ctx = entry.context
    if ctx is not None and max(req.prompt + req.new, req.max_model_len or 0) > ctx:
        raise UsageError(f"prompt + new tokens ({max(req.prompt + req.new, req.max_model_len or 0)}) exceed "
                         f"{entry.id}'s context of {ctx} tokens")


# --- memory -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryView:
    """The memory figures of either model (eager loop or engine pool), as the estimate reports them."""

    weights: int
    kv_cache: int
    activations: int
    peak: int
    overhead: int
    per_device: int
    available: int
    offload: int
    fits: bool
    verdict: str
    weights_per_device: int
    terms: dict[str, int] = field(default_factory=dict)
    kv_pool: int | None = None
    concurrent: int | None = None
    max_model_len: int | None = None
    memory_fraction: float | None = None
    reason: str = ""


def _workspace(device: DeviceSpec, runtime: RuntimeProfile) -> int:
    return int(runtime.gemm_workspace_bytes.get(device.workspace_key)) if device.kind == "gpu" else 0


def memory_for(entry: ModelEntry, fmt: FormatSpec, req: Request, device: DeviceSpec, runtime: RuntimeProfile,
               split: Split) -> MemoryView:
    arch = entry.arch
    kv_el = kv_element_bytes(req.kv_format, fmt.id, runtime.id)
    if runtime.eager is not None:
        mb = memory_breakdown(arch, fmt=fmt, kv_format=req.kv_format, batch=req.batch, prompt=req.prompt,
                              new=req.new, runtime=runtime, workspace=_workspace(device, runtime))
        share = device_share(mb, gpus=split.gpus, device_kind=device.kind, memory_bytes=device.memory_bytes,
                             ram_bytes=device.ram_bytes, runtime=runtime)
        return MemoryView(mb.weights, mb.kv_cache, mb.activations, mb.peak, share.overhead, share.per_device,
                          share.available, share.offload, share.fits, share.verdict,
                          -(-mb.weights // split.gpus), dict(mb.terms))
    weights = sum(weight_terms(arch, fmt).values())
    em = engine_memory(arch, runtime, weights_bytes=weights, fmt=fmt.id, kv_element_bytes=kv_el,
                       memory_bytes=device.memory_bytes, split=split, batch=req.batch,
                       request_tokens=req.prompt + req.new, max_model_len=req.model_len, target_id=device.workspace_key,
                       memory_fraction=req.memory_fraction)
    kv_total = kv_cache_bytes(arch, req.prompt + req.new, req.batch, kv_el)
    state = recurrent_state_bytes(arch, req.batch, kv_el)       # hybrid layers: once per sequence
    fraction = (runtime.pool.memory_fraction.value if req.memory_fraction is None else req.memory_fraction)
    peak = weights + kv_total + state + em.activation_peak
    return MemoryView(weights, kv_total, em.activation_peak, peak, em.overhead,
                      em.per_device, em.budget, 0, em.fits, "fits" if em.fits else "does-not-fit",
                      em.weights_per_device, em.terms, kv_pool=max(0, em.kv_pool), concurrent=em.max_concurrent,
                      max_model_len=em.max_model_len, memory_fraction=fraction, reason=em.reason)


def _fits_with(entry, fmt, req, device, runtime, gpus: int) -> MemoryView | None:
    try:
        split = split_for(entry.arch, runtime, gpus, device.count)
    except UsageError:
        return None
    return memory_for(entry, fmt, req, device, runtime, split)


def alternatives(entry: ModelEntry, fmt: FormatSpec, req: Request, device: DeviceSpec, runtime: RuntimeProfile,
                 formats: dict[str, FormatSpec], targets: dict[str, HardwareTarget]) -> dict:
    """What would hold it: a smaller format the runtime serves (official first), a valid GPU degree on this
    target's node, named targets (this format)."""
    from advisor.estimate.formats import weight_terms as wt

    out: dict = {"format": None, "format_bytes": None, "format_origin": None, "gpus": None, "targets": [],
                 "cpu_targets": [], "int4_bytes": None}
    size = sum(wt(entry.arch, fmt).values())
    offered = servable_formats(entry, runtime, formats, device.kind)
    smaller = [formats[f] for f in offered if sum(wt(entry.arch, formats[f]).values()) < size]
    smaller.sort(key=lambda f: (entry.format_origin(f.id) != "official", -sum(wt(entry.arch, f).values())))
    for cand in smaller:
        view = _fits_with(entry, cand, req, device, runtime, req.gpus)
        if view is not None and view.fits:
            out["format"], out["format_bytes"] = cand.id, view.per_device
            out["format_origin"] = format_origin(entry, cand.id)
            break
    if out["format"] is None and "int4" in formats and fmt.id != "int4" and "int4" in runtime.formats:
        view = _fits_with(entry, formats["int4"], req, device, runtime, req.gpus)
        out["int4_bytes"] = view.per_device if view else None
    if device.kind == "gpu":
        for n in valid_degrees(entry.arch, runtime, device.count):
            if n <= req.gpus:
                continue
            view = _fits_with(entry, fmt, req, device, runtime, n)
            if view is not None and view.fits:
                out["gpus"] = n
                break
    for t in sorted(targets.values(), key=lambda t: (t.memory_gb * t.gpus, t.id)):
        if t.id == device.id or t.kind not in runtime.devices:
            continue
        other = devmod.from_target(t)
        view = _fits_with(entry, fmt, req, other, runtime, t.gpus if t.kind == "gpu" else 1)
        if view is not None and view.fits:
            out["targets"].append(t.id)
            if t.kind == "cpu":
                out["cpu_targets"].append(t.id)
    return out


def _memory_explanation(entry: ModelEntry, fmt: str, mv: MemoryView, device: DeviceSpec, gpus: int, alt: dict | None,
                        runtime: RuntimeProfile) -> str:
    where = "this machine" if device.id == "local" else device.id
    on = f"{gpus} x {where}" if gpus > 1 else where
    need = (f"{entry.id} at {fmt} needs {_gb(mv.per_device)} per device (weights {_gb(mv.weights_per_device)}, "
            f"KV cache {_gb(mv.kv_cache / max(gpus, 1))}, activations {_gb(mv.activations)}, "
            f"overhead {_gb(mv.overhead)})")
    if mv.kv_pool is not None and runtime.pool is not None and runtime.pool.kind != "context":
        offers = f"{_gb(mv.available)} to {runtime.id} (memory fraction {mv.memory_fraction:g})"
    else:
        offers = _gb(mv.available)
    if mv.verdict == "fits":
        return f"Fits: {need}; {on} offers {offers}."
    if mv.verdict == "fits-with-offload":
        return (f"Fits only with CPU offload: {need} but {on} offers {_gb(mv.available)}, so "
                f"{_gb(mv.offload)} of weights stay in host RAM and stream over PCIe every step (slow).")
    text = f"Does not fit: {need} but {on} offers {offers}" + (f": {mv.reason}." if mv.reason else ".")
    options = []
    if alt:
        if alt["format"]:
            label = "" if alt.get("format_origin") in (None, "official") else f", {alt['format_origin']}"
            options.append(f"at {alt['format']} ({_gb(alt['format_bytes'])} per device{label})")
        if alt["gpus"]:
            options.append(f"on {alt['gpus']} x {device.id} at {fmt} ({runtime.parallel.split} parallel)")
        if alt["targets"]:
            shown = [f"{t} (CPU)" if t in alt.get("cpu_targets", ()) else t for t in alt["targets"][:5]]
            options.append(f"at {fmt} on {', '.join(shown)}" + (" ..." if len(alt["targets"]) > 5 else ""))
        if not alt["format"]:
            text += f" No format {runtime.id} serves for it fits one {where} either"
            if alt.get("int4_bytes"):
                text += f"; even int4 would need {_gb(alt['int4_bytes'])} per device"
            text += "."
    if options:
        text += " It would fit " + "; or ".join(options) + "."
    elif alt is not None:
        text += f" Nothing tried holds it (formats, valid GPU counts up to {device.count}, named targets)."
    return text


# --- the estimate -------------------------------------------------------------------------------------------

def _rates(device: DeviceSpec, fmt: FormatSpec, runtime: RuntimeProfile, rates: MeasuredRates | None,
           measurement: LatencyMeasurement | None, notes: list[str]) -> Rates:
    if rates is not None:
        return calibrated_rates(rates, fmt, runtime)
    try:
        return spec_rates(device, fmt, runtime)
    except UsageError:
        if measurement is None:
            raise
        # timed directly: the roofline terms are only context, and none can be had here
        notes.append(f"no datasheet peaks for '{device.name}': roofline terms left at zero")
        return Rates(tflops=0.0, bandwidth_gbs=0.0, step_overhead_ms=0.0, per_layer_ms=0.0,
                     prefill_per_layer_ms=0.0, basis="spec", compute_known=False)


def estimate_entry(entry: ModelEntry, *, device: DeviceSpec, fmt: FormatSpec, runtime: RuntimeProfile,
                   req: Request, formats: dict[str, FormatSpec], targets: dict[str, HardwareTarget],
                   rates: MeasuredRates | None = None, measurement: LatencyMeasurement | None = None,
                   notes: list[str] | None = None, runtimes: dict[str, RuntimeProfile] | None = None) -> Estimate:
    """The pure core: no catalog loading, no probing."""
    validate_request(entry, req, runtime, runtimes=runtimes, device_kind=device.kind)
    notes = list(notes or []) + list(device.notes)
    notes.append(f"runtime: {runtime.id} ({runtime.version})")
    if req.gpus > device.count:
        why = "" if device.node_known or device.id == "local" else \
            " (catalog/hardware.yaml gives it no gpus_per_node, so one node is taken to hold one)"
        hint = (_degree_hint(entry, runtime, device.count) if device.node_known or device.id == "local" else
                "give the target a node (gpus_per_node, interconnect) in a --catalog hardware file, as "
                "benchmarks/data/hardware-nodes.yaml does")
        raise UsageError(f"--gpus {req.gpus} exceeds the {device.count} GPU(s) of {device.id}{why}", hint=hint)
    split = split_for(entry.arch, runtime, req.gpus, device.count)
    origin = format_origin(entry, fmt.id)
    if origin == COMMUNITY_LABEL:
        notes.append(f"{fmt.id} is not published by {entry.id}'s developer: a {COMMUNITY_LABEL} checkpoint "
                     "is assumed (quality and size as for the format, not for a specific upload)")
    if fmt.compute in ("w8a8", "w4a4") and device.kind == "gpu" and compute_dtype(fmt, device.peak_tflops) == "fp16":
        notes.append(f"{device.name} has no {'fp8' if fmt.compute == 'w8a8' else 'fp4'} tensor cores listed: "
                     f"{fmt.id} runs weight-only here (16-bit matmuls)")
    mv = memory_for(entry, fmt, req, device, runtime, split)
    alt = alternatives(entry, fmt, req, device, runtime, formats, targets) if mv.verdict != "fits" else None
    memory = MemoryEstimate(
        weights_bytes=mv.weights, kv_cache_bytes=mv.kv_cache, activations_bytes=mv.activations, peak_bytes=mv.peak,
        overhead_bytes=mv.overhead, per_device_bytes=mv.per_device, available_bytes=mv.available,
        offload_bytes=mv.offload, fits=mv.fits, verdict=mv.verdict, basis="spec", terms=dict(mv.terms),
        fits_with_format=alt["format"] if alt else None, fits_with_gpus=alt["gpus"] if alt else None,
        fits_on_targets=alt["targets"] if alt else [],
        explanation=_memory_explanation(entry, fmt.id, mv, device, req.gpus, alt, runtime),
        weights_bytes_per_device=mv.weights_per_device, kv_pool_bytes=mv.kv_pool,
        max_concurrent_sequences=mv.concurrent, max_model_len=mv.max_model_len, memory_fraction=mv.memory_fraction)
    if mv.kv_pool is not None and runtime.pool is not None and runtime.pool.kind != "context":
        notes.append(f"{runtime.id}'s KV pool ({_gb(mv.kv_pool)} per device) holds {mv.concurrent} concurrent "
                     f"sequences of max_model_len {mv.max_model_len} tokens")
        if req.max_model_len is None:
            notes.append(f"max_model_len is taken as prompt + new tokens ({req.model_len}); {runtime.id} would "
                         f"default to the model's context ({entry.context or 'unknown'}): pass --max-model-len")
    measurement = measurement_for_runtime(measurement, runtime, entry.id, notes)
    used = _rates(device, fmt, runtime, rates, measurement, notes)
    if measurement is not None and (measurement.batch != req.batch or measurement.prompt_tokens != req.prompt):
        notes.append(f"the measurement was taken at batch {measurement.batch}, prompt {measurement.prompt_tokens}")
    cap = None
    if runtime.pool is not None:
        cap = float(max_num_seqs(runtime, device.workspace_key))
        if mv.concurrent is not None and runtime.pool.kind != "context":
            cap = float(max(1, min(cap, mv.concurrent * max(1, req.model_len // (req.prompt + req.new)))))
    latency = latency_estimate(entry.arch, fmt=fmt, weights_bytes=mv.weights,
                               kv_element_bytes=kv_element_bytes(req.kv_format, fmt.id, runtime.id),
                               batch=req.batch, prompt=req.prompt, new=req.new, runtime=runtime, rates=used,
                               offload_bytes=mv.offload, measurement=measurement, split=split, link=device.link,
                               mode=req.mode, request_rate=req.request_rate, scheduler_steps=req.scheduler_steps,
                               max_concurrency=cap)
    if runtime.id == "transformers" and req.kv_format == "fp8":
        notes.append("an 8-bit KV cache in transformers needs a quantized cache (cache_implementation='quantized')")
    if kv_element_bytes(req.kv_format, fmt.id, runtime.id) > KV_FORMAT_BYTES[req.kv_format]:
        notes.append("transformers keeps the KV cache in the model dtype: fp32 (4 bytes) here, not fp16")
    retained = mv.terms.get("retained_outputs", 0)
    if retained:
        notes.append(f"peak includes {_gb(retained)} of a previous forward's logits and KV cache still referenced "
                     "while the next runs (`out = model(ids)` in a loop, as measured on the H100 reference data)")
    if mv.verdict == "does-not-fit":
        latency = latency.model_copy(update={"explanation": "If it were held (it does not fit here): "
                                             + latency.explanation})
    if req.gpus > 1:
        link = device.link_kind or "an unknown interconnect (PCIe assumed)"
        notes.append(f"{split.kind} parallel over {req.gpus} GPUs on {link}: "
                     + ("two all-reduces per layer per step are timed" if split.kind == "tensor"
                        else "layers run one device after another (a token visits every device)"))
    if latency.scheduling != "static" and req.batch > 1:
        notes.append(f"{req.batch} sequences decode together under continuous batching: TTFT and time per output "
                     "token are per stream, tokens/s is the total")
    return Estimate(model=entry.id, target=device.id, format=fmt.id, kv_format=req.kv_format, runtime=runtime.id,
                    runtime_version=runtime.version, format_origin=origin, batch=req.batch, prompt_tokens=req.prompt,
                    new_tokens=req.new, gpus=req.gpus, parallel=split.kind, memory=memory, latency=latency,
                    notes=notes)


def _degree_hint(entry: ModelEntry, runtime: RuntimeProfile, count: int) -> str:
    ok = valid_degrees(entry.arch, runtime, count)
    return f"valid --gpus for {entry.id} on {runtime.id} here: {', '.join(map(str, ok))}"


def _local_device(profile, targets: dict[str, HardwareTarget], runtime: RuntimeProfile) -> DeviceSpec:
    if profile is None:
        try:
            from advisor.hardware.profile import detect_profile
        except ImportError:
            raise UsageError("local hardware detection is not available in this install",
                             hint="pass --target ID (see 'advisor profile --help')") from None
        profile = detect_profile()
    return devmod.from_profile(profile, targets, runtime)


# The runtime whose latency each probe method times: the torch probes run an eager PyTorch forward.
MEASURED_RUNTIME = {"architecture-probe": "transformers", "real-model": "transformers",
                    "llama.cpp-engine": "llama.cpp"}


def measurement_for_runtime(measurement: LatencyMeasurement | None, runtime: RuntimeProfile, model_id: str,
                            notes: list[str]) -> LatencyMeasurement | None:
    """The measurement if it timed this runtime; otherwise None and a note (its probe rates still calibrate)."""
    if measurement is None:
        return None
    timed = MEASURED_RUNTIME.get(measurement.method, "transformers")
    if timed == runtime.id:
        return measurement
    hint = f" ('advisor probe-engine {model_id}' times llama.cpp itself)" if runtime.id == "llama.cpp" else ""
    notes.append(f"the {measurement.method} timed {timed}, not {runtime.id}: figures are calibrated or spec, "
                 f"not measured{hint}")
    return None


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
        notes.append(f"probe failed ({one_line(exc, 160)}): spec figures")
        return None, None
    if cal.skipped:
        notes.append(f"probe skipped: {cal.skipped}")
    if cal.from_cache and (cal.rates or cal.measurement):
        notes.append("probe results from the local cache")
    notes.extend(getattr(cal, "notes", None) or [])
    return cal.rates, cal.measurement


def _engine_measurement(entry: ModelEntry, fmt: str, req: Request, notes: list[str]) -> LatencyMeasurement | None:
    """llama.cpp timed on this machine by `advisor probe-engine` for this request, from the probe cache."""
    try:
        from advisor.probe import llamacpp_engine as le
    except ImportError:
        return None
    hit, note = le.lookup(entry, fmt, prompt=req.prompt, batch=req.batch)
    if note:
        notes.append(note)
    return hit


def estimate(model: str | ModelEntry, *, target: str = "local", format: str = "bf16", kv_format: str = "fp16",
             batch: int = 1, prompt_tokens: int = DEFAULT_PROMPT_TOKENS, new_tokens: int = DEFAULT_NEW_TOKENS,
             runtime: str | None = None, gpus: int = 1, catalog_paths: tuple[str, ...] | list[str] = (),
             probe: bool = True, rates: MeasuredRates | None = None,
             measurement: LatencyMeasurement | None = None, profile=None, max_model_len: int | None = None,
             gpu_memory_utilization: float | None = None) -> Estimate:
    """Memory and latency of `model` on `target` ("local" or a hardware.yaml id) with a serving runtime.

    runtime None: vLLM for a named GPU target, llama.cpp for a named CPU target, transformers locally
    (what the probes measure). Basis: "measured" with a measurement, "calibrated" with probe rates,
    otherwise "spec".
    """
    from advisor.catalog.loader import get_catalog

    catalog = get_catalog(tuple(catalog_paths))
    entry = model if isinstance(model, ModelEntry) else catalog.model(model)
    local = target == "local"
    hw = None if local else catalog.target(target)
    if runtime is None:
        kind = hw.kind if hw is not None else ("gpu" if profile is not None and profile.gpus else None)
        if local:
            runtime = default_runtime_id(catalog.runtimes, local=True, device_kind=kind or "gpu")
        else:
            runtime = default_runtime_id(catalog.runtimes, local=False, device_kind=kind)
    rt = resolve_runtime(catalog.runtimes, runtime)
    req = Request(fmt=format, kv_format=kv_format, batch=batch, prompt=prompt_tokens, new=new_tokens, gpus=gpus,
                  max_model_len=max_model_len, memory_fraction=gpu_memory_utilization)
    validate_request(entry, req, rt, catalog.formats, runtimes=catalog.runtimes,
                     device_kind=hw.kind if hw is not None else None)
    fmt = catalog.format(format)
    notes: list[str] = []
    if local:
        device = _local_device(profile, catalog.targets, rt)
        if probe and rates is None and measurement is None:
            rates, measurement = _calibrate(entry, format, req, notes)
            if rt.id == "llama.cpp":
                measurement = _engine_measurement(entry, format, req, notes) or measurement
    else:
        device = devmod.from_target(hw)
    if not local and (rates is not None or measurement is not None):
        notes.append(f"probe figures were given for the named target {target}: they are used as-is")
    return estimate_entry(entry, device=device, fmt=fmt, runtime=rt, req=req, formats=catalog.formats,
                          targets=catalog.targets, rates=rates, measurement=measurement, notes=notes,
                          runtimes=catalog.runtimes)

"""Step 2 of recommend: one candidate per model x format on a target, its figures and its rule results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advisor.catalog.schema import ModelEntry
from advisor.errors import UsageError
from advisor.recommend.quality import quality_score
from advisor.recommend.resolve import Plan, TargetSpec
from advisor.recommend.schema import Candidate
from advisor.rules.table import Figures, RuleResult, evaluate, failures


def figures_of(c: Candidate, memory_available_bytes: float | None) -> Figures:
    """With a load, TTFT and TPOT are the p95s at that load (advisor/recommend/capacity.py)."""
    return Figures(format=c.format, memory_reserved_fraction=c.memory_reserved_fraction, memory_verdict=c.verdict,
                   memory_bytes=c.memory_bytes,
                   memory_available_bytes=memory_available_bytes, memory_basis=c.memory_basis or "spec",
                   e2e_p95_ms=c.e2e_p95_ms, ttft_ms=c.ttft_p95_ms if c.ttft_p95_ms is not None else c.ttft_ms,
                   tokens_per_s=c.tokens_per_s, latency_basis=c.latency_basis or "spec", quality=c.quality_proxy,
                   params_total=c.params_total, license=c.license,
                   tpot_ms=c.tpot_p95_ms if c.tpot_p95_ms is not None else c.decode_ms_per_token,
                   rps=c.rps_sustained, cost_per_hour_usd=c.cost_per_hour_usd, cost_basis=c.cost_basis or "catalog")


def judged(c: Candidate, plan: Plan, memory_available_bytes: float | None) -> Candidate:
    """The candidate with passed/reasons/binding from the rule table."""
    fails = failures(evaluate(figures_of(c, memory_available_bytes), plan.rules, plan.catalog.licenses))
    return c.model_copy(update={"passed": not fails, "reasons": [r.message for r in fails],
                                "binding": [r.rule for r in fails]})


def rule_failures(plan: Plan, available: dict[str, float]) -> Callable[[Candidate], list[RuleResult]]:
    """For the probing step: the failures of a candidate whose latency was re-measured."""
    def fn(c: Candidate) -> list[RuleResult]:
        return failures(evaluate(figures_of(c, available.get(c.key)), plan.rules, plan.catalog.licenses))
    return fn


def _origin(entry: ModelEntry, fmt: str) -> str:
    from advisor.estimate.formats import format_origin

    return format_origin(entry, fmt)


def _base(entry: ModelEntry, fmt: str, spec: TargetSpec, plan: Plan) -> dict:
    q = quality_score(entry, plan.task, fmt, plan.catalog)
    return dict(key=f"{entry.id}:{fmt}@{spec.id}", model=entry.id, name=entry.name,
                tier=plan.catalog.tier_of(entry.params_total), format=fmt, target=spec.id, runtime=spec.runtime.id,
                format_origin=_origin(entry, fmt),
                params_total=entry.params_total, params_active=entry.params_active, license=entry.license,
                quality_proxy=q.score, quality_proxy_upper=q.upper, quality_band_points=q.band_points,
                quality_base=q.base_score, quality_format_delta=q.format_delta, quality_benchmarks=q.used,
                quality_missing=q.missing, quality_coverage=q.coverage, quality_variant=q.variant,
                quality_reason=q.reason, passed=False)


def from_estimate(entry: ModelEntry, fmt: str, spec: TargetSpec, est, plan: Plan) -> Candidate:
    mem, lat = est.memory, est.latency
    cost = None
    if spec.price is not None and lat.tokens_per_s > 0:
        cost = spec.price * est.gpus / (lat.tokens_per_s * 3600.0) * 1e6
    energy = lat.joules_per_token * 1e6 / 3.6e6 if lat.joules_per_token is not None else None
    c = Candidate(**_base(entry, fmt, spec, plan), verdict=mem.verdict, memory_bytes=mem.per_device_bytes,
                  memory_limit_bytes=None,   # set from the rule table's headroom below
                  memory_basis=mem.basis, ttft_ms=lat.ttft_ms, decode_ms_per_token=lat.decode_ms_per_token,
                  e2e_p50_ms=lat.e2e_ms, e2e_p95_ms=lat.e2e_p95_ms, tokens_per_s=lat.tokens_per_s,
                  latency_basis=lat.source, latency_bound=lat.bound, cost_per_mtok_usd=cost,
                  energy_kwh_per_mtok=energy)
    c = c.model_copy(update={"memory_reserved_fraction": _reserved(mem)})
    c = c.model_copy(update={"memory_limit_bytes": int(mem.available_bytes * (1.0 - plan.rules.headroom_for(
        figures_of(c, mem.available_bytes))))})
    return judged(c, plan, mem.available_bytes)


def _reserved(mem) -> float | None:
    """1 - the engine's memory fraction when it preallocates a pool (vLLM, SGLang, ...), else None."""
    if mem.kv_pool_bytes is None or not mem.memory_fraction:
        return None
    return 1.0 - mem.memory_fraction


def not_estimated(entry: ModelEntry, fmt: str, spec: TargetSpec, plan: Plan, reason: str) -> Candidate:
    """A candidate the estimator refused (e.g. a request longer than the context): no figures, one reason."""
    return Candidate(**{**_base(entry, fmt, spec, plan), "reasons": [reason], "binding": ["request"]})


def _engine_measurement(entry: ModelEntry, fmt: str, shape, notes: list[str]):
    """llama.cpp's own timing of this candidate on this machine (`advisor probe-engine`, cached), if any."""
    try:
        from advisor.probe import llamacpp_engine as le
    except ImportError:
        return None
    hit, note = le.lookup(entry, fmt, prompt=shape.prompt_tokens, batch=shape.batch)
    if hit is not None and note and note not in notes:
        notes.append(note)
    return hit


def estimate_candidates(plan: Plan, spec: TargetSpec, probes, progress) -> tuple[list[Candidate], dict[str, Any]]:
    """Every model x offered format on one target: on one device, or on all of its GPUs when one is too small."""
    from advisor.estimate.engine import estimate

    cands: list[Candidate] = []
    estimates: dict[str, Any] = {}
    from advisor.estimate.formats import servable_formats

    # official formats the runtime serves, plus its usual community ones (labelled as such)
    todo = [(m, f) for m in plan.models for f in servable_formats(m, spec.runtime, plan.catalog.formats, spec.kind)]
    for i, (entry, fmt) in enumerate(todo):
        if progress:
            progress(f"estimating {entry.id} {fmt} on {spec.id}", i, len(todo))
        est = None
        error = None
        measurement = probes.measurement_for(entry, fmt, plan.shape)
        if spec.id == "local" and spec.runtime.id == "llama.cpp":
            measurement = _engine_measurement(entry, fmt, plan.shape, probes.notes) or measurement
        for gpus in sorted({1, spec.gpu_count}):
            try:
                est = estimate(entry, target=spec.id, format=fmt, batch=plan.shape.batch,
                               prompt_tokens=plan.shape.prompt_tokens, new_tokens=plan.shape.new_tokens,
                               runtime=spec.runtime.id, gpus=gpus, catalog_paths=tuple(plan.catalog_paths),
                               probe=False, rates=probes.rates, measurement=measurement)
            except UsageError as exc:
                error = error or exc
                break
            if est.memory.verdict == "fits":
                break
        if est is not None and measurement is not None and probes.rates is not None:
            # a cached measurement is checked against the calibration as a fresh one is
            calibrated = estimate(entry, target=spec.id, format=fmt, batch=plan.shape.batch,
                                  prompt_tokens=plan.shape.prompt_tokens, new_tokens=plan.shape.new_tokens,
                                  runtime=spec.runtime.id, gpus=est.gpus, catalog_paths=tuple(plan.catalog_paths),
                                  probe=False, rates=probes.rates)
            probes.compare(f"{entry.id} {fmt}", calibrated.latency.e2e_p95_ms, est.latency.e2e_p95_ms)
        if est is None:
            cands.append(not_estimated(entry, fmt, spec, plan, error.message if error else "not estimated"))
            continue
        estimates[f"{entry.id}:{fmt}"] = est
        cands.append(from_estimate(entry, fmt, spec, est, plan))
    return cands, estimates

"""recommend(): every catalog model and format, on every target, filtered, ranked and explained.

Orchestration only: estimates come from advisor.estimate, quality from the proxy, the frontier
from pareto; this module turns them into candidates, picks and sentences.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from advisor import __version__
from advisor.catalog.loader import Catalog, get_catalog
from advisor.catalog.schema import ModelEntry
from advisor.errors import UsageError
from advisor.recommend import pareto
from advisor.recommend.constraints import failures, gb, memory_limit, secs
from advisor.recommend.quality import quality_score
from advisor.recommend.schema import (
    Candidate, Constraints, GenerationAdvice, Recommendation, RequestShape, TargetRecommendation,
)

# The large tier is preferred only when it beats the small pick by at least this many proxy points.
MIN_QUALITY_GAIN = 2.0


def _constraints(constraints: Constraints | dict | None, overrides: dict[str, Any]) -> Constraints:
    base = constraints.model_dump() if isinstance(constraints, Constraints) else dict(constraints or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    from pydantic import ValidationError

    try:
        return Constraints.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"constraint '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}") from None


def _candidate(entry: ModelEntry, fmt: str, target: str, est, cat: Catalog, task, k: Constraints,
               gpu_hour_price: float | None) -> dict:
    q = quality_score(entry, task, fmt, cat)
    mem, lat = est.memory, est.latency
    devices = est.gpus
    cost = None
    if gpu_hour_price is not None and lat.tokens_per_s > 0:
        cost = gpu_hour_price * devices / (lat.tokens_per_s * 3600.0) * 1e6
    energy = None
    if lat.joules_per_token is not None:
        energy = lat.joules_per_token * 1e6 / 3.6e6
    return dict(
        key=f"{entry.id}:{fmt}@{target}", model=entry.id, name=entry.name,
        tier=cat.tier_of(entry.params_total), format=fmt, target=target, runtime=est.runtime,
        format_origin=est.format_origin,
        params_total=entry.params_total, params_active=entry.params_active, license=entry.license,
        verdict=mem.verdict, memory_bytes=mem.per_device_bytes,
        memory_limit_bytes=memory_limit(mem.available_bytes, k.memory_headroom), memory_basis=mem.basis,
        ttft_ms=lat.ttft_ms, decode_ms_per_token=lat.decode_ms_per_token, e2e_p50_ms=lat.e2e_ms,
        e2e_p95_ms=lat.e2e_p95_ms, tokens_per_s=lat.tokens_per_s, latency_basis=lat.source,
        latency_bound=lat.bound, quality=q.score, quality_base=q.base_score, quality_format_delta=q.format_delta,
        quality_benchmarks=q.used, quality_coverage=q.coverage, cost_per_mtok_usd=cost, energy_kwh_per_mtok=energy,
    )


def _rank_key(c: Candidate) -> tuple:
    """Best first: higher quality proxy, then lower p95 latency, then less memory, then id (stable)."""
    q = c.quality if c.quality is not None else float("-inf")
    return (-q, c.e2e_p95_ms, c.memory_bytes, c.key)


def _best(cands: list[Candidate]) -> Candidate | None:
    return min(cands, key=_rank_key) if cands else None


def _verdict(target_name: str, pick: Candidate | None, small: Candidate | None, large: Candidate | None,
             best_large_overall: Candidate | None, budget_ms: float) -> str:
    if pick is None:
        return f"No model meets the constraints on {target_name}; see the closest misses and what to relax."
    lat = f"p95 latency is {secs(pick.e2e_p95_ms)} against a {secs(budget_ms)} budget"
    mem = f"it needs {gb(pick.memory_bytes)} of the {gb(pick.memory_limit_bytes)} it may use"
    if pick is large:
        if small is not None and pick.quality is not None and small.quality is not None:
            return (f"Use {pick.model} ({pick.format}): the best large model meets every constraint on {target_name}; "
                    f"its quality proxy is {pick.quality - small.quality:.1f} points above the best small model, "
                    f"{small.model}; {lat}, and {mem}.")
        return f"Use {pick.model} ({pick.format}): it meets every constraint on {target_name}; {lat}, and {mem}."
    # The small model is the pick: say why the large tier lost.
    if large is not None:
        gain = (large.quality or 0) - (pick.quality or 0)
        return (f"Use {pick.model} ({pick.format}): the best passing large model, {large.model}, gains only "
                f"{gain:.1f} quality-proxy points for {large.e2e_p95_ms / max(pick.e2e_p95_ms, 1e-9):.1f}x the latency "
                f"and {large.memory_bytes / max(pick.memory_bytes, 1):.1f}x the memory; {lat}.")
    if best_large_overall is not None and best_large_overall.reasons:
        drop = ""
        if best_large_overall.quality is not None and pick.quality is not None:
            drop = f"; the quality proxy drops {best_large_overall.quality - pick.quality:.1f} points"
        return (f"Use {pick.model} ({pick.format}): the best large model, {best_large_overall.model}, "
                f"{best_large_overall.reasons[0]}{drop}; {lat}.")
    return f"Use {pick.model} ({pick.format}): no large model is in the catalog for this task; {lat}."


def _relax(misses: list[Candidate], k: Constraints) -> list[str]:
    """What to relax, with the smallest change that would let the closest miss pass."""
    tips: list[str] = []
    if not misses:
        return tips
    c = misses[0]
    for key in c.binding:
        if key == "max_latency_ms":
            tips.append(f"raise --max-latency-ms to at least {c.e2e_p95_ms:.0f} ({c.model} {c.format})")
        elif key == "max_ttft_ms":
            tips.append(f"raise --max-ttft-ms to at least {c.ttft_ms:.0f}")
        elif key == "min_tokens_per_s":
            tips.append(f"lower --min-tokens-per-s to {c.tokens_per_s:.1f}")
        elif key == "memory":
            tips.append(f"use a device with more than {gb(c.memory_bytes / (1 - k.memory_headroom))}, "
                        "a smaller format, or lower --memory-headroom")
        elif key == "min_quality" and c.quality is not None:
            tips.append(f"lower --min-quality to {c.quality:.1f}")
        elif key == "license":
            tips.append(f"allow licence {c.license}")
        elif key == "formats":
            tips.append(f"allow format {c.format}")
        elif key == "max_params":
            tips.append(f"raise --max-params to {c.params_total / 1e9:.1f}e9")
    return tips


def _what_it_would_take(best_large: Candidate | None, est) -> list[str]:
    if best_large is None or est is None:
        return []
    mem = est.memory
    tips = []
    if mem.fits_with_format and mem.fits_with_format != best_large.format:
        tips.append(f"{best_large.model} fits in {mem.fits_with_format}")
    if mem.fits_with_gpus:
        tips.append(f"{best_large.model} ({best_large.format}) fits on {mem.fits_with_gpus} such GPUs (tensor parallel)")
    if mem.fits_on_targets:
        tips.append(f"{best_large.model} ({best_large.format}) fits on: {', '.join(mem.fits_on_targets[:5])}")
    for r in best_large.reasons:
        if "latency" in r or "token" in r:
            tips.append(f"{best_large.model}: {r}")
    return tips


def recommend(task: str = "summarization", *, targets: list[str] | tuple[str, ...] = ("local",),
              prompt_tokens: int | None = None, new_tokens: int | None = None, batch: int | None = None,
              constraints: Constraints | dict | None = None, catalog_paths: list[str] | tuple[str, ...] = (),
              runtime: str | None = None, probe: bool = True, budget_s: float | None = None,
              refresh: bool = False, progress: Callable[[str, int, int], None] | None = None,
              user_models_only: bool = False, **constraint_kwargs) -> Recommendation:
    """Recommend the small or large model for `task` on each target. Same figures as the CLI.

    runtime None: each target's default (vLLM on named GPU targets, llama.cpp on CPU targets, transformers
    on this machine, where the probes measure it).
    """
    from advisor.estimate.engine import default_runtime_id, estimate, resolve_runtime
    from advisor.estimate.formats import servable_formats
    from advisor.recommend.probing import LocalProbes

    cat = get_catalog(catalog_paths)
    profile = cat.task(task)
    k = _constraints(constraints, constraint_kwargs)
    for f in k.formats or ():
        if f not in cat.formats:
            from advisor.errors import unknown_id

            raise unknown_id("format", f, list(cat.formats))
    shape = RequestShape(prompt_tokens=prompt_tokens or profile.prompt_tokens,
                         new_tokens=new_tokens or profile.new_tokens, batch=batch or profile.batch)
    budget_ms = k.max_latency_ms or profile.latency_budget_ms
    if not targets:
        raise UsageError("give at least one target")
    notes: list[str] = []
    if k.max_latency_ms is None:
        notes.append(f"latency budget: the {task} profile's default, {secs(budget_ms)} end-to-end p95")
    notes.append(f"quality is a proxy: {profile.quality_proxy.description}")

    all_candidates: list[Candidate] = []
    results: list[TargetRecommendation] = []
    hardware: dict | None = None
    probes_used: list[dict] = []
    models = sorted(cat.models.values(), key=lambda m: (m.params_total, m.id))
    if user_models_only:
        mine = set(cat.user_model_ids())
        if not mine:
            raise UsageError("--user-models-only needs models from --catalog or ADVISOR_CATALOG_PATH")
        models = [m for m in models if m.id in mine]
    for target in targets:
        local = target == "local"
        probes = LocalProbes(enabled=probe and local, budget_s=budget_s, refresh=refresh, progress=progress,
                             catalog=cat, catalog_paths=catalog_paths)
        if local:
            from advisor.hardware.profile import detect_profile

            prof = detect_profile(include_torch=False)  # torch backends cost seconds to import; probes say more
            hardware = prof.model_dump()
            price = k.gpu_hour_cost
            name, fingerprint = "this machine", prof.fingerprint
            summary = (", ".join(f"{g.name} ({(g.memory_total_bytes or 0) / 2**30:.0f} GiB)" for g in prof.gpus)
                       or f"CPU only: {prof.cpu.model_name or 'unknown CPU'}, "
                          f"{(prof.cpu.ram_total_bytes or 0) / 2**30:.0f} GiB RAM")
            gpu_count = max(prof.gpu_count, 1)
            kind = "gpu" if prof.gpus else "cpu"
        else:
            hw = cat.target(target)
            price = k.gpu_hour_cost if k.gpu_hour_cost is not None else hw.price_per_hour_usd
            name, fingerprint = hw.name, None
            summary = f"{hw.gpus} x {hw.name} ({hw.memory_gb:g} GB)"
            gpu_count = hw.gpus if hw.kind == "gpu" else 1
            kind = hw.kind
        rt = resolve_runtime(cat.runtimes, runtime or default_runtime_id(cat.runtimes, local=local, device_kind=kind))
        note = f"{target}: figures model the {rt.id} runtime ({rt.version})"
        if note not in notes:
            notes.append(note)
        probes.prepare()
        notes.extend(n for n in probes.notes if n not in notes)
        cands: list[Candidate] = []
        estimates: dict[str, Any] = {}
        # official formats the runtime serves, plus its usual community ones (labelled as such)
        todo = [(m, f) for m in models for f in servable_formats(m, rt, cat.formats, kind)]
        for i, (entry, fmt) in enumerate(todo):
            if progress:
                progress(f"estimating {entry.id} {fmt} on {target}", i, len(todo))
            est = None
            for gpus in sorted({1, gpu_count}):
                try:
                    est = estimate(entry.id, target=target, format=fmt, batch=shape.batch,
                                   prompt_tokens=shape.prompt_tokens, new_tokens=shape.new_tokens, runtime=rt.id,
                                   gpus=gpus, catalog_paths=catalog_paths, probe=False,
                                   rates=probes.rates, measurement=probes.measurement_for(entry, fmt, shape))
                except UsageError as exc:
                    # e.g. the request is longer than this model's context: a reason, not a crash
                    if est is None:
                        est = exc
                    break
                if est.memory.verdict == "fits":
                    break
            if isinstance(est, UsageError):
                cands.append(Candidate(
                    key=f"{entry.id}:{fmt}@{target}", model=entry.id, name=entry.name,
                    tier=cat.tier_of(entry.params_total), format=fmt, target=target, runtime=rt.id,
                    params_total=entry.params_total,
                    params_active=entry.params_active, license=entry.license, verdict="does-not-fit", memory_bytes=0,
                    memory_limit_bytes=0, memory_basis="spec", ttft_ms=0, decode_ms_per_token=0, e2e_p50_ms=0,
                    e2e_p95_ms=0, tokens_per_s=0, latency_basis="spec", latency_bound="compute", quality=None,
                    passed=False, reasons=[est.message], binding=["request"]))
                continue
            estimates[f"{entry.id}:{fmt}"] = est
            fig = _candidate(entry, fmt, target, est, cat, profile, k, price)
            fails = failures(fig, k, latency_budget_ms=budget_ms)
            cands.append(Candidate(**fig, passed=not fails, reasons=[f[1] for f in fails],
                                   binding=[f[0] for f in fails]))
        cands = probes.refine(cands, estimates, lambda c: failures(c.model_dump(), k, latency_budget_ms=budget_ms),
                              budget_ms)
        probes_used.extend(probes.used())
        notes.extend(n for n in probes.notes if n not in notes)  # refine() adds why a probe did not run

        passed = [c for c in cands if c.passed]
        front = pareto.frontier(passed)
        front_keys = {c.key for c in front}
        cands = [c.model_copy(update={"on_frontier": c.key in front_keys}) for c in cands]
        passed = [c for c in cands if c.passed]
        small = _best([c for c in passed if c.tier == "small"])
        large = _best([c for c in passed if c.tier == "large"])
        if large is not None and (small is None or (large.quality or float("-inf")) >= (small.quality or float("-inf")) + MIN_QUALITY_GAIN):
            pick = large
        else:
            pick = small or large
        large_all = [c for c in cands if c.tier == "large"]
        best_large_overall = None
        if large_all:
            top_model = min(large_all, key=lambda c: (-(c.quality if c.quality is not None else float("-inf")),
                                                      c.params_total, c.key)).model
            same = [c for c in large_all if c.model == top_model]
            best_large_overall = min(same, key=lambda c: (len(c.reasons), _rank_key(c)))
        closest = []
        if pick is None:
            misses = [c for c in cands if not c.passed and "request" not in c.binding]
            closest = sorted(misses, key=lambda c: (len(c.binding), sum(
                f[2] for f in failures(c.model_dump(), k, latency_budget_ms=budget_ms)), c.key))[:5]
        est_large = estimates.get(f"{best_large_overall.model}:{best_large_overall.format}") if best_large_overall else None
        results.append(TargetRecommendation(
            target=target, target_name=name, device_summary=summary, hardware_fingerprint=fingerprint,
            runtime=rt.id, runtime_version=rt.version,
            status="ok" if pick else "no-candidate", pick=pick, small=small, large=large,
            frontier=sorted(front_keys),
            verdict=_verdict(name, pick, small, large, best_large_overall, budget_ms),
            closest_misses=closest, to_relax=_relax(closest, k),
            what_it_would_take=_what_it_would_take(best_large_overall if best_large_overall is not pick else None, est_large),
        ))
        all_candidates.extend(cands)

    gen = profile.generation
    return Recommendation(
        report_id=uuid.uuid4().hex, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        advisor_version=__version__, task=task, task_description=profile.description, shape=shape,
        constraints=k, latency_budget_ms=budget_ms, quality_proxy=profile.quality_proxy.description, catalog_version=cat.version(),
        targets=results, candidates=all_candidates,
        generation=GenerationAdvice(temperature=gen.temperature, top_p=gen.top_p,
                                    max_new_tokens=min(gen.max_new_tokens, shape.new_tokens) if new_tokens else gen.max_new_tokens,
                                    rationale=gen.rationale),
        notes=notes, hardware=hardware, probes=probes_used,
    )

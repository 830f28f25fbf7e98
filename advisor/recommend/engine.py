"""recommend(): every catalog model and format, on every target, filtered, ranked and explained.

A thin orchestrator over four steps: resolve (what is asked), build (candidates and their rule
results), select (rank and pick) and explain (the sentences). Estimates come from advisor.estimate,
the rules from advisor.rules, quality from the proxy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone

from advisor import __version__
from advisor.recommend import explain, select
from advisor.recommend.build import estimate_candidates, rule_failures
from advisor.recommend.resolve import Plan, describe_target, resolve
from advisor.recommend.schema import Constraints, GenerationAdvice, LoadPlan, Recommendation, TargetRecommendation
from advisor.rules.table import evaluate, failures


def _min_quality_gain(plan: Plan) -> float:
    return max((t.min_quality_gain for t in plan.catalog.tiers.values()), default=0.0)


def _violations(plan: Plan, cands, estimates) -> dict[str, float]:
    from advisor.recommend.build import figures_of

    out = {}
    for c in cands:
        est = estimates.get(f"{c.model}:{c.format}")
        avail = est.memory.available_bytes if est is not None else None
        out[c.key] = sum(r.violation for r in failures(evaluate(figures_of(c, avail), plan.rules,
                                                                plan.catalog.licenses)))
    return out


MAX_PICK_MEASUREMENTS = 3


def _measure_the_pick(plan: Plan, sel, cands, estimates, probes, failfn):
    """On this machine a pick is measured before it is reported as passing: when a measurement rules it
    out, the next pick is measured, up to MAX_PICK_MEASUREMENTS times. Calibrated figures that a
    measurement contradicts by more than 30% are marked unreliable, and the screen says so."""
    warnings: list[str] = []
    for _ in range(MAX_PICK_MEASUREMENTS):
        pick = sel.pick
        if pick is None or pick.latency_basis == "measured":
            break
        updated = probes.measure(pick, estimates, failfn)
        if updated is None:
            warnings.append(f"the pick's latency ({pick.model} {pick.format}) is calibrated, not measured: "
                            "the probe could not time it within the budget (--budget-s)")
            break
        cands = [updated if c.key == updated.key else c for c in cands]
        sel = select.choose(cands, _min_quality_gain(plan), plan.allow_unscored)
    if probes.contradictions:
        worst = max(probes.contradictions, key=lambda kv: abs(kv[1] - 1))
        cands = [c.model_copy(update={"latency_reliable": False}) if c.latency_basis == "calibrated" else c
                 for c in sel.candidates]
        sel = select.choose(cands, _min_quality_gain(plan), plan.allow_unscored)
        warnings.append(f"measurements contradict this machine's calibration (for {worst[0]} the measured p95 is "
                        f"{worst[1]:.2f}x the calibrated one): calibrated rows are marked unreliable; "
                        "`advisor probe MODEL` measures any of them, --refresh re-calibrates")
    return sel, warnings


def _recommend_target(plan: Plan, target: str, *, probe: bool, budget_s, refresh, progress):
    from advisor.recommend.probing import LocalProbes

    spec = describe_target(target, plan)
    probes = LocalProbes(enabled=probe and spec.local, budget_s=budget_s, refresh=refresh, progress=progress,
                         catalog=plan.catalog, catalog_paths=plan.catalog_paths)
    probes.allow_unscored = plan.allow_unscored
    probes.prepare()
    cands, estimates = estimate_candidates(plan, spec, probes, progress)
    available = {c.key: estimates[f"{c.model}:{c.format}"].memory.available_bytes
                 for c in cands if f"{c.model}:{c.format}" in estimates}
    failfn = rule_failures(plan, available)
    warnings: list[str] = []
    if plan.load is not None:
        # with a load the figures are the capacity plan's (simulated), not one request's probe
        from advisor.recommend.capacity import plan_candidates

        cands = plan_candidates(plan, spec, cands, probes, progress)
        sel = select.choose_under_load(cands, _min_quality_gain(plan), plan.allow_unscored,
                                       plan.constraints.quality_tolerance)
    else:
        cands = probes.refine(cands, estimates, failfn, plan.budget_ms)
        sel = select.choose(cands, _min_quality_gain(plan), plan.allow_unscored)
        if probes.active:
            sel, warnings = _measure_the_pick(plan, sel, cands, estimates, probes, failfn)
    violations = _violations(plan, sel.candidates, estimates)
    near = None
    if sel.pick is not None and sel.pick.tier != "large":
        near = sel.large or select.closest_large(sel.candidates, violations, plan.allow_unscored, exclude=sel.pick)
    closest = select.closest_misses(sel.candidates, violations, allow_unscored=plan.allow_unscored) \
        if sel.pick is None else []
    est_near = estimates.get(f"{near.model}:{near.format}") if near is not None and not near.passed else None
    unscored = sum(1 for c in sel.candidates if c.passed and c.quality_proxy is None)
    ordered = select.in_table_order(sel.candidates, select.roles(sel.pick, sel.small, sel.large, near))
    by_key = {c.key: c for c in ordered}
    label = lambda c: by_key.get(c.key, c) if c is not None else None  # noqa: E731 - with rank and role
    verdict = explain.verdict(spec.name, sel.pick, sel.small, sel.large, near, plan.budget_ms)
    if plan.load is not None:
        verdict = _load_verdict(plan, spec.name, sel.candidates, sel.pick, {target: spec.name})
    result = TargetRecommendation(
        target=target, target_name=spec.name, device_summary=spec.summary, hardware_fingerprint=spec.fingerprint,
        runtime=spec.runtime.id, runtime_version=spec.runtime.version,
        status="ok" if sel.pick else "no-candidate", pick=label(sel.pick), small=label(sel.small),
        large=label(sel.large), frontier=sel.frontier, verdict=verdict,
        closest_large=label(near), closest_misses=[label(c) for c in closest],
        to_relax=explain.to_relax(closest, plan.constraints, plan.rules.headroom),
        what_it_would_take=explain.what_it_would_take(near, est_near),
        unscored_passing=0 if plan.allow_unscored else unscored, warnings=warnings,
        probing=probing_status(probe, spec.local, probes))
    return result, ordered, probes, spec


def probing_status(asked: bool, local: bool, probes) -> str:
    """One phrase for the run's tags: did probes shape these figures?"""
    if not local:
        return "not applicable: a named target has spec figures only"
    if not asked:
        return "off (--no-probe): spec and cached figures"
    if not probes.active and probes.rates is None:
        return "unavailable: " + (probes.notes[-1] if probes.notes else "probes did not run")
    used = probes.used()
    measured = sum(1 for u in used if u.get("kind") != "microprobes")
    cached = all(u.get("from_cache") for u in used) if used else False
    return f"ran: microprobes{' (cached)' if cached else ''}, {measured} candidate(s) measured"


def _runtimes(results: list[TargetRecommendation]) -> str:
    ids = [r.runtime or "?" for r in results]
    if len(set(ids)) == 1:
        return ids[0]
    return ", ".join(f"{r.target}={r.runtime}" for r in results)


def _slo_text(plan: Plan) -> str:
    lim = plan.rules.limits
    return explain.slo_text(lim.max_ttft_ms, lim.max_tpot_ms, lim.max_latency_ms)


def _load_verdict(plan: Plan, where: str, cands, pick, names: dict[str, str]) -> str:
    load = plan.load
    best = select.best_quality(cands, plan.allow_unscored)
    low = select.cheapest(cands, plan.allow_unscored)
    passing = sum(1 for c in cands if select.eligible(c, plan.allow_unscored))
    return explain.load_verdict(where, pick, best, load=explain.load_text(load.rps, load.concurrency),
                                slo=_slo_text(plan), names=names, passing=passing, cheapest=low,
                                tolerance=plan.constraints.quality_tolerance)


def _load_plan(plan: Plan, results, candidates) -> LoadPlan:
    """The answer across every target: the cheapest deployment that meets everything, against the best."""
    from advisor.recommend.capacity import METHOD

    load, lim = plan.load, plan.rules.limits
    ok = [c for c in candidates if select.eligible(c, plan.allow_unscored)]
    pick = select.worth_it(ok, plan.constraints.quality_tolerance)
    best = select.best_quality(candidates, plan.allow_unscored)
    names = {t.target: t.target_name for t in results}
    where = ", ".join(t.target for t in results)
    notes = [f"{t.target}: no price in the catalog, ranked by GPUs (--gpu-hour-cost costs it)"
             for t in results if not any(c.cost_per_hour_usd is not None for c in candidates if c.target == t.target)
             and any(c.gpus_total for c in candidates if c.target == t.target)]
    return LoadPlan(rps=load.rps, concurrency=load.concurrency, max_ttft_ms=lim.max_ttft_ms,
                    max_tpot_ms=lim.max_tpot_ms, max_latency_ms=lim.max_latency_ms, method=METHOD,
                    pick=pick.key if pick else None, best_quality=best.key if best else None,
                    verdict=_load_verdict(plan, where, candidates, pick, names), notes=notes)


def _generation(plan: Plan) -> GenerationAdvice:
    """The task's settings, with max_new_tokens = the length every latency figure was computed for."""
    gen, new = plan.task.generation, plan.shape.new_tokens
    rationale = gen.rationale
    if gen.max_new_tokens != new:
        rationale += (f" (max_new_tokens is the {new} tokens the latency figures are for; the {plan.task.id} "
                      f"profile would allow up to {gen.max_new_tokens}, which takes longer)")
    return GenerationAdvice(temperature=gen.temperature, top_p=gen.top_p, max_new_tokens=new, rationale=rationale)


def recommend(task: str = "summarization", *, targets: list[str] | tuple[str, ...] = ("local",),
              prompt_tokens: int | None = None, new_tokens: int | None = None, batch: int | None = None,
              constraints: Constraints | dict | None = None, catalog_paths: list[str] | tuple[str, ...] = (),
              runtime: str | None = None, probe: bool = True, budget_s: float | None = None,
              refresh: bool = False, progress: Callable[[str, int, int], None] | None = None,
              user_models_only: bool = False, allow_unscored: bool = False, local_models=None,
              concurrency: int | None = None, **constraint_kwargs) -> Recommendation:
    """Recommend the small or large model for `task` on each target. Same figures as the CLI.

    runtime None: each target's default (vLLM on named GPU targets, llama.cpp on CPU targets, transformers
    on this machine, where the probes measure it).

    With a load (min_rps=R requests per second, or concurrency=C closed-loop clients) every candidate gets
    a capacity plan (replicas, GPUs, USD/h at that load, p95 TTFT/TPOT/end-to-end) and the pick is the
    cheapest that meets every constraint; `Recommendation.load` weighs it against the best-quality one.
    """
    plan = resolve(task, targets=targets, prompt_tokens=prompt_tokens, new_tokens=new_tokens, batch=batch,
                   constraints=constraints, constraint_kwargs=constraint_kwargs, catalog_paths=catalog_paths,
                   runtime=runtime, user_models_only=user_models_only, allow_unscored=allow_unscored,
                   local_models=local_models, concurrency=concurrency)
    notes = list(plan.notes)
    results, all_candidates, probes_used = [], [], []
    hardware = None
    for target in plan.targets:
        result, cands, probes, spec = _recommend_target(plan, target, probe=probe, budget_s=budget_s,
                                                        refresh=refresh, progress=progress)
        hardware = spec.hardware or hardware
        note = f"{target}: figures model the {spec.runtime.id} runtime ({spec.runtime.version})"
        for n in [note, *probes.notes]:
            if n not in notes:
                notes.append(n)
        probes_used.extend(probes.used())
        results.append(result)
        all_candidates.extend(cands)
    return Recommendation(
        report_id=uuid.uuid4().hex, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        advisor_version=__version__, task=task, task_description=plan.task.description, shape=plan.shape,
        constraints=plan.constraints, latency_budget_ms=plan.budget_ms,
        quality_proxy=plan.task.quality_proxy.description, catalog_version=plan.catalog.version(),
        runtime=_runtimes(results),
        targets=results, candidates=all_candidates,
        generation=_generation(plan),
        notes=notes, hardware=hardware, probes=probes_used,
        load=_load_plan(plan, results, all_candidates) if plan.load is not None else None)

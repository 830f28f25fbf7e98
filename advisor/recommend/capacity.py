"""Step 2b of recommend, with a load (--rps / --concurrency): a capacity plan per candidate.

For every candidate that may be deployed (it passes the user's filters and is scored, or
--allow-unscored), every tensor-parallel degree the target's node and the runtime allow is simulated
(advisor/capacity): the highest load one replica sustains within the p95 SLOs (--max-ttft-ms,
--max-tpot-ms, --max-latency-ms), the replicas the load needs, GPUs, USD per hour and per million
generated tokens. The cheapest layout becomes the candidate's figures, and the rule table judges them
again (min_rps, max_cost_per_hour_usd and the latency limits at the load).

Candidates that share their serving figures (fp16 and bf16 of one model) are planned once; fp32,
which serves the same model as its 16-bit format with twice the bytes, is not planned when the
16-bit format is.
"""

from __future__ import annotations

import math

from advisor.capacity.deploy import cost_basis, layouts_builder, pricing_for
from advisor.capacity.plan import CandidatePlan, LayoutPlan, Pricing, plan_candidate
from advisor.capacity.search import SLO
from advisor.capacity.vllm_cmd import layout_text, model_argument, replica_commands
from advisor.errors import UsageError
from advisor.recommend.build import judged
from advisor.recommend.resolve import Plan, TargetSpec
from advisor.recommend.schema import Candidate, LayoutFigures
from advisor.recommend.select import FILTERS

METHOD = ("discrete-event simulation of one replica per layout (advisor/capacity/simulate.py): continuous "
          "batching with the runtime's decode step at each batch size, prompts chunked into the steps or run "
          "on their own as the runtime schedules them, the KV pool (requests wait when it is full) and "
          "max_num_seqs; Poisson arrivals (closed-loop clients with --concurrency), fixed request lengths; "
          "the highest rate within the p95 SLOs by bisection to 5%")


def slo_of(plan: Plan) -> SLO:
    lim = plan.rules.limits
    return SLO(ttft_ms=lim.max_ttft_ms, tpot_ms=lim.max_tpot_ms, e2e_ms=lim.max_latency_ms)


def pricing_of(spec: TargetSpec, plan: Plan) -> Pricing:
    return pricing_for(spec.hw, plan.constraints.gpu_hour_cost)


def _device(spec: TargetSpec, plan: Plan):
    from advisor.estimate import device as devmod

    if spec.hw is not None:
        return devmod.from_target(spec.hw)
    from advisor.hardware.schema import HardwareProfile

    return devmod.from_profile(HardwareProfile.model_validate(spec.hardware), plan.catalog.targets, spec.runtime)


def _gpus_per_node(spec: TargetSpec) -> int:
    if spec.hw is not None:
        return spec.hw.max_gpus if spec.kind == "gpu" else 1
    return max(1, spec.gpu_count)


def plannable(c: Candidate, plan: Plan) -> str | None:
    """None when the candidate is planned, else why not (kept as its capacity note)."""
    if not c.estimated:
        return "not planned: not estimated"
    if (FILTERS | {"request", "min_quality"}) & set(c.binding):
        return "not planned: it fails a filter (" + ", ".join(sorted((FILTERS | {"request", "min_quality"})
                                                                  & set(c.binding))) + ")"
    if c.quality_proxy is None and not plan.allow_unscored:
        return "not planned: unscored (--allow-unscored plans and may pick it)"
    return None


PLAN_RULES = ("min_rps", "max_cost_per_hour_usd")    # rules whose figure only a capacity plan has


def _unplanned(c: Candidate, why: str) -> Candidate:
    """A candidate left out of planning: the plan-only rules' "not planned" failures give way to why."""
    keep = [(r, b) for r, b in zip(c.reasons, c.binding) if b not in PLAN_RULES]
    reasons, binding = [r for r, _ in keep], [b for _, b in keep]
    if not reasons:
        reasons, binding = [why], ["min_rps" if "min_rps" in c.binding else "capacity"]
    return c.model_copy(update={"capacity_note": why, "reasons": reasons, "binding": binding,
                                "passed": False})


def _signature(entry, fmt) -> tuple:
    from advisor.estimate.formats import weight_terms

    return (entry.id, sum(weight_terms(entry.arch, fmt).values()), fmt.kernel_key, fmt.family, fmt.compute)


def _rates(plan: Plan, spec: TargetSpec, probes, fmt):
    if probes is not None and getattr(probes, "rates", None) is not None:
        from advisor.estimate.latency import calibrated_rates

        return calibrated_rates(probes.rates, fmt, spec.runtime)
    return None


def _specs(plan: Plan, spec: TargetSpec, device, entry, fmt, rates):
    return layouts_builder(entry, fmt, spec.runtime, device, prompt=plan.shape.prompt_tokens,
                           new=plan.shape.new_tokens, headroom=plan.rules.headroom, rates=rates,
                           static_batch=plan.shape.batch)


def _figures(lp: LayoutPlan, load_kind: str) -> LayoutFigures:
    lim, at = lp.limit, lp.at_load
    return LayoutFigures(
        tensor_parallel=lp.tensor_parallel, fits=lp.fits, reason=lp.reason,
        max_load_per_replica=lim.load if lim is not None else None,
        saturation_rps_per_replica=lim.saturation_rps if lim is not None and lim.saturation.feasible else None,
        replicas=lp.replicas, gpus_total=lp.gpus_total, instances=lp.instances, cost_per_hour_usd=lp.cost_per_hour_usd,
        cost_per_mtok_usd=lp.cost_per_mtok_usd,
        ttft_p95_ms=_num(at.ttft_ms.p95) if at else None, tpot_p95_ms=_num(at.tpot_ms.p95) if at else None,
        e2e_p95_ms=_num(at.e2e_ms.p95) if at else None, bound=lim.bound if lim is not None else None,
        simulations=lim.simulations if lim is not None else 0)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _apply(c: Candidate, cp: CandidatePlan, plan: Plan, spec: TargetSpec, entry, pricing: Pricing,
           basis: str) -> dict:
    """The candidate's capacity fields from its plan (the chosen layout, or the closest one)."""
    layouts = [_figures(lp, cp.load.kind) for lp in cp.layouts]
    upd: dict = {"layouts": layouts, "latency_basis": basis, "capacity_note": cp.note or None}
    ch = cp.chosen
    if ch is None:
        # nothing sustains any load: show the figures of one request on the first layout that fits,
        # so the latency rules say which SLO breaks and by how much
        first = next((lp for lp in cp.layouts if lp.fits and lp.limit is not None), None)
        upd.update(rps_sustained=0.0 if cp.load.kind == "rate" else None, replicas=None)
        if first is not None:
            at = first.limit.at_load or first.limit.above
            upd.update(tensor_parallel=first.tensor_parallel, load_bound=first.limit.bound,
                       bound_detail=first.limit.detail, memory_bytes=first.spec.memory_per_device, verdict="fits")
            if at is not None and at.feasible:
                upd.update(ttft_p95_ms=_num(at.ttft_ms.p95), tpot_p95_ms=_num(at.tpot_ms.p95),
                           e2e_p95_ms=_num(at.e2e_ms.p95), e2e_p50_ms=_num(at.e2e_ms.p50),
                           ttft_ms=_num(at.ttft_ms.p50), decode_ms_per_token=_num(at.tpot_ms.p50))
        elif cp.layouts:
            upd["bound_detail"] = "; ".join(f"TP {lp.tensor_parallel}: {lp.reason}" for lp in cp.layouts[:3])
        return upd
    at, lim = ch.at_load, ch.limit
    rs = ch.spec
    gpn = _gpus_per_node(spec)
    total_rps = cp.load.amount if cp.load.kind == "rate" else at.requests_per_s * cp.load.amount / max(
        1, math.ceil(cp.load.amount / ch.replicas))
    upd.update(
        tensor_parallel=ch.tensor_parallel, replicas=ch.replicas, gpus_total=ch.gpus_total, instances=ch.instances,
        cost_per_hour_usd=ch.cost_per_hour_usd, cost_per_mtok_usd=ch.cost_per_mtok_usd,
        cost_basis=cost_basis(pricing),
        max_rps_per_replica=lim.load if cp.load.kind == "rate" else None,
        max_clients_per_replica=int(lim.load) if cp.load.kind == "clients" else None,
        saturation_rps_per_replica=lim.saturation_rps,
        rps_sustained=lim.load * ch.replicas if cp.load.kind == "rate" else None,
        load_bound=lim.bound, step_bound=ch.step_bound, bound_detail=lim.detail,
        ttft_p95_ms=_num(at.ttft_ms.p95), tpot_p95_ms=_num(at.tpot_ms.p95), e2e_p95_ms=_num(at.e2e_ms.p95),
        e2e_p50_ms=_num(at.e2e_ms.p50), ttft_ms=_num(at.ttft_ms.p50), decode_ms_per_token=_num(at.tpot_ms.p50),
        tokens_per_s=total_rps * plan.shape.new_tokens, latency_bound=ch.step_bound,
        memory_bytes=rs.memory_per_device, memory_limit_bytes=int(rs.memory_available * (1 - plan.rules.headroom)),
        verdict="fits",
        serving_layout=layout_text(spec.runtime.id, tensor_parallel=ch.tensor_parallel, replicas=ch.replicas,
                                   gpus_per_node=gpn, device_name=spec.name, instances=ch.instances,
                                   instance=spec.hw.instance if spec.hw is not None and spec.hw.is_instance else None),
        capacity_note=cp.note or None)
    return upd


def _commands(c: Candidate, upd: dict, plan: Plan, spec: TargetSpec, entry, pricing: Pricing) -> dict:
    """The vLLM command line per replica, for this candidate's format (and what its placeholder means)."""
    if not upd.get("replicas") or spec.runtime.id != "vllm":
        return {}
    instruct = plan.task.quality_proxy.variant == "instruct"
    commands = replica_commands(entry, c.format, tensor_parallel=upd["tensor_parallel"], replicas=upd["replicas"],
                                gpus_per_node=pricing.instance_gpus or _gpus_per_node(spec),
                                max_model_len=plan.shape.prompt_tokens + plan.shape.new_tokens,
                                max_num_seqs=_seqs(spec), instruct=instruct)
    _, _, placeholder = model_argument(entry, c.format, instruct)
    note = "; ".join(x for x in (upd.get("capacity_note"), placeholder) if x) or None
    return {"serve_commands": commands, "capacity_note": note}


def plan_candidates(plan: Plan, spec: TargetSpec, cands: list[Candidate], probes, progress) -> list[Candidate]:
    """Every plannable candidate with its capacity figures, re-judged by the rule table."""
    from advisor.estimate.parallel import valid_degrees

    load, slo = plan.load, slo_of(plan)
    pricing = pricing_of(spec, plan)
    device = _device(spec, plan)
    entries = {m.id: m for m in plan.models}
    todo = [(i, c) for i, c in enumerate(cands) if plannable(c, plan) is None]
    sixteen = {(c.model) for _, c in todo if c.format in ("bf16", "fp16")}
    done: dict[tuple, dict] = {}
    out = list(cands)
    for i, c in enumerate(cands):
        why = plannable(c, plan)
        if why is not None:
            out[i] = _unplanned(c, why)
    for n, (i, c) in enumerate(todo):
        if progress:
            progress(f"planning {c.model} {c.format} on {spec.id}", n, len(todo))
        entry = entries[c.model]
        fmt = plan.catalog.formats[c.format]
        if c.format == "fp32" and c.model in sixteen:
            out[i] = _unplanned(c, "not planned: fp32 serves the same model as its 16-bit format with twice the bytes")
            continue
        sig = _signature(entry, fmt)
        try:
            if sig not in done:
                rates = _rates(plan, spec, probes, fmt)
                basis = "calibrated" if rates is not None else "spec"
                degrees = valid_degrees(entry.arch, spec.runtime, _gpus_per_node(spec)) if spec.kind == "gpu" else [1]
                cp = plan_candidate(_specs(plan, spec, device, entry, fmt, rates), degrees, load, slo, pricing)
                done[sig] = _apply(c, cp, plan, spec, entry, pricing, basis)
            upd = dict(done[sig])
            upd.update(_commands(c, upd, plan, spec, entry, pricing))
        except UsageError as exc:
            upd = {"capacity_note": f"not planned: {exc.message}"}
        updated = c.model_copy(update=upd)
        available = updated.memory_limit_bytes / (1 - plan.rules.headroom) if updated.memory_limit_bytes else None
        out[i] = judged(updated, plan, available)
    return out


def _seqs(spec: TargetSpec) -> int | None:
    from advisor.estimate.pool import max_num_seqs

    if spec.runtime.pool is None:
        return None
    return max_num_seqs(spec.runtime, spec.hw.id if spec.hw is not None else "default")

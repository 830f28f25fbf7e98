"""The gate's load figures: what the checked deployment sustains and costs (min_rps, max_tpot_ms,
max_cost_per_hour_usd), from the same capacity plan as recommend --rps.

The checked layout is one replica on the policy's GPUs (tensor parallel over them); with min_rps the
plan adds replicas of it until the rate is served within the latency limits (p95), and the figures are
those replicas' (rate sustained, cost per hour, TPOT at the load). Without min_rps, TPOT is the
estimate's time per output token and the cost that of one replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadFigures:
    tpot_ms: float | None = None
    ttft_ms: float | None = None                   # p95 at the load (None: the estimate's)
    e2e_p95_ms: float | None = None                # p95 at the load (None: the estimate's)
    rps: float | None = None
    cost_per_hour_usd: float | None = None
    cost_basis: str = "catalog"
    figures: dict[str, float] = field(default_factory=dict)   # for the report and MLflow
    notes: list[str] = field(default_factory=list)


def load_figures(est, entry, fmt, runtime, catalog, target: str, gpus: int, limits, *, prompt: int, new: int,
                 headroom: float, gpu_hour_cost: float | None = None, profile=None) -> LoadFigures:
    from advisor.capacity.deploy import cost_basis, layouts_builder, pricing_for
    from advisor.capacity.plan import Load, plan_candidate
    from advisor.capacity.search import SLO

    hw = catalog.targets.get(target) if target != "local" else None
    pricing = pricing_for(hw, gpu_hour_cost)
    out = LoadFigures(tpot_ms=est.latency.decode_ms_per_token, cost_basis=cost_basis(pricing) or "catalog")
    if pricing.known:
        per_instance = (pricing.instance_per_hour if pricing.instance_gpus else None)
        out.cost_per_hour_usd = per_instance if per_instance is not None else pricing.per_gpu_hour * gpus
    if limits.min_rps is None:
        return out
    from advisor.estimate import device as devmod

    if hw is not None:
        device = devmod.from_target(hw)
    else:
        from advisor.hardware.profile import detect_profile

        device = devmod.from_profile(profile or detect_profile(include_torch=False), catalog.targets, runtime)
    build = layouts_builder(entry, fmt, runtime, device, prompt=prompt, new=new, headroom=headroom)
    slo = SLO(ttft_ms=limits.max_ttft_ms, tpot_ms=limits.max_tpot_ms, e2e_ms=limits.max_latency_ms)
    cp = plan_candidate(build, [gpus], Load(rps=limits.min_rps), slo, pricing)
    lp = cp.layouts[0] if cp.layouts else None
    if cp.chosen is None:
        out.rps = 0.0
        if lp is not None:
            why = lp.reason or (lp.limit.detail if lp.limit is not None else "")
            out.notes.append(f"capacity: no number of replicas of this layout serves {limits.min_rps:g} req/s "
                             f"within the latency limits: {why}")
            at = lp.limit.at_load if lp.limit is not None else None
            if at is not None and at.feasible:
                out.tpot_ms, out.ttft_ms, out.e2e_p95_ms = at.tpot_ms.p95, at.ttft_ms.p95, at.e2e_ms.p95
        return out
    ch = cp.chosen
    out.rps = ch.limit.load * ch.replicas
    out.tpot_ms, out.ttft_ms, out.e2e_p95_ms = ch.at_load.tpot_ms.p95, ch.at_load.ttft_ms.p95, ch.at_load.e2e_ms.p95
    out.cost_per_hour_usd = ch.cost_per_hour_usd
    out.figures = {"replicas": ch.replicas, "gpus_total": ch.gpus_total, "max_rps_per_replica": ch.limit.load,
                   "ttft_p95_ms": ch.at_load.ttft_ms.p95, "tpot_p95_ms": ch.at_load.tpot_ms.p95,
                   "e2e_p95_at_load_ms": ch.at_load.e2e_ms.p95}
    if ch.cost_per_hour_usd is not None:
        out.figures["cost_per_hour_usd"] = ch.cost_per_hour_usd
    out.notes.append(f"capacity: {ch.replicas} replica(s) of {gpus} GPU(s) serve {limits.min_rps:g} req/s "
                     f"(one sustains {ch.limit.load:.2f} req/s within the latency limits: {ch.limit.detail}; "
                     f"bound {ch.limit.bound})" + (f"; {pricing.source}" if pricing.known else "; no price"))
    return out

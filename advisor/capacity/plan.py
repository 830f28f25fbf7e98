"""A capacity plan for one model x format on one target: every parallel layout the node allows, the
highest load one replica of it sustains within the SLOs, the replicas a traffic level needs, GPUs,
USD per hour and per million generated tokens, and the cheapest layout (pure functions).

Prices: a device target is rented per GPU-hour (its catalog price, or --gpu-hour-cost); an instance
target (a cloud machine rented by name) whole: its replicas are packed onto instances of `gpus` GPUs,
and the instances are paid for. A target without a price is planned in GPUs and not costed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from advisor.capacity.replica import ReplicaSpec, step_bound
from advisor.capacity.search import SLO, Limit, closed_sized, max_clients, max_rate, mean_value, saturated_rate, sized
from advisor.capacity.simulate import SimResult, simulate


@dataclass(frozen=True)
class Load:
    """The traffic to serve: an open-loop request rate, or closed-loop clients."""

    rps: float | None = None
    concurrency: int | None = None

    def __post_init__(self):
        if (self.rps is None) == (self.concurrency is None):
            raise ValueError("give a request rate or a client count, not both")

    @property
    def kind(self) -> str:
        return "rate" if self.rps is not None else "clients"

    @property
    def amount(self) -> float:
        return float(self.rps if self.rps is not None else self.concurrency)


@dataclass(frozen=True)
class Pricing:
    per_gpu_hour: float | None                 # USD per GPU-hour (device targets, or instance / gpus)
    instance_gpus: int | None = None           # an instance target: GPUs per instance
    instance_per_hour: float | None = None     # and its price
    source: str = ""                           # "catalog (region, date)" or "--gpu-hour-cost"

    @property
    def known(self) -> bool:
        return self.per_gpu_hour is not None or self.instance_per_hour is not None


@dataclass
class LayoutPlan:
    tensor_parallel: int
    fits: bool
    reason: str = ""                           # why it does not fit / was not simulated
    limit: Limit | None = None
    replicas: int | None = None
    gpus_total: int | None = None
    instances: int | None = None               # instance targets: machines rented
    cost_per_hour_usd: float | None = None
    cost_per_mtok_usd: float | None = None
    at_load: SimResult | None = None           # one replica at its share of the load
    step_bound: str | None = None              # the decode step's bound at that load
    spec: ReplicaSpec | None = field(default=None, repr=False)

    @property
    def feasible(self) -> bool:
        return self.replicas is not None

    @property
    def max_load_per_replica(self) -> float | None:
        return self.limit.load if self.limit is not None else None


@dataclass
class CandidatePlan:
    layouts: list[LayoutPlan]
    chosen: LayoutPlan | None
    load: Load
    slo: SLO
    priced: bool
    note: str = ""

    @property
    def feasible(self) -> bool:
        return self.chosen is not None


def _cost(pricing: Pricing, replicas: int, tp: int) -> tuple[float | None, int, int | None]:
    """(USD/h, GPUs rented, instances) for `replicas` replicas of `tp` GPUs."""
    gpus = replicas * tp
    if pricing.instance_gpus:
        per = max(1, pricing.instance_gpus // tp)
        instances = math.ceil(replicas / per)
        cost = instances * pricing.instance_per_hour if pricing.instance_per_hour is not None else (
            instances * pricing.instance_gpus * pricing.per_gpu_hour if pricing.per_gpu_hour is not None else None)
        return cost, instances * pricing.instance_gpus, instances
    return (gpus * pricing.per_gpu_hour if pricing.per_gpu_hour is not None else None), gpus, None


def _upper_bound_load(spec: ReplicaSpec, load: Load) -> float:
    """An optimistic bound on one replica's load from the closed form (saturated, plus 25%), to skip
    layouts that cannot win."""
    rep = spec.replica
    if rep.max_concurrency < 1:
        return 0.0
    if load.kind == "clients":
        return float(rep.max_concurrency)
    return 1.25 * saturated_rate(rep)


def plan_layout(spec: ReplicaSpec, tp: int, load: Load, slo: SLO, pricing: Pricing) -> LayoutPlan:
    """One layout: the replica's limit, then the replicas, GPUs and cost for the load."""
    if not spec.fits:
        return LayoutPlan(tp, False, spec.reason, spec=spec)
    rep = spec.replica
    limit = max_rate(rep, slo) if load.kind == "rate" else max_clients(rep, slo)
    plan = LayoutPlan(tp, True, limit=limit, spec=spec)
    if limit.load <= 0:
        plan.reason = limit.detail
        plan.at_load = limit.at_load
        return plan
    if load.kind == "rate":
        replicas = max(1, math.ceil(load.amount / limit.load - 1e-9))
        share = load.amount / replicas
        at = simulate(rep, sized(rep, share, mean_value(rep, share)[1]))
        tokens_per_s = load.amount * rep.new
    else:
        replicas = max(1, math.ceil(load.amount / limit.load - 1e-9))
        share_clients = math.ceil(load.amount / replicas)
        at = simulate(rep, closed_sized(share_clients, limit.at_load.e2e_ms.p50 if limit.at_load else 0.0))
        tokens_per_s = at.output_tokens_per_s * load.amount / share_clients
    cost, gpus, instances = _cost(pricing, replicas, tp)
    plan.replicas, plan.gpus_total, plan.instances, plan.cost_per_hour_usd = replicas, gpus, instances, cost
    plan.at_load = at
    plan.step_bound = step_bound(spec, max(1, round(at.mean_running)))
    if cost is not None and tokens_per_s > 0:
        plan.cost_per_mtok_usd = cost / (tokens_per_s * 3600.0) * 1e6
    return plan


def _rank(p: LayoutPlan, priced: bool) -> tuple:
    cost = p.cost_per_hour_usd if priced and p.cost_per_hour_usd is not None else math.inf
    e2e = p.at_load.e2e_ms.p95 if p.at_load is not None else math.inf
    return (cost if priced else 0.0, p.gpus_total, p.tensor_parallel, e2e)


def plan_candidate(specs: Callable[[int], ReplicaSpec | None], degrees: list[int], load: Load, slo: SLO,
                   pricing: Pricing) -> CandidatePlan:
    """Every tensor-parallel degree in `degrees` (smallest first): the cheapest feasible layout wins
    (fewest GPUs when the target has no price). A layout whose optimistic closed-form bound cannot beat
    the best one found is not simulated; its row says so."""
    layouts: list[LayoutPlan] = []
    best: LayoutPlan | None = None
    priced = pricing.known
    for tp in sorted(degrees):
        spec = specs(tp)
        if spec is None:
            continue
        if not spec.fits:
            layouts.append(LayoutPlan(tp, False, spec.reason, spec=spec))
            continue
        if best is not None:
            bound = _upper_bound_load(spec, load)
            fewest = max(1, math.ceil(load.amount / bound)) if bound > 0 else None
            if fewest is None:
                layouts.append(LayoutPlan(tp, True, "the KV pool holds no request", spec=spec))
                continue
            cost, gpus, _ = _cost(pricing, fewest, tp)
            lower = (cost if priced else 0.0, gpus)
            if lower >= (_rank(best, priced)[0], best.gpus_total):
                layouts.append(LayoutPlan(tp, True, f"not simulated: at least {fewest} replica(s), "
                                          f"{gpus} GPUs, cannot beat TP {best.tensor_parallel}", spec=spec))
                continue
        plan = plan_layout(spec, tp, load, slo, pricing)
        layouts.append(plan)
        if plan.feasible and (best is None or _rank(plan, priced) < _rank(best, priced)):
            best = plan
    note = "" if priced else "no price for this target: ranked by GPUs (pass --gpu-hour-cost to cost it)"
    return CandidatePlan(layouts, best, load, slo, priced, note)

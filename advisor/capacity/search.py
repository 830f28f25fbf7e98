"""The highest load one replica sustains within latency SLOs (pure; the simulation is the judge).

A mean-value closed form (the serving-engines model's continuous batching: N = rate x end-to-end by
Little's law, every output token also carrying the compute of the prompts that arrive meanwhile) gives
the first guess; simulations at that rate and around it decide, bracketing the rate where the worst p95
crosses its limit and closing in on it by regula falsi (Illinois), to within `tolerance`.
The search never goes past the replica's saturation throughput (the simulated closed loop at its full
concurrency): above it the queue grows without bound.

Bounds: `kv-pool` / `max-num-seqs` when the replica is full at its highest rate, or when the failing
rate's requests waited for the KV pool / the scheduler's cap; otherwise `slo-ttft`, `slo-tpot` or
`slo-e2e`, the SLO that the next rate up breaks. The decode step's own bound (compute,
memory-bandwidth, step-overhead, interconnect) at that load is reported beside it by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.capacity.simulate import Arrivals, Replica, SimResult, simulate

TOLERANCE = 0.05            # the highest verified rate is within 5% of the true one (conservative side)
MAX_REQUESTS = 6000         # per simulation


@dataclass(frozen=True)
class SLO:
    """p95 limits; None: no limit."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def excess(self, res: SimResult) -> dict[str, float]:
        """SLO -> how far its p95 is past the limit (fraction); only the ones broken."""
        out = {}
        for name, limit, value in (("ttft", self.ttft_ms, res.ttft_ms.p95), ("tpot", self.tpot_ms, res.tpot_ms.p95),
                                   ("e2e", self.e2e_ms, res.e2e_ms.p95)):
            if limit is not None and not math.isnan(value) and value > limit:
                out[name] = value / limit - 1
        return out

    def score(self, res: SimResult) -> float:
        """The worst p95 / limit, minus 1: <= 0 when every SLO is met."""
        if not res.feasible:
            return math.inf
        ratios = [value / limit for limit, value in ((self.ttft_ms, res.ttft_ms.p95), (self.tpot_ms, res.tpot_ms.p95),
                                                      (self.e2e_ms, res.e2e_ms.p95))
                  if limit is not None and not math.isnan(value)]
        return max(ratios) - 1 if ratios else -1.0

    def met(self, res: SimResult) -> bool:
        return res.feasible and not self.excess(res)

    def failing(self, res: SimResult) -> str | None:
        ex = self.excess(res)
        return max(ex, key=ex.get) if ex else None


@dataclass(frozen=True)
class Limit:
    """The most one replica takes within the SLOs: a request rate (open loop) or clients (closed loop)."""

    load: float                    # req/s, or clients; 0 when even one request alone breaks an SLO
    kind: str                      # rate | clients
    saturation: SimResult          # the replica at its full concurrency (closed loop)
    at_load: SimResult | None      # the simulation at `load`
    above: SimResult | None        # the simulation at the first load that failed
    bound: str                     # kv-pool | max-num-seqs | slo-ttft | slo-tpot | slo-e2e | does-not-fit
    detail: str
    simulations: int

    @property
    def saturation_rps(self) -> float:
        return self.saturation.requests_per_s


def sized(rep: Replica, rate: float, e2e_ms: float, seed: int = 0) -> Arrivals:
    """Poisson arrivals with enough requests for a steady state: the warm-up fills the replica (about
    rate x end-to-end requests in flight), then at least twice that many (and 300) are measured."""
    inflight = rate * e2e_ms / 1e3
    warm = max(30, math.ceil(inflight))
    measured = max(300, math.ceil(2 * inflight))
    total = min(MAX_REQUESTS, warm + measured)
    return Arrivals("poisson", rate=rate, requests=total, warmup=min(warm, total // 3), seed=seed)


def closed_sized(clients: int, stagger_ms: float = 0.0) -> Arrivals:
    """A closed loop: two rounds of the clients to fill it, then at least 300 measured requests; their
    first requests spread over `stagger_ms` (one request's latency: real clients do not run in step)."""
    warm = max(2 * clients, 20)
    total = min(MAX_REQUESTS, warm + max(300, 3 * clients))
    return Arrivals("closed", clients=clients, requests=total, warmup=min(warm, total // 2), stagger_ms=stagger_ms)


def mean_value(rep: Replica, rate: float) -> tuple[float, float, float]:
    """(TPOT, end-to-end, sequences in flight) as means at `rate` req/s: the closed form of the
    serving-engines model. Each second of a replica carries rate x a prompt's compute (mixed steps) or
    rate x a lone prefill forward (separate steps); the decode steps share what is left. The sequences
    in flight solve n = rate x end-to-end(n) (Little's law), capped at the replica's concurrency."""
    per_ms = rate / 1e3
    cost = rep.prefill_compute_ms if rep.prefill == "mixed" else rep.prefill_alone_ms
    left = 1.0 - per_ms * cost
    if left <= 0:
        return math.inf, math.inf, float(rep.max_concurrency)
    ctx = rep.prompt + rep.new / 2
    top = max(1, rep.max_concurrency)

    def e2e_at(n: int) -> tuple[float, float]:
        tpot = rep.step_ms(n, ctx) / left
        return tpot, rep.ttft_floor_ms + rep.prefill_alone_ms + (rep.new - 1) * tpot

    tpot, e2e = e2e_at(top)
    if per_ms * e2e >= top:               # saturated: the replica is full
        return tpot, e2e, float(top)
    lo, hi = 1, top                       # n - rate x e2e(n) changes sign in [lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if per_ms * e2e_at(mid)[1] > mid:
            lo = mid
        else:
            hi = mid
    tpot, e2e = e2e_at(hi)
    return tpot, e2e, max(1.0, min(float(top), per_ms * e2e))


def saturated_rate(rep: Replica) -> float:
    """The closed form's throughput with the replica full (req/s): rate = concurrency / end-to-end."""
    top = rep.max_concurrency
    if top < 1:
        return 0.0
    cost = rep.prefill_compute_ms if rep.prefill == "mixed" else rep.prefill_alone_ms
    ctx = rep.prompt + rep.new / 2
    step = rep.step_ms(top, ctx)
    lo, hi = 0.0, (1e3 / cost if cost > 0 else 1e7)
    for _ in range(40):
        mid = (lo + hi) / 2
        left = 1.0 - mid / 1e3 * cost
        e2e = rep.ttft_floor_ms + rep.prefill_alone_ms + (rep.new - 1) * step / left
        if mid < top / e2e * 1e3:
            lo = mid
        else:
            hi = mid
    return lo


def _closed_form_rate(rep: Replica, slo: SLO, top: float) -> float:
    """The highest rate whose mean TPOT and end-to-end meet the SLOs, up to `top` (a first guess)."""
    def ok(r: float) -> bool:
        tpot, e2e, _ = mean_value(rep, r)
        return ((slo.tpot_ms is None or tpot <= slo.tpot_ms) and (slo.e2e_ms is None or e2e <= slo.e2e_ms))
    if ok(top):
        return top
    lo, hi = 0.0, top
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def saturation(rep: Replica) -> SimResult:
    """The replica kept full: a closed loop with as many clients as it holds at once. Fixed lengths keep
    the clients in cohorts, so after the first cohort the replica repeats itself: one more cohort (and
    at least 200 requests) is measured."""
    c = max(1, rep.max_concurrency)
    total = min(MAX_REQUESTS, c + max(200, c) + c)
    return simulate(rep, Arrivals("closed", clients=c, requests=total, warmup=c))


def _alone(rep: Replica) -> SimResult:
    return simulate(rep, Arrivals("burst", requests=1, warmup=0))


def _full(rep: Replica) -> str:
    return "kv-pool" if rep.max_concurrency < rep.max_seqs else "max-num-seqs"


def _bound(rep: Replica, slo: SLO, above: SimResult | None, saturated: bool) -> str:
    if saturated or above is None:
        return _full(rep)
    which = slo.failing(above)
    measured = max(1, above.ttft_ms.n)
    if which in ("ttft", "e2e", None):
        if above.kv_waits > 0.05 * measured:
            return "kv-pool"
        if above.seq_waits > 0.05 * measured:
            return "max-num-seqs"
    return f"slo-{which}" if which else _full(rep)


def _describe(slo: SLO, res: SimResult, which: str) -> str:
    value = {"ttft": res.ttft_ms.p95, "tpot": res.tpot_ms.p95, "e2e": res.e2e_ms.p95}[which]
    limit = {"ttft": slo.ttft_ms, "tpot": slo.tpot_ms, "e2e": slo.e2e_ms}[which]
    names = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "end-to-end"}
    return f"p95 {names[which]} {value:.0f} ms > {limit:.0f} ms"


def max_rate(rep: Replica, slo: SLO, *, tolerance: float = TOLERANCE, seed: int = 0) -> Limit:
    """The highest Poisson arrival rate (req/s) one replica sustains within the SLOs."""
    if rep.max_concurrency < 1:
        empty = _alone(rep)
        return Limit(0.0, "rate", empty, None, None, "does-not-fit", empty.reason or "the KV pool holds no request", 1)
    sat = saturation(rep)
    alone = _alone(rep)
    sims = 2
    if not slo.met(alone):
        which = slo.failing(alone) or "e2e"
        return Limit(0.0, "rate", sat, None, alone, f"slo-{which}",
                     f"one request alone: {_describe(slo, alone, which)}", sims)
    mu = sat.requests_per_s
    rate = max(mu * 0.02, min(mu, _closed_form_rate(rep, slo, mu)))
    ok_rate, ok_res, ok_g, bad_rate, bad_res, bad_g = 0.0, None, -1.0, None, None, 0.0
    kept = None                                    # regula falsi (Illinois): which end stayed last time
    for _ in range(14):
        res = simulate(rep, sized(rep, rate, mean_value(rep, rate)[1], seed))
        sims += 1
        g = slo.score(res)
        if g <= 0:
            ok_rate, ok_res, ok_g = rate, res, g
            if kept == "ok":
                bad_g /= 2
            kept = "bad"
            if rate >= mu * (1 - 1e-9):
                break
        else:
            bad_rate, bad_res, bad_g = rate, res, g
            if kept == "bad":
                ok_g /= 2
            kept = "ok"
        if ok_rate > 0 and bad_rate is not None and bad_rate / ok_rate <= 1 + tolerance:
            break
        if bad_rate is None:                       # not bracketed yet: step up, further with more slack
            rate = min(mu, rate * min(1.6, max(1.08, 1 - g)))
        elif ok_rate == 0:                         # step down
            rate = rate / min(2.0, max(1.1, 1 + g))
        else:                                      # where the worst p95 crosses its limit, kept inside
            guess = ok_rate + (bad_rate - ok_rate) * (-ok_g) / (bad_g - ok_g)
            margin = 1 + tolerance / 3
            rate = min(max(guess, ok_rate * margin), bad_rate / margin)
    saturated = ok_rate >= mu * (1 - 1e-9)
    bound = _bound(rep, slo, bad_res, saturated)
    if saturated:
        detail = (f"the replica is full at {mu:.2f} req/s ({rep.max_concurrency} sequences: "
                  f"{'the KV pool' if bound == 'kv-pool' else 'max_num_seqs'})")
    elif bad_res is not None:
        which = slo.failing(bad_res)
        detail = (f"at {bad_rate:.2f} req/s " + (_describe(slo, bad_res, which) if which else "the queue grows")
                  + (f"; {bad_res.kv_waits} of {bad_res.ttft_ms.n} requests waited for the KV pool"
                     if bad_res.kv_waits else ""))
    else:
        detail = "no rate within the SLOs was found"
    if ok_rate == 0:   # everything simulated failed: report the single request's figures
        return Limit(0.0, "rate", sat, alone, bad_res, bound, detail + " (no sustained rate found)", sims)
    return Limit(ok_rate, "rate", sat, ok_res, bad_res, bound, detail, sims)


def max_clients(rep: Replica, slo: SLO) -> Limit:
    """The most closed-loop clients (each waiting for its answer before the next request) one replica
    serves within the SLOs, up to its full concurrency."""
    if rep.max_concurrency < 1:
        empty = _alone(rep)
        return Limit(0.0, "clients", empty, None, None, "does-not-fit",
                     empty.reason or "the KV pool holds no request", 1)
    alone = _alone(rep)
    if not slo.met(alone):
        which = slo.failing(alone) or "e2e"
        return Limit(0.0, "clients", alone, None, alone, f"slo-{which}",
                     f"one request alone: {_describe(slo, alone, which)}", 1)
    top = rep.max_concurrency
    spread = alone.e2e_ms.p50
    sat = simulate(rep, closed_sized(top, spread))
    sims = 2
    if slo.met(sat):
        return Limit(float(top), "clients", sat, sat, None, _full(rep),
                     f"the replica is full at {top} clients "
                     f"({'the KV pool' if _full(rep) == 'kv-pool' else 'max_num_seqs'})",
                     sims)
    lo, lo_res, hi, hi_res = 1, None, top, sat
    while hi - lo > max(1, int(TOLERANCE * lo)):        # bisection on whole clients, to within 5%
        mid = (lo + hi) // 2
        res = simulate(rep, closed_sized(mid, spread))
        sims += 1
        if slo.met(res):
            lo, lo_res = mid, res
        else:
            hi, hi_res = mid, res
    if lo_res is None:
        lo_res = simulate(rep, closed_sized(lo, spread))
        sims += 1
    which = slo.failing(hi_res)
    bound = _bound(rep, slo, hi_res, False)
    detail = f"at {hi} clients " + (_describe(slo, hi_res, which) if which else "the replica is full")
    return Limit(float(lo), "clients", sat, lo_res, hi_res, bound, detail, sims)

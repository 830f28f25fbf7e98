"""The gate's checks: the shared rule table (advisor.rules.table) applied to one estimate, as CheckResults."""

from __future__ import annotations

from advisor.check.schema import CheckResult
from advisor.rules.table import Figures, RuleResult, RuleSet, evaluate


def figures(est, entry, quality: float | None, params_total: int | None = None, load=None) -> Figures:
    """What the rules read: the estimate's figures, the catalog's licence (None outside the catalog), and
    with a load (advisor.check.capacity.LoadFigures) the p95 latencies, rate and cost at that load."""
    mem = est.memory
    # an engine that preallocates a pool (vLLM) keeps 1 - its memory fraction free by itself
    reserved = (1.0 - mem.memory_fraction) if mem.kv_pool_bytes is not None and mem.memory_fraction else None
    ttft = load.ttft_ms if load is not None and load.ttft_ms is not None else est.latency.ttft_ms
    e2e = load.e2e_p95_ms if load is not None and load.e2e_p95_ms is not None else est.latency.e2e_p95_ms
    return Figures(format=est.format, memory_reserved_fraction=reserved, memory_verdict=mem.verdict,
                   memory_bytes=mem.per_device_bytes, memory_available_bytes=mem.available_bytes,
                   memory_basis=mem.basis, e2e_p95_ms=e2e, ttft_ms=ttft,
                   tokens_per_s=est.latency.tokens_per_s, latency_basis=est.latency.basis, quality=quality,
                   params_total=params_total if params_total is not None else (entry.params_total if entry else None),
                   license=entry.license if entry is not None else None,
                   tpot_ms=load.tpot_ms if load is not None else est.latency.decode_ms_per_token,
                   rps=load.rps if load is not None else None,
                   cost_per_hour_usd=load.cost_per_hour_usd if load is not None else None,
                   cost_basis=load.cost_basis if load is not None else "catalog")


def check_results(est, target: str, rules: RuleSet, entry, quality: float | None, licences: dict,
                  quality_detail: str = "", params_total: int | None = None, load=None) -> list[CheckResult]:
    out = []
    # A model that does not fit is timed as if it did: say so next to its latency figures.
    note = "" if est.memory.verdict == "fits" else f" (if it were served: memory verdict {est.memory.verdict})"
    for r in evaluate(figures(est, entry, quality, params_total, load), rules, licences):
        message = r.message
        if r.unit in ("ms", "tokens/s", "req/s"):
            message += note
        if r.check == "quality-proxy" and quality_detail:
            message += f" [{quality_detail}]"
        out.append(_result(r, target, message))
    return out


def _result(r: RuleResult, target: str, message: str) -> CheckResult:
    value = round(r.value, 3) if isinstance(r.value, float) else r.value
    return CheckResult(name=r.check, target=target, status=r.status, value=value, limit=r.limit, unit=r.unit,
                       basis=r.basis, message=message)

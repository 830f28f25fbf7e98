"""Step 4 of recommend: the sentences — verdict, what to relax, what it would take (pure)."""

from __future__ import annotations

from advisor.recommend.schema import Candidate, Constraints
from advisor.rules.table import gb, secs


def verdict(target_name: str, pick: Candidate | None, small: Candidate | None, large: Candidate | None,
            closest_large: Candidate | None, budget_ms: float) -> str:
    """One paragraph a manager understands; every figure in it is a figure of the table's rows."""
    if pick is None:
        return f"No model meets the constraints on {target_name}; see the closest misses and what to relax."
    assert pick.e2e_p95_ms is not None and pick.memory_bytes is not None and pick.memory_limit_bytes is not None
    lat = f"p95 latency is {secs(pick.e2e_p95_ms)} against a {secs(budget_ms)} budget"
    mem = f"it needs {gb(pick.memory_bytes)} of the {gb(pick.memory_limit_bytes)} it may use"
    if pick is large or (large is not None and pick.key == large.key):
        if small is not None and pick.quality_proxy is not None and small.quality_proxy is not None:
            return (f"Use {pick.model} ({pick.format}): the best large model meets every constraint on {target_name}; "
                    f"its quality proxy is {pick.quality_proxy - small.quality_proxy:.1f} points above the best small "
                    f"model, {small.model} ({small.format}); {lat}, and {mem}.")
        return f"Use {pick.model} ({pick.format}): it meets every constraint on {target_name}; {lat}, and {mem}."
    if large is not None:
        assert large.e2e_p95_ms is not None and large.memory_bytes is not None
        gain = (large.quality_proxy - pick.quality_proxy) if (
            large.quality_proxy is not None and pick.quality_proxy is not None) else 0.0
        return (f"Use {pick.model} ({pick.format}): the best passing large model, {large.model} ({large.format}), "
                f"gains only {gain:.1f} quality-proxy points for {large.e2e_p95_ms / max(pick.e2e_p95_ms, 1e-9):.1f}x "
                f"the latency and {large.memory_bytes / max(pick.memory_bytes, 1):.1f}x the memory; {lat}.")
    if closest_large is not None and closest_large.reasons:
        drop = ""
        if closest_large.quality_proxy is not None and pick.quality_proxy is not None:
            diff = closest_large.quality_proxy - pick.quality_proxy
            drop = f"; it would score {abs(diff):.1f} quality-proxy points {'higher' if diff >= 0 else 'lower'}"
        return (f"Use {pick.model} ({pick.format}): the closest large model, {closest_large.model} "
                f"({closest_large.format}), {'; '.join(closest_large.reasons)}{drop}; {lat}.")
    return f"Use {pick.model} ({pick.format}): no large model passes your filters for this task; {lat}."


def to_relax(misses: list[Candidate], k: Constraints, headroom: float) -> list[str]:
    """The smallest change of a budget that would let the closest miss pass. Filters the user set
    (licence, formats, size) are never proposed back: the misses are admissible ones already."""
    if not misses:
        return []
    c, tips = misses[0], []
    for key in c.binding:
        if key == "max_latency_ms" and c.e2e_p95_ms is not None:
            tips.append(f"raise --max-latency-ms to at least {c.e2e_p95_ms:.0f} ({c.model} {c.format})")
        elif key == "max_ttft_ms" and c.ttft_ms is not None:
            tips.append(f"raise --max-ttft-ms to at least {c.ttft_ms:.0f} ({c.model} {c.format})")
        elif key == "min_tokens_per_s" and c.tokens_per_s is not None:
            tips.append(f"lower --min-tokens-per-s to {c.tokens_per_s:.1f} ({c.model} {c.format})")
        elif key == "memory" and c.memory_bytes is not None:
            tips.append(f"use a device with more than {gb(c.memory_bytes / (1 - headroom))}, "
                        "a smaller format, or lower --memory-headroom")
        elif key == "min_quality" and c.quality_proxy is not None:
            tips.append(f"lower --min-quality to {c.quality_proxy:.1f} ({c.model} {c.format})")
    return tips


def what_it_would_take(best_large: Candidate | None, est) -> list[str]:
    if best_large is None or est is None:
        return []
    mem, tips = est.memory, []
    if mem.fits_with_format and mem.fits_with_format != best_large.format:
        tips.append(f"{best_large.model} fits in {mem.fits_with_format}")
    if mem.fits_with_gpus:
        tips.append(f"{best_large.model} ({best_large.format}) fits on {mem.fits_with_gpus} such GPUs "
                    "(tensor parallel)")
    if mem.fits_on_targets:
        tips.append(f"{best_large.model} ({best_large.format}) fits on: {', '.join(mem.fits_on_targets[:5])}")
    for r in best_large.reasons:
        if "latency" in r or "token" in r:
            tips.append(f"{best_large.model}: {r}")
    return tips


# --- under a load (recommend --rps / --concurrency) -----------------------------------------------------------

def deployment(c: Candidate, target_name: str | None = None) -> str:
    """'2 x NVIDIA L40S', '3 replicas of 2 x NVIDIA H100 SXM 80GB (6 GPUs)', '1 x aws-p5.48xlarge (8 replicas)'."""
    name = target_name or c.target
    tp = c.tensor_parallel or 1
    if c.instances:
        return (f"{c.instances} x {c.target} ({c.replicas} replica{'s' if c.replicas != 1 else ''}"
                f"{f' of TP {tp}' if tp > 1 else ''})")
    if tp == 1:
        return f"{c.replicas} x {name}"
    return f"{c.replicas} replica{'s' if c.replicas != 1 else ''} of {tp} x {name} ({c.gpus_total} GPUs)"


def cost_text(c: Candidate) -> str:
    if c.cost_per_hour_usd is None:
        return f"{c.gpus_total} GPUs (no price for {c.target})"
    return f"${c.cost_per_hour_usd:,.2f}/h"


def slo_text(max_ttft_ms: float | None, max_tpot_ms: float | None, max_latency_ms: float | None) -> str:
    parts = []
    if max_ttft_ms is not None:
        parts.append(f"TTFT <= {secs(max_ttft_ms)}")
    if max_tpot_ms is not None:
        parts.append(f"TPOT <= {max_tpot_ms:g} ms")
    if max_latency_ms is not None:
        parts.append(f"end-to-end <= {secs(max_latency_ms)}")
    return "p95 " + ", ".join(parts) if parts else "no latency limit"


def load_text(rps: float | None, concurrency: int | None) -> str:
    return f"{rps:g} req/s" if rps is not None else f"{concurrency} concurrent clients"


def load_verdict(where: str, pick: Candidate | None, best: Candidate | None, *, load: str, slo: str,
                 names: dict[str, str] | None = None, passing: int = 0, cheapest: Candidate | None = None,
                 tolerance: float = 100.0) -> str:
    """The answer under a load: the cheapest deployment within `tolerance` quality-proxy points of the best
    one that meets everything, weighed against the best-quality and the cheapest ones. Every figure is one
    of the table's."""
    names = names or {}
    if pick is None:
        return (f"No model meets {slo} at {load} on {where}; see the closest misses and what to relax "
                "(more GPUs per replica, a smaller format, or looser SLOs).")

    def q_diff(a: Candidate, b: Candidate) -> float | None:
        if a.quality_proxy is None or b.quality_proxy is None:
            return None
        return a.quality_proxy - b.quality_proxy

    def ratio(a: Candidate, b: Candidate) -> str:
        if a.cost_per_hour_usd and b.cost_per_hour_usd:
            return f" ({a.cost_per_hour_usd / b.cost_per_hour_usd:.1f}x the cost)"
        return ""

    per_mtok = f" (${pick.cost_per_mtok_usd:,.2f} per million generated tokens)" if pick.cost_per_mtok_usd else ""
    why = ("the cheapest of the {n} candidate{s} that do" if tolerance >= 100 else
           "the cheapest of the {n} candidate{s} that do within " + f"{tolerance:g}" +
           " quality-proxy points of the best")
    text = (f"Use {pick.model} ({pick.format}) on {deployment(pick, names.get(pick.target))}: it meets {slo} at "
            f"{load} for {cost_text(pick)}{per_mtok}, " + why.format(n=passing, s="s" if passing != 1 else ""))
    parts = []
    if best is not None and best.key != pick.key:
        diff = q_diff(best, pick)
        gain = f" and scores {diff:.1f} quality-proxy points higher" if diff is not None else ""
        parts.append(f"the best-quality model that meets them, {best.model} ({best.format}), needs "
                     f"{deployment(best, names.get(best.target))} for {cost_text(best)}{ratio(best, pick)}{gain}")
    if cheapest is not None and cheapest.key != pick.key:
        diff = q_diff(pick, cheapest)
        loss = f" but scores {diff:.1f} points lower" if diff is not None else ""
        parts.append(f"the cheapest, {cheapest.model} ({cheapest.format}) on "
                     f"{deployment(cheapest, names.get(cheapest.target))}, costs {cost_text(cheapest)}{loss}")
    if not parts:
        return text + "; it is also the best-quality one."
    return text + "; " + "; ".join(parts) + "."

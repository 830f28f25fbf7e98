"""Markdown rendering of a Recommendation (report.md, --markdown, the MLflow artifact)."""

from __future__ import annotations

from advisor.recommend.schema import Candidate, Recommendation
from advisor.recommend.select import table_key
from advisor.rules.table import gb, secs


def _q(c: Candidate) -> str:
    return "unscored" if c.quality_proxy is None else f"{c.quality_proxy:.1f}"


def _tps(c: Candidate) -> str:
    return "-" if c.tokens_per_s is None else f"{c.tokens_per_s:.1f}"


def _row(c: Candidate) -> str:
    status = "pass" if c.passed else ("not estimated: " if not c.estimated else "") + "; ".join(c.reasons)
    if c.role:
        status = f"**{c.role}** {status}"
    return (f"| {c.model} | {c.format} | {c.tier} | {_q(c)} | {gb(c.memory_bytes)} | {secs(c.ttft_ms)} | "
            f"{secs(c.e2e_p95_ms)} | {_tps(c)} | {c.latency_basis or '-'} | "
            f"{'-' if c.cost_per_mtok_usd is None else f'${c.cost_per_mtok_usd:.2f}'} | "
            f"{'yes' if c.on_frontier else ''} | {status} |")


def to_markdown(rec: Recommendation, *, max_rejected: int = 200) -> str:
    lines = [f"# model-advisor: {rec.task}", "",
             f"{rec.task_description} Request: {rec.shape.prompt_tokens} prompt tokens, "
             f"{rec.shape.new_tokens} new tokens, batch {rec.shape.batch}; runtime {rec.runtime}.", ""]
    for t in rec.targets:
        lines += [f"## {t.target_name} (`{t.target}`): {t.device_summary}", "", f"**{t.verdict}**", ""]
        if t.probing:
            lines += [f"Probing: {t.probing}.", ""]
        for label, c in (("Pick", t.pick), ("Best small", t.small), ("Best large", t.large)):
            if c is not None:
                lines.append(f"- {label}: {c.model} ({c.format}), quality proxy {_q(c)}, p95 {secs(c.e2e_p95_ms)}, "
                             f"{gb(c.memory_bytes)}, {_tps(c)} tokens/s, latency basis {c.latency_basis}")
        if t.what_it_would_take:
            lines += ["", "What it would take to run the best large model:"] + [f"- {w}" for w in t.what_it_would_take]
        if t.status == "no-candidate":
            lines += ["", "Closest misses:"] + [f"- {c.model} ({c.format}): {'; '.join(c.reasons)}"
                                                for c in t.closest_misses]
            lines += ["", "To relax:"] + [f"- {r}" for r in t.to_relax]
        lines += ["", "| model | format | tier | quality* | memory | TTFT "
                      "| p95 e2e | tok/s | basis | $/Mtok | frontier | result |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        cands = [c for c in rec.candidates if c.target == t.target]
        cands.sort(key=table_key)
        lines += [_row(c) for c in cands[: max_rejected]]
        lines.append("")
        if rec.load is not None:
            lines += _capacity_rows(cands)
    if rec.load is not None:
        lines += _capacity_section(rec)
    g = rec.generation
    lines += ["## Suggested generation settings", "",
              f"temperature {g.temperature}, top_p {g.top_p}, max_new_tokens {g.max_new_tokens}: {g.rationale}", "",
              "## Notes", ""] + [f"- {n}" for n in rec.notes] + [
              "", f"\\* {rec.quality_proxy}", "",
              f"_model-advisor {rec.advisor_version}, report {rec.report_id}, "
              f"catalog {rec.catalog_version}, {rec.created_at}_", ""]
    return "\n".join(lines)


# --- under a load (recommend --rps / --concurrency) ----------------------------------------------------------

def _money(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"${x:,.2f}{unit}"


def _capacity_rows(cands: list[Candidate]) -> list[str]:
    planned = [c for c in cands if c.replicas]
    if not planned:
        return []
    lines = ["Capacity at the load (cheapest layout per candidate):", "",
             "| model | format | layout | GPUs | $/h | $/Mtok "
             "| req/s per replica | p95 TTFT | p95 TPOT | p95 e2e | bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(planned, key=lambda c: (c.cost_per_hour_usd if c.cost_per_hour_usd is not None else float("inf"),
                                           c.gpus_total or 0, c.key)):
        per = (f"{c.max_rps_per_replica:.2f}" if c.max_rps_per_replica is not None else
               f"{c.max_clients_per_replica} clients" if c.max_clients_per_replica is not None else "-")
        tpot = "-" if c.tpot_p95_ms is None else f"{c.tpot_p95_ms:.1f} ms"
        lines.append(f"| {c.model} | {c.format} | {c.replicas} x TP{c.tensor_parallel} | {c.gpus_total} | "
                     f"{_money(c.cost_per_hour_usd)} | {_money(c.cost_per_mtok_usd)} | {per} | {secs(c.ttft_p95_ms)} | "
                     f"{tpot} | {secs(c.e2e_p95_ms)} | {c.load_bound} ({c.step_bound}) |")
    return lines + [""]


def _frontier_rows(rec: Recommendation) -> list[str]:
    """Across every target: the deployments that buy quality for money (each dearer one scores higher)."""
    ok = sorted((c for c in rec.candidates if c.passed and c.quality_proxy is not None and c.replicas),
                key=lambda c: (c.cost_per_hour_usd if c.cost_per_hour_usd is not None else float("inf"),
                               c.gpus_total or 0, -c.quality_proxy, c.key))
    stairs, top = [], float("-inf")
    for c in ok:
        if c.quality_proxy > top:
            stairs.append(c)
            top = c.quality_proxy
    if not stairs:
        return []
    lines = ["Quality for money across the targets (each row scores higher than every cheaper one):", "",
             "| model | format | target | quality* | layout | GPUs | $/h | $/Mtok | req/s per replica | p95 TTFT | "
             "p95 TPOT | p95 e2e | bound |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in stairs:
        per = (f"{c.max_rps_per_replica:.2f}" if c.max_rps_per_replica is not None else
               f"{c.max_clients_per_replica} clients" if c.max_clients_per_replica is not None else "-")
        tpot = "-" if c.tpot_p95_ms is None else f"{c.tpot_p95_ms:.1f} ms"
        lines.append(f"| {c.model} | {c.format} | {c.target} | {c.quality_proxy:.1f} "
                     f"| {c.replicas} x TP{c.tensor_parallel} "
                     f"| {c.gpus_total} | {_money(c.cost_per_hour_usd)} | {_money(c.cost_per_mtok_usd)} | {per} | "
                     f"{secs(c.ttft_p95_ms)} | {tpot} | {secs(c.e2e_p95_ms)} | {c.load_bound} |")
    return lines + [""]


def _capacity_section(rec: Recommendation) -> list[str]:
    load = rec.load
    pick = next((c for c in rec.candidates if c.key == load.pick), None)
    what = f"{load.rps:g} requests/s (Poisson)" if load.rps is not None else f"{load.concurrency} closed-loop clients"
    slo = ", ".join(f"{k} {v:g} ms" for k, v in (("TTFT", load.max_ttft_ms), ("TPOT", load.max_tpot_ms),
                                                  ("end-to-end", load.max_latency_ms)) if v is not None)
    lines = ["## Capacity plan", "", f"Load: {what}; SLOs (p95): {slo or 'none'}.", "", f"**{load.verdict}**", ""]
    lines += _frontier_rows(rec)
    if pick is not None and pick.serving_layout:
        lines += [f"Serving layout: {pick.serving_layout}.", ""]
        per = (f"{pick.max_rps_per_replica:.2f} req/s" if pick.max_rps_per_replica is not None else
               f"{pick.max_clients_per_replica} clients")
        lines += [f"One replica sustains {per} within the SLOs; {pick.bound_detail} (bound: {pick.load_bound}; "
                  f"decode step {pick.step_bound}).", ""]
        if pick.serve_commands:
            lines += ["One command per replica (vLLM):", "", "```bash"] + pick.serve_commands + ["```", ""]
        if pick.capacity_note:
            lines += [f"_{pick.capacity_note}_", ""]
    lines += [f"Method: {load.method}.", ""] + [f"- {n}" for n in load.notes]
    return lines + [""]


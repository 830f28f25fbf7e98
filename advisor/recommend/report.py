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
            lines += ["", "Closest misses:"] + [f"- {c.model} ({c.format}): {'; '.join(c.reasons)}" for c in t.closest_misses]
            lines += ["", "To relax:"] + [f"- {r}" for r in t.to_relax]
        lines += ["", "| model | format | tier | quality* | memory | TTFT | p95 e2e | tok/s | basis | $/Mtok | frontier | result |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        cands = [c for c in rec.candidates if c.target == t.target]
        cands.sort(key=table_key)
        lines += [_row(c) for c in cands[: max_rejected]]
        lines.append("")
    g = rec.generation
    lines += ["## Suggested generation settings", "",
              f"temperature {g.temperature}, top_p {g.top_p}, max_new_tokens {g.max_new_tokens}: {g.rationale}", "",
              "## Notes", ""] + [f"- {n}" for n in rec.notes] + [
              "", f"\\* {rec.quality_proxy}", "",
              f"_model-advisor {rec.advisor_version}, report {rec.report_id}, catalog {rec.catalog_version}, {rec.created_at}_", ""]
    return "\n".join(lines)

"""Log one Recommendation as one MLflow run that explains itself.

Run name:   the pick first, short: "llama-3.1-8b bf16 (summarization, a10g-24gb)".
Metrics:    the primary target's pick figures under plain names (ttft_ms, e2e_p95_ms, ...), rounded to
            what the estimate can tell; with several targets every target's pick also as `<target>/<name>`.
            e2e_p50_ms only where the figure has a spread (measured): spec and calibrated figures are one
            estimate, logged once as e2e_p95_ms, and the tag advisor.pick.latency_spread says so.
Tags:       where the numbers come from (advisor.pick.latency_basis / memory_basis, advisor.runtime,
            advisor.probing, advisor.catalog_version), every target's pick (advisor.<target>.pick), the
            target (advisor.target.*) and, apart from it, the machine the advisor ran on (advisor.gpu.*,
            advisor.cpu.*; advisor.hardware.scope says which is which). The description
            (mlflow.note.content) says all of this in sentences.
Table:      candidates.json (log_table), one row per candidate in table order (rank 1 first), with
            status/reason and a pick column; figures never estimated are empty, not 0.
"""

from __future__ import annotations

from pathlib import Path

from advisor.tracking import outbox
from advisor.tracking.artifacts import log_files
from advisor.tracking.hardware_tags import inventory_tags, local_inventory_tags
from advisor.tracking.limits import param, tag

PICK_METRICS = ("ttft_ms", "e2e_p50_ms", "e2e_p95_ms", "tokens_per_s", "memory_gb", "quality_proxy",
                "quality_proxy_upper", "quality_band_points", "cost_per_mtok_usd", "energy_kwh_per_mtok",
                "decode_ms_per_token",
                # under a load (recommend --rps / --concurrency)
                "replicas", "gpus_total", "tensor_parallel", "cost_per_hour_usd", "max_rps_per_replica",
                "max_clients_per_replica", "ttft_p95_ms", "tpot_p95_ms")
# What a reader needs first comes first (MLflow's table viewer shows the leftmost columns).
TABLE_COLUMNS = ("model", "format", "pick", "status", "quality_proxy", "e2e_p95_ms", "memory_gb", "reason", "rank",
                 "target", "tier", "quality_proxy_upper", "e2e_p50_ms", "ttft_ms", "tokens_per_s", "memory_limit_gb",
                 "cost_per_mtok_usd", "energy_kwh_per_mtok", "latency_basis", "memory_basis", "on_frontier", "fit",
                 "key",
                 # under a load
                 "tensor_parallel", "replicas", "gpus_total", "cost_per_hour_usd", "max_rps_per_replica",
                 "ttft_p95_ms", "tpot_p95_ms", "load_bound", "step_bound")
# Decimals a figure is logged with: the estimates are not better than this, and 18114.740933307316 ms
# reads as noise. Values that would round to under 3 significant digits keep 3.
DECIMALS = {"ttft_ms": 1, "e2e_p50_ms": 1, "e2e_p95_ms": 1, "decode_ms_per_token": 2, "tokens_per_s": 2,
            "memory_gb": 2, "memory_limit_gb": 2, "quality_proxy": 1, "quality_proxy_upper": 1,
            "quality_band_points": 1, "cost_per_mtok_usd": 4, "energy_kwh_per_mtok": 6, "cost_per_hour_usd": 3,
            "max_rps_per_replica": 2, "max_clients_per_replica": 1, "ttft_p95_ms": 1, "tpot_p95_ms": 2}
BASIS_MEANING = {
    "spec": "datasheet peaks x documented runtime efficiencies (catalog/hardware.yaml, catalog/runtimes.yaml)",
    "calibrated": "the same formulas fed with rates the microprobes measured on this machine",
    "measured": "timed on this machine by a probe",
    "profiled": "taken from a recorded profile",
}
NO_SPREAD = "none: a {basis} figure is one estimate with no p50/p95 spread, so only e2e_p95_ms is logged"


def tidy(value: float, decimals: int) -> float:
    """`value` rounded to `decimals`, or to 3 significant digits when that would keep fewer."""
    out = round(float(value), decimals)
    if value and abs(out) < 10 ** (3 - decimals - 1):
        return float(f"{value:.3g}")
    return out


def candidate_figures(c: dict) -> dict:
    """A candidate's figures with memory in GB (the schema keeps bytes), rounded; None stays None."""
    out = dict(c)
    for name in ("memory", "memory_limit"):
        raw = c.get(f"{name}_bytes")
        out[f"{name}_gb"] = raw / 1e9 if isinstance(raw, (int, float)) else None
    for name, decimals in DECIMALS.items():
        value = out.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = tidy(value, decimals)
    return out


def has_spread(c: dict) -> bool:
    p50, p95 = c.get("e2e_p50_ms"), c.get("e2e_p95_ms")
    return p50 is not None and p95 is not None and abs(p95 - p50) > 1e-9 * max(abs(p95), 1.0)


def pick_metrics(rec: dict) -> dict[str, float]:
    metrics: dict[str, float] = {}
    targets = rec.get("targets") or []
    for i, t in enumerate(targets):
        pick = t.get("pick")
        if not pick:
            continue
        figures = candidate_figures(pick)
        for name in PICK_METRICS:
            if name == "e2e_p50_ms" and not has_spread(pick):
                continue  # one estimate: logged once, as e2e_p95_ms
            value = figures.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if i == 0:
                    metrics[name] = float(value)
                if len(targets) > 1:
                    metrics[f"{outbox.safe_filename(t['target'])}/{name}"] = float(value)
    plan_key = (rec.get("load") or {}).get("pick")
    plan_pick = next((c for c in rec.get("candidates") or [] if c.get("key") == plan_key), None) if plan_key else None
    if plan_pick:   # the capacity plan's answer across every target
        figures = candidate_figures(plan_pick)
        for name in ("replicas", "gpus_total", "tensor_parallel", "cost_per_hour_usd", "cost_per_mtok_usd",
                     "max_rps_per_replica", "ttft_p95_ms", "tpot_p95_ms", "e2e_p95_ms", "quality_proxy"):
            value = figures.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"plan/{name}"] = float(value)
    return metrics


def recommendation_params(rec: dict) -> dict[str, str]:
    shape = rec.get("shape") or {}
    targets = rec.get("targets") or []
    params = {
        "task": rec.get("task"),
        "targets": ",".join(t.get("target", "?") for t in targets),
        "runtimes": ",".join(str(t.get("runtime")) for t in targets if t.get("runtime")) or None,
        "prompt_tokens": shape.get("prompt_tokens"),
        "new_tokens": shape.get("new_tokens"),
        "batch": shape.get("batch"),
        "latency_budget_ms": rec.get("latency_budget_ms"),
        "runtime": rec.get("runtime"),
        "probing": (targets[0].get("probing") if targets else None),
        "catalog_version": rec.get("catalog_version"),
        "schema_version": rec.get("schema_version"),
    }
    for key, value in (rec.get("constraints") or {}).items():
        if value is not None:
            params[f"constraint.{key}"] = ",".join(map(str, value)) if isinstance(value, list) else value
    load = rec.get("load") or {}
    if load:   # the traffic and the SLOs the capacity plan is for
        params.update({"load.rps": load.get("rps"), "load.concurrency": load.get("concurrency"),
                       "slo.max_ttft_ms": load.get("max_ttft_ms"), "slo.max_tpot_ms": load.get("max_tpot_ms"),
                       "slo.max_latency_ms": load.get("max_latency_ms"), "load.pick": load.get("pick")})
    return {k: param(v) for k, v in params.items() if v is not None}


def _short_pick(pick: dict | None) -> str:
    return f"{pick['model']}:{pick['format']}" if pick else "none"


def run_name(rec: dict) -> str:
    """The pick first, then what it is for; the target only when it is a named one."""
    targets = rec.get("targets") or [{}]
    primary = targets[0]
    pick = primary.get("pick")
    what = f"{pick['model']} {pick['format']}" if pick else "no pick"
    where = [rec.get("task") or "?"]
    if primary.get("target") and primary.get("target") != "local":
        where.append(primary["target"] + (f" +{len(targets) - 1}" if len(targets) > 1 else ""))
    elif len(targets) > 1:
        where.append(f"local +{len(targets) - 1}")
    return f"{what} ({', '.join(where)})"


def _is_local(t: dict) -> bool:
    return t.get("target") == "local"


def hardware_scope(rec: dict) -> str:
    """Which machine the advisor.gpu.* / advisor.cpu.* tags describe, said next to them."""
    named = [t for t in rec.get("targets") or [] if not _is_local(t)]
    if not named:
        return "advisor.gpu.*, advisor.cpu.* and advisor.ram_gb describe this machine, the one the figures are for"
    where = "; ".join(f"{t['target']}: {t.get('device_summary')}" for t in named)
    return ("advisor.gpu.*, advisor.cpu.* and advisor.ram_gb describe the machine the advisor ran on, not the "
            f"named target: the figures are for {where} (catalog datasheet, see advisor.target.*)")


def recommendation_tags(rec: dict) -> dict[str, str]:
    hardware = rec.get("hardware")
    try:
        hw_tags = inventory_tags(hardware) if hardware else local_inventory_tags()
    except Exception as exc:  # detection is best effort; the report itself is what matters
        hw_tags = {"advisor.error": tag(f"hardware detection failed: {type(exc).__name__}: {exc}")}
    targets = rec.get("targets") or [{}]
    primary = targets[0]
    pick = primary.get("pick") or {}
    tags = {
        **hw_tags,
        "advisor.hardware.scope": hardware_scope(rec),
        "advisor.task": rec.get("task"),
        "advisor.verdict": primary.get("verdict"),
        "advisor.pick": pick.get("key") or "none",
        "advisor.pick.model": pick.get("model"),
        "advisor.pick.format": pick.get("format"),
        "advisor.pick.latency_basis": pick.get("latency_basis"),
        "advisor.pick.memory_basis": pick.get("memory_basis"),
        "advisor.pick.latency_spread": _spread_text(pick) if pick else None,
        "advisor.runtime": rec.get("runtime"),
        "advisor.probing": primary.get("probing"),
        "advisor.catalog_version": rec.get("catalog_version"),
        "advisor.status": primary.get("status"),
        "advisor.target": primary.get("target"),
        "advisor.target_name": primary.get("target_name"),
        "advisor.target.kind": "this machine" if _is_local(primary) else "named target (catalog datasheet figures)",
        "advisor.target.devices": primary.get("device_summary"),
        "advisor.version": rec.get("advisor_version"),
        "mlflow.runName": run_name(rec),
        "mlflow.note.content": description(rec),
    }
    if len(targets) > 1:
        for t in targets:
            key = outbox.safe_filename(t.get("target", "?"))
            p = t.get("pick") or {}
            tags[f"advisor.{key}.pick"] = _short_pick(t.get("pick"))
            tags[f"advisor.{key}.status"] = t.get("status")
            tags[f"advisor.{key}.latency_basis"] = p.get("latency_basis")
            tags[f"advisor.{key}.devices"] = t.get("device_summary")
    if primary.get("hardware_fingerprint") and "advisor.hardware.fingerprint" not in tags:
        tags["advisor.hardware.fingerprint"] = primary["hardware_fingerprint"]
    return {k: tag(v) for k, v in tags.items() if v not in (None, "")}


def _spread_text(pick: dict) -> str:
    if has_spread(pick):
        f = candidate_figures(pick)
        return f"measured: p50 {f['e2e_p50_ms']:g} ms, p95 {f['e2e_p95_ms']:g} ms"
    return NO_SPREAD.format(basis=pick.get("latency_basis") or "spec")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pick_line(t: dict) -> str:
    """One line per target, its figures written as the terminal table and the verdict write them."""
    from advisor.rules.table import gb, secs

    p = t.get("pick") or {}
    if not p:
        return f"**{t.get('target')}** ({_cell(t.get('device_summary'))}): no model meets the constraints"
    quality = "unscored" if p.get("quality_proxy") is None else f"quality proxy {p['quality_proxy']:.1f}"
    return (f"**{t.get('target')}** ({_cell(t.get('device_summary'))}): **{_short_pick(p)}**, "
            f"p95 {secs(p.get('e2e_p95_ms'))} ({p.get('latency_basis')}), {gb(p.get('memory_bytes'))} "
            f"({p.get('memory_basis')}), {quality}")


def description(rec: dict) -> str:
    """The run page's description (Markdown): the answer first (the page shows its first lines), then
    where every number comes from, then every target's verdict in full."""
    targets = rec.get("targets") or []
    if len(targets) == 1:
        lines = [f"**{_cell(targets[0].get('verdict'))}**", "", _pick_line(targets[0]), ""]
    else:
        lines = [f"- {_pick_line(t)}" for t in targets] + [""]
    bases = sorted({b for t in targets for b in ((t.get("pick") or {}).get("latency_basis"),
                                                 (t.get("pick") or {}).get("memory_basis")) if b})
    lines += ["Where the numbers come from:"]
    lines += [f"- **{b}**: {BASIS_MEANING.get(b, b)}" for b in bases]
    pick = (targets[0].get("pick") if targets else None) or {}
    if pick and not has_spread(pick):
        lines.append(f"- latency spread: {NO_SPREAD.format(basis=pick.get('latency_basis') or 'spec')}")
    lines += [f"- runtime modelled: {rec.get('runtime') or '-'}; probing: "
              + "; ".join(f"{t.get('target')}: {t.get('probing') or '-'}" for t in targets),
              f"- catalog {rec.get('catalog_version')}; quality is a proxy: {rec.get('quality_proxy')}",
              f"- {hardware_scope(rec)}",
              "- every candidate, with status and reason: the `candidates.json` table; the full report: "
              "`recommendation.json`, `report.md`, `pareto.png`"]
    if len(targets) > 1:
        lines += [""] + [f"**{_cell(t.get('target_name'))}** (`{t.get('target')}`): {t.get('verdict')}\n"
                         for t in targets]
    return "\n".join(lines)


def candidates_table(rec: dict) -> dict[str, list]:
    """One row per candidate in table order (the report keeps them so; sorted again for older reports)."""
    from advisor.recommend.schema import Candidate
    from advisor.recommend.select import table_key

    order = {t.get("target"): i for i, t in enumerate(rec.get("targets") or [])}
    raw = list(rec.get("candidates") or [])
    try:
        models = [Candidate.model_validate(c) for c in raw]
        raw = [c for _, c in sorted(zip(models, raw), key=lambda mc: (order.get(mc[0].target, 99), table_key(mc[0])))]
    except Exception:  # a report from another version: its own order
        pass
    rows = []
    for i, c in enumerate(raw, 1):
        f = candidate_figures(c)
        passed = bool(c.get("passed"))
        estimated = c.get("e2e_p95_ms") is not None and c.get("memory_bytes") is not None
        f["status"] = c.get("status") or ("pass" if passed else "rejected" if estimated else "not-estimated")
        f["reason"] = "; ".join(c.get("reasons") or [])
        f["pick"] = c.get("role") or ""
        f["rank"] = c.get("rank") or i
        f["fit"] = c.get("verdict")
        rows.append(f)
    return {col: [r.get(col) for r in rows] for col in TABLE_COLUMNS}


def _ensure_plot(folder: Path, payload: dict) -> None:
    """Reports saved with --no-mlflow skip the plot (it costs a second); render it before sending."""
    target = Path(folder) / "pareto.png"
    if target.exists():
        return
    from advisor.extras import have

    if not have("matplotlib"):  # the core install: the run goes without its plot
        return
    try:
        from advisor.recommend.plot import pareto_png, quality_cost_png
        from advisor.recommend.schema import Recommendation

        rec = Recommendation.model_validate(payload)
        (quality_cost_png if rec.load is not None else pareto_png)(rec, target)
    except Exception:  # a report from another version: send what there is
        pass


def log_recommendation(client, run_id: str, folder: Path, payload: dict) -> None:
    from mlflow.entities import Metric, Param, RunTag

    from advisor.tracking.limits import now_ms

    ts = now_ms()
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, ts, 0) for k, v in pick_metrics(payload).items()],
        params=[Param(k, v) for k, v in recommendation_params(payload).items()],
        tags=[RunTag(k, v) for k, v in recommendation_tags(payload).items()],
    )
    _ensure_plot(folder, payload)
    log_files(client, run_id, folder)
    if payload.get("candidates"):
        log_table(client, run_id, candidates_table(payload), "candidates.json")


def log_table(client, run_id: str, table: dict[str, list], artifact_file: str) -> None:
    """MlflowClient.log_table where pandas is installed; otherwise the same artifact without it.

    mlflow-skinny (the core install) has no pandas, which log_table imports. The fallback writes
    what log_table writes for a new file: pandas' orient="split" JSON without the index, and the
    `mlflow.loggedArtifacts` tag that makes the UI show it as a table.
    """
    from advisor.extras import have

    if have("pandas"):
        client.log_table(run_id, data=table, artifact_file=artifact_file)
        return
    import json

    columns = list(table)
    rows = [list(row) for row in zip(*(table[c] for c in columns))]
    client.log_text(run_id, json.dumps({"columns": columns, "data": rows}), artifact_file)
    logged = json.loads(client.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
    entry = {"path": artifact_file, "type": "table"}
    if entry not in logged:
        client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps(logged + [entry]))

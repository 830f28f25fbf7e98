"""Log one Recommendation as one MLflow run: params, tags, the pick's metrics, artifacts, the table.

Metrics: the primary target's pick figures under plain names (ttft_ms, e2e_p95_ms, ...); with
several targets every target's pick is also logged as `<target>/<name>`.
"""

from __future__ import annotations

from pathlib import Path

from advisor.tracking import outbox
from advisor.tracking.hardware_tags import inventory_tags, local_inventory_tags
from advisor.tracking.artifacts import log_files
from advisor.tracking.limits import param, tag

PICK_METRICS = ("ttft_ms", "e2e_p50_ms", "e2e_p95_ms", "tokens_per_s", "memory_gb", "quality_proxy",
                "cost_per_mtok_usd", "energy_kwh_per_mtok", "decode_ms_per_token",
                # under a load (recommend --rps / --concurrency)
                "replicas", "gpus_total", "tensor_parallel", "cost_per_hour_usd", "max_rps_per_replica",
                "max_clients_per_replica", "ttft_p95_ms", "tpot_p95_ms")
TABLE_COLUMNS = ("key", "model", "format", "target", "tier", "verdict", "passed", "on_frontier",
                 "memory_gb", "ttft_ms", "e2e_p50_ms", "e2e_p95_ms", "tokens_per_s", "quality_proxy",
                 "cost_per_mtok_usd", "energy_kwh_per_mtok", "latency_basis", "memory_basis", "reasons",
                 "tensor_parallel", "replicas", "gpus_total", "cost_per_hour_usd", "max_rps_per_replica",
                 "ttft_p95_ms", "tpot_p95_ms", "load_bound", "step_bound")


def candidate_figures(c: dict) -> dict:
    """A candidate's figures with memory in GB (the schema keeps bytes)."""
    out = dict(c)
    out["memory_gb"] = round(c["memory_bytes"] / 1e9, 3) if c.get("memory_bytes") is not None else None
    return out


def pick_metrics(rec: dict) -> dict[str, float]:
    metrics: dict[str, float] = {}
    targets = rec.get("targets") or []
    for i, t in enumerate(targets):
        pick = t.get("pick")
        if not pick:
            continue
        figures = candidate_figures(pick)
        for name in PICK_METRICS:
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
    params = {
        "task": rec.get("task"),
        "targets": ",".join(t.get("target", "?") for t in rec.get("targets") or []),
        "runtimes": ",".join(str(t.get("runtime")) for t in rec.get("targets") or [] if t.get("runtime")) or None,
        "prompt_tokens": shape.get("prompt_tokens"),
        "new_tokens": shape.get("new_tokens"),
        "batch": shape.get("batch"),
        "latency_budget_ms": rec.get("latency_budget_ms"),
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


def recommendation_tags(rec: dict) -> dict[str, str]:
    hardware = rec.get("hardware")
    try:
        hw_tags = inventory_tags(hardware) if hardware else local_inventory_tags()
    except Exception as exc:  # detection is best effort; the report itself is what matters
        hw_tags = {"advisor.error": tag(f"hardware detection failed: {type(exc).__name__}: {exc}")}
    primary = (rec.get("targets") or [{}])[0]
    pick = primary.get("pick") or {}
    tags = {
        **hw_tags,
        "advisor.task": rec.get("task"),
        "advisor.verdict": primary.get("verdict"),
        "advisor.pick": pick.get("key") or "none",
        "advisor.pick.model": pick.get("model"),
        "advisor.pick.format": pick.get("format"),
        "advisor.status": primary.get("status"),
        "advisor.target": primary.get("target"),
        "advisor.target_name": primary.get("target_name"),
        "advisor.device_summary": primary.get("device_summary"),
        "advisor.version": rec.get("advisor_version"),
        "mlflow.note.content": primary.get("verdict"),
    }
    if primary.get("hardware_fingerprint") and "advisor.hardware.fingerprint" not in tags:
        tags["advisor.hardware.fingerprint"] = primary["hardware_fingerprint"]
    if pick:
        tags["mlflow.runName"] = f"{rec.get('task')}@{primary.get('target')}: {pick.get('key')}"
    return {k: tag(v) for k, v in tags.items() if v not in (None, "")}


def candidates_table(rec: dict) -> dict[str, list]:
    rows = [candidate_figures(c) for c in rec.get("candidates") or []]
    table = {col: [r.get(col) for r in rows] for col in TABLE_COLUMNS}
    table["reasons"] = ["; ".join(r.get("reasons") or []) for r in rows]
    return table


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

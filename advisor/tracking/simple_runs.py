"""Runs for `advisor estimate --mlflow` and `advisor probe --mlflow`: params, metrics, the JSON.

Numbers in the payload become metrics (nested keys joined with '.'), short strings and booleans
at the top level become params; the payload file and any extra files are the artifacts.
"""

from __future__ import annotations

from pathlib import Path

from advisor.tracking.artifacts import log_files
from advisor.tracking.limits import now_ms, param, tag

_SKIP = {"schema_version", "report_id", "created_at", "notes", "explanation"}
MAX_METRICS = 500


def flatten(payload: dict, prefix: str = "") -> tuple[dict[str, str], dict[str, float]]:
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    for key, value in payload.items():
        if key in _SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            params[name] = str(value).lower()
        elif isinstance(value, (int, float)):
            metrics[name] = float(value)
        elif isinstance(value, str) and not prefix and len(value) <= 500:
            params[name] = value
        elif isinstance(value, dict):
            sub_params, sub_metrics = flatten(value, prefix=f"{name}.")
            metrics.update(sub_metrics)
            params.update({k: v for k, v in sub_params.items() if v in ("true", "false")})
    return params, metrics


def _log_flat(client, run_id: str, folder: Path, payload: dict, tags: dict) -> None:
    from mlflow.entities import Metric, Param, RunTag

    params, metrics = flatten(payload)
    ts = now_ms()
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, ts, 0) for k, v in list(metrics.items())[:MAX_METRICS]],
        params=[Param(k, param(v)) for k, v in params.items()],
        tags=[RunTag(k, tag(v)) for k, v in tags.items() if v not in (None, "")],
    )
    log_files(client, run_id, folder)


def log_estimate(client, run_id: str, folder: Path, payload: dict) -> None:
    memory = payload.get("memory") or {}
    tags = {"advisor.model": payload.get("model"), "advisor.target": payload.get("target"),
            "advisor.verdict": memory.get("verdict"),
            "mlflow.runName": f"estimate {payload.get('model')}@{payload.get('target')}"}
    _log_flat(client, run_id, folder, payload, tags)


def log_probe(client, run_id: str, folder: Path, payload: dict) -> None:
    from advisor.tracking.hardware_tags import local_inventory_tags

    try:
        tags = local_inventory_tags()
    except Exception as exc:  # best effort: the measurement is what matters
        tags = {"advisor.error": f"hardware detection failed: {type(exc).__name__}: {exc}"}
    tags.update({"advisor.model": payload.get("model"), "advisor.device": payload.get("device"),
                 "mlflow.runName": f"probe {payload.get('model') or payload.get('device') or ''}".strip()})
    _log_flat(client, run_id, folder, payload, tags)

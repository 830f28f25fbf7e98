"""A check report in MLflow: one run, plus tags (and an alias on pass) on the registered model version.

Run:            params model/targets/thresholds, metrics (primary target plain, every target as
                `<target>/<figure>` when several), tags advisor.kind=check, advisor.check.status.
Model version:  advisor.check.status (pass/fail), advisor.check.target (primary), advisor.check.targets,
                advisor.check.<figure> for the primary target, advisor.check.<target>.<figure> for
                every target when several, advisor.check.failed, .basis, .run_id, .report_id.
Alias:          set_alias_on_pass moves only when every check passed.

The report is saved to the outbox first; `log_check` is the "check" logger that
advisor.tracking.deliver calls, so `advisor log` re-sends a saved check exactly like the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.check.schema import CheckReport, borrowed_from, label_of

FIGURES = ("memory_gb", "memory_available_gb", "e2e_p95_ms", "ttft_ms", "tokens_per_s", "quality_proxy")


def _safe(name: str) -> str:
    from advisor.tracking.outbox import safe_filename

    return safe_filename(name)


def check_params(payload: dict) -> dict[str, str]:
    from advisor.tracking.limits import param

    policy = payload.get("policy") or {}
    model = payload.get("model") or {}
    params: dict[str, Any] = {
        "model": model.get("id"), "model_source": model.get("kind"), "model_uri": model.get("uri"),
        "targets": ",".join(t["target"] for t in payload.get("targets") or []),
        "task": payload.get("task"), "format": payload.get("format"),
        "prompt_tokens": payload.get("prompt_tokens"), "new_tokens": payload.get("new_tokens"),
        "batch": payload.get("batch"), "schema_version": payload.get("schema_version"),
    }
    for key, value in (policy.get("thresholds") or {}).items():
        params[f"threshold.{key}"] = value
    for t in policy.get("targets") or []:
        for key, value in t.items():
            if key != "id":
                params[f"threshold.{_safe(t['id'])}.{key}"] = value
    if policy.get("license") is not None:
        params["license_allow"] = ",".join(policy["license"])
    return {k: param(v) for k, v in params.items() if v is not None}


def check_metrics(payload: dict) -> dict[str, float]:
    targets = payload.get("targets") or []
    metrics: dict[str, float] = {}
    for i, t in enumerate(targets):
        figures = dict(t.get("figures") or {})
        figures["checks_failed"] = sum(1 for c in t.get("checks") or [] if c["status"] == "fail")
        for name, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if i == 0:
                    metrics[name] = float(value)
                if len(targets) > 1:
                    metrics[f"{_safe(t['target'])}/{name}"] = float(value)
    metrics["passed"] = 1.0 if payload.get("status") == "pass" else 0.0
    return metrics


def check_tags(payload: dict) -> dict[str, str]:
    from advisor.tracking.limits import tag

    targets = payload.get("targets") or [{}]
    primary = targets[0]
    model = payload.get("model") or {}
    tags = {
        **_hardware_tags(payload),
        "advisor.kind": "check",
        "advisor.check.status": payload.get("status"),
        "advisor.check.model": model.get("id"),
        "advisor.check.target": primary.get("target"),
        "advisor.check.targets": ",".join(t.get("target", "?") for t in targets),
        "advisor.check.failed": ",".join(payload.get("failed") or []) or None,
        "advisor.check.latency_basis": primary.get("latency_basis"),
        "advisor.check.memory_basis": primary.get("memory_basis"),
        "advisor.check.label": label_of(model),
        "advisor.check.catalog_entry": borrowed_from(model),
        "mlflow.runName": f"check {label_of(model)} ({','.join(t.get('target', '?') for t in targets)}): "
                          f"{payload.get('status')}",
        "mlflow.note.content": "; ".join(f"{c['target']}:{c['name']} {c['status']} ({c['message']})"
                                         for t in targets for c in t.get("checks") or []),
    }
    if model.get("registered_model"):
        tags["advisor.check.registered_model"] = model["registered_model"]
        tags["advisor.check.model_version"] = model.get("version")
    return {k: tag(v) for k, v in tags.items() if v not in (None, "")}


def _hardware_tags(payload: dict) -> dict[str, str]:
    """The machine the check ran on (a check run is made through the client API, so MLflow's run-context
    providers never tag it), and which targets the figures are for."""
    from advisor.tracking.hardware_tags import local_inventory_tags

    try:
        tags = local_inventory_tags()
    except Exception as exc:  # detection is best effort; the report itself is what matters
        tags = {"advisor.error": f"hardware detection failed: {type(exc).__name__}: {exc}"}
    named = [t for t in payload.get("targets") or [] if t.get("target") != "local"]
    if named:
        where = ", ".join(f"{t['target']} ({t.get('target_name')})" for t in named)
        tags["advisor.hardware.scope"] = ("advisor.gpu.*, advisor.cpu.* and advisor.ram_gb describe the machine "
                                          f"the check ran on, not the named target: the figures are for {where} "
                                          "(catalog datasheet)")
    else:
        tags["advisor.hardware.scope"] = ("advisor.gpu.*, advisor.cpu.* and advisor.ram_gb describe this machine, "
                                          "the one the figures are for")
    return tags


def version_tags(payload: dict, run_id: str | None) -> dict[str, str]:
    """Tags written on the registered model version."""
    targets = payload.get("targets") or []
    primary = targets[0] if targets else {}
    tags: dict[str, Any] = {
        "advisor.check.status": payload.get("status"),
        "advisor.check.target": primary.get("target"),
        "advisor.check.targets": ",".join(t["target"] for t in targets),
        "advisor.check.failed": ",".join(payload.get("failed") or []) or "none",
        "advisor.check.basis": f"memory {primary.get('memory_basis')}, latency {primary.get('latency_basis')}",
        "advisor.check.report_id": payload.get("report_id"),
        "advisor.check.run_id": run_id,
        "advisor.check.checked_at": payload.get("created_at"),
    }
    for name in FIGURES:
        if name in (primary.get("figures") or {}):
            tags[f"advisor.check.{name}"] = f"{primary['figures'][name]:g}"
    if len(targets) > 1:
        for t in targets:
            tags[f"advisor.check.{_safe(t['target'])}.status"] = t["status"]
            for name in FIGURES:
                if name in (t.get("figures") or {}):
                    tags[f"advisor.check.{_safe(t['target'])}.{name}"] = f"{t['figures'][name]:g}"
    return {k: str(v) for k, v in tags.items() if v is not None}


def log_check(client, run_id: str, folder: Path, payload: dict) -> None:
    """The deliverer's logger for kind 'check' (advisor.tracking.deliver.KIND_LOGGERS)."""
    from mlflow.entities import Metric, Param, RunTag

    from advisor.tracking.artifacts import log_files
    from advisor.tracking.limits import now_ms

    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="json")
    ts = now_ms()
    client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in check_metrics(payload).items()],
                     params=[Param(k, v) for k, v in check_params(payload).items()],
                     tags=[RunTag(k, v) for k, v in check_tags(payload).items()])
    if folder is not None:
        log_files(client, run_id, folder)
    model = payload.get("model") or {}
    name, version = model.get("registered_model"), model.get("version")
    if not name or not version:
        return
    for key, value in version_tags(payload, run_id).items():
        client.set_model_version_tag(name, version, key, value)
    alias = ((payload.get("policy") or {}).get("mlflow") or {}).get("set_alias_on_pass")
    if alias:
        if payload.get("status") == "pass":
            client.set_registered_model_alias(name, alias, version)
            client.set_tag(run_id, "advisor.check.alias", f"{alias} -> version {version}")
        else:
            client.set_tag(run_id, "advisor.check.alias", f"{alias} not moved: the check failed")


def logging_uri(policy) -> str | None:
    """Where the check is logged, or None when it is not.

    mlflow.enabled false (--no-mlflow): never. True (--mlflow, --tracking-uri): the URI, else the
    embedded default. Unset: only when a tracking URI is given (policy, --tracking-uri or
    MLFLOW_TRACKING_URI): a gate's working folder is the user's repository, so no mlflow.db there.
    """
    from advisor.tracking.connection import resolve_tracking_uri, tracking_uri_given

    enabled, uri = policy.mlflow.enabled, policy.mlflow.tracking_uri
    if enabled is False or (enabled is None and not tracking_uri_given(uri)):
        return None
    return resolve_tracking_uri(uri)


def track(report: CheckReport, *, tracking_uri: str | None = None, experiment: str | None = None,
          files: dict[str, str | bytes] | None = None) -> tuple[Path, str]:
    """Save the report to the outbox, then send it. Returns (folder, run_id).

    MLflow down -> InfraError (exit 3) whose message names the folder; `advisor log FOLDER` re-sends.
    """
    from advisor.check.mlflowio import preflight
    from advisor.errors import InfraError
    from advisor.tracking import connection, deliver, outbox

    folder = outbox.save_report("check", report, files)  # on disk before MLflow is contacted
    uri = connection.resolve_tracking_uri(tracking_uri)
    try:
        preflight(uri)
    except InfraError as exc:
        raise InfraError(f"{exc.message}: report kept at {folder}; send it later with `advisor log {folder}`") from None
    return folder, deliver.deliver(folder, tracking_uri=uri, experiment=experiment)

"""`advisor.check(...)`: the pre-deployment gate. Policy in, one estimate per target, a CheckReport out.

Named targets are spec-based (no torch needed); `local` goes through the estimator's probes
unless probe=False. Nothing here talks to MLflow except to resolve a models:/ URI; logging the
result is advisor.check.tracking's job.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advisor.check.policy import DEFAULT_FORMAT, DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_TOKENS, Policy, load_policy, merge
from advisor.check.schema import CheckReport, TargetResult
from advisor.errors import UsageError

LOCAL = "local"


def resolve_policy(policy: Policy | dict | str | Path | None = None, **flags: Any) -> Policy:
    """The effective policy: a file (path), a dict or a Policy, with the given flags laid over it."""
    if isinstance(policy, (str, Path)):
        policy = load_policy(policy)
    elif isinstance(policy, dict):
        from pydantic import ValidationError

        from advisor.check.policy import validation_problem

        try:
            policy = Policy.model_validate(policy)
        except ValidationError as exc:
            raise validation_problem("policy", {}, exc) from None
    return merge(policy, **flags)


def check(model: str | None = None, *, policy: Policy | dict | str | Path | None = None,
          targets: tuple[str, ...] | list[str] = (), model_path: str | None = None,
          model_uri: str | None = None, task: str | None = None, format: str | None = None,
          runtime: str | None = None, prompt_tokens: int | None = None, new_tokens: int | None = None,
          batch: int | None = None, max_latency_ms: float | None = None, max_ttft_ms: float | None = None,
          min_tokens_per_s: float | None = None, memory_headroom: float | None = None,
          license: list[str] | tuple[str, ...] | None = None, min_quality: float | None = None,
          max_params: float | None = None, max_tpot_ms: float | None = None, min_rps: float | None = None,
          max_cost_per_hour_usd: float | None = None, gpu_hour_cost: float | None = None,
          require_known: tuple[str, ...] = (), probe: bool | None = None,
          catalog_paths: tuple[str, ...] | list[str] = (), tracking_uri: str | None = None) -> CheckReport:
    """Check one model against a policy on one or more targets; arguments override the policy.

    Returns the report; report.passed / report.exit_code give the verdict. Does not log to MLflow
    (see advisor.check.tracking.log_check). Raises UsageError for bad input.
    """
    effective = resolve_policy(
        policy, model=model, model_path=model_path, model_uri=model_uri, task=task, format=format, runtime=runtime,
        prompt_tokens=prompt_tokens, new_tokens=new_tokens, batch=batch, max_latency_ms=max_latency_ms,
        max_ttft_ms=max_ttft_ms, min_tokens_per_s=min_tokens_per_s, memory_headroom=memory_headroom,
        license=list(license) if license else None, min_quality=min_quality, max_params=max_params,
        max_tpot_ms=max_tpot_ms, min_rps=min_rps, max_cost_per_hour_usd=max_cost_per_hour_usd,
        gpu_hour_cost=gpu_hour_cost, require_known=tuple(require_known), probe=probe,
        targets=tuple(targets), catalog=tuple(catalog_paths), tracking_uri=tracking_uri)
    return run_policy(effective)


def _runtime(catalog, runtime_id: str):
    from advisor.estimate.engine import resolve_runtime

    return resolve_runtime(catalog.runtimes, runtime_id)


def target_ids(policy: Policy) -> list[str]:
    return [t.id for t in policy.targets] or [LOCAL]


def request_shape(policy: Policy, task_profile) -> tuple[int, int, int]:
    """Policy/flags first, then the task profile, then the defaults."""
    r = policy.request
    return (r.prompt_tokens or (task_profile.prompt_tokens if task_profile else DEFAULT_PROMPT_TOKENS),
            r.new_tokens or (task_profile.new_tokens if task_profile else DEFAULT_NEW_TOKENS),
            r.batch or (task_profile.batch if task_profile else 1))


def run_policy(policy: Policy) -> CheckReport:
    from advisor import __version__
    from advisor.catalog.loader import get_catalog
    from advisor.check import source

    catalog = get_catalog(tuple(policy.catalog))
    targets = target_ids(policy)
    for t in targets:  # fail on a typo before any work
        if t != LOCAL:
            catalog.target(t)
    task_profile = catalog.task(policy.task) if policy.task else None
    if policy.thresholds.min_quality is not None or any(t.min_quality is not None for t in policy.targets):
        if task_profile is None:
            raise UsageError("min_quality needs a task (the quality proxy is per task)", hint="add --task")
    fmt = policy.format or DEFAULT_FORMAT
    prompt_tokens, new_tokens, batch = request_shape(policy, task_profile)

    with tempfile.TemporaryDirectory(prefix="advisor-check-") as work:
        resolved = source.resolve(model=policy.model, model_path=policy.model_path, model_uri=policy.model_uri,
                                  catalog=catalog, workdir=Path(work), tracking_uri=policy.mlflow.tracking_uri)
        results = [_check_target(policy, t, resolved, catalog, task_profile, fmt, prompt_tokens, new_tokens, batch)
                   for t in targets]

    failed = [f"{r.target}:{c.name}" for r in results for c in r.checks if c.status == "fail"]
    policy_data = policy.model_dump(mode="json", exclude_none=True)
    if policy.mlflow.tracking_uri:  # reports are stored and logged: never with credentials
        from advisor.tracking.connection import redact

        policy_data["mlflow"]["tracking_uri"] = redact(policy.mlflow.tracking_uri)
    notes = []
    if not resolved.source.in_catalog:
        notes.append("model not in the catalog: licence and quality are unknown (fail only with require_known)")
    return CheckReport(
        report_id=str(uuid.uuid4()), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        advisor_version=__version__, status="fail" if failed else "pass", model=resolved.source,
        task=policy.task, format=fmt, prompt_tokens=prompt_tokens, new_tokens=new_tokens, batch=batch,
        policy=policy_data, targets=results, failed=failed, notes=notes)


def _check_target(policy: Policy, target: str, resolved, catalog, task_profile, fmt: str, prompt_tokens: int,
                  new_tokens: int, batch: int) -> TargetResult:
    from advisor.check import rules
    from advisor.estimate.engine import estimate
    from advisor.rules.limits import Limits
    from advisor.rules.resolve import resolve_rules

    thresholds = policy.effective_thresholds(target)
    ruleset = resolve_rules(Limits(**thresholds), catalog=catalog, task=task_profile, license=policy.license,
                            require_known=set(policy.require_known))
    gpus = policy.gpus_for(target) or (1 if target == LOCAL else catalog.target(target).gpus)
    est = estimate(resolved.estimate_model, target=target, format=fmt, batch=batch, prompt_tokens=prompt_tokens,
                   new_tokens=new_tokens, gpus=gpus, catalog_paths=tuple(policy.catalog), runtime=policy.runtime,
                   probe=policy.probe if target == LOCAL else False)  # named targets never import torch
    entry = resolved.catalog_entry
    quality, detail = None, ""
    if entry is not None and task_profile is not None:
        from advisor.recommend.quality import quality_score

        q = quality_score(entry, task_profile, fmt, catalog)
        quality, detail = q.score, ", ".join(q.used)
    load = None
    lim = ruleset.limits
    if any(v is not None for v in (lim.min_rps, lim.max_tpot_ms, lim.max_cost_per_hour_usd)):
        from advisor.check.capacity import load_figures
        from advisor.errors import UsageError as _Usage

        try:
            model = resolved.estimate_model
            entry_for_load = model if not isinstance(model, str) else catalog.model(model)
            load = load_figures(est, entry_for_load, catalog.format(fmt), _runtime(catalog, est.runtime),
                                catalog, target, gpus, lim, prompt=prompt_tokens, new=new_tokens,
                                headroom=ruleset.headroom, gpu_hour_cost=policy.gpu_hour_cost)
        except _Usage as exc:   # e.g. a local CPU without datasheet peaks: the load rules say "not planned"
            from advisor.check.capacity import LoadFigures

            load = LoadFigures(tpot_ms=est.latency.decode_ms_per_token, notes=[f"capacity: {exc.message}"])
    checks = rules.check_results(est, target, ruleset, entry, quality, catalog.licenses, quality_detail=detail,
                                 params_total=resolved.source.params_total, load=load)
    figures = {"memory_gb": est.memory.per_device_bytes / 1e9, "memory_available_gb": est.memory.available_bytes / 1e9,
               "e2e_p95_ms": est.latency.e2e_p95_ms, "ttft_ms": est.latency.ttft_ms,
               "tokens_per_s": est.latency.tokens_per_s, "tpot_ms": est.latency.decode_ms_per_token}
    if load is not None:
        figures.update({k: float(v) for k, v in load.figures.items() if v is not None})
        if load.rps is not None:
            figures["rps_sustained"] = load.rps
        if load.cost_per_hour_usd is not None:
            figures["cost_per_hour_usd"] = load.cost_per_hour_usd
    if quality is not None:
        figures["quality_proxy"] = quality
    name = "this machine" if target == LOCAL else catalog.target(target).name
    notes = list(est.notes) + (load.notes if load is not None else [])
    if ruleset.latency_note:
        notes.append(f"latency budget{ruleset.latency_note}: {ruleset.limits.max_latency_ms:g} ms end-to-end p95")
    return TargetResult(target=target, target_name=name, status="fail" if any(c.status == "fail" for c in checks)
                        else "pass", memory_basis=est.memory.basis, latency_basis=est.latency.basis,
                        runtime=est.runtime, runtime_version=est.runtime_version,
                        figures={k: round(v, 4) for k, v in figures.items()}, checks=checks, notes=notes)

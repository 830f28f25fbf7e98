"""Step 1 of recommend: what is asked (task, request shape, rules) and what each target is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advisor.catalog.loader import Catalog, get_catalog
from advisor.catalog.runtimes import RuntimeProfile
from advisor.catalog.schema import ModelEntry, TaskProfile
from advisor.errors import UsageError
from advisor.recommend.schema import Constraints, RequestShape
from advisor.rules.resolve import resolve_rules
from advisor.rules.table import RuleSet, secs

# recommend never picks a model whose licence or quality is unknown.
RECOMMEND_REQUIRES = frozenset({"license", "quality"})


@dataclass
class Plan:
    catalog: Catalog
    task: TaskProfile
    shape: RequestShape
    constraints: Constraints
    rules: RuleSet
    models: list[ModelEntry]
    runtime: str | None                    # None: each target's default runtime
    targets: list[str]
    catalog_paths: tuple[str, ...] = ()
    allow_unscored: bool = False
    notes: list[str] = field(default_factory=list)
    concurrency: int | None = None         # closed-loop clients to plan for (--concurrency)

    @property
    def load(self):
        """The traffic to plan capacity for (--rps or --concurrency), or None."""
        from advisor.capacity.plan import Load

        if self.rules.limits.min_rps is not None:
            return Load(rps=self.rules.limits.min_rps)
        if self.concurrency is not None:
            return Load(concurrency=self.concurrency)
        return None

    @property
    def budget_ms(self) -> float:
        assert self.rules.limits.max_latency_ms is not None  # resolve_rules sets the task's default
        return self.rules.limits.max_latency_ms


@dataclass
class TargetSpec:
    id: str
    local: bool
    name: str
    summary: str
    gpu_count: int
    price: float | None                    # USD per device-hour
    kind: str                              # gpu | cpu
    runtime: RuntimeProfile                # the serving runtime its figures model
    fingerprint: str | None = None
    hardware: dict | None = None           # the local HardwareProfile
    hw: Any = None                         # the named HardwareTarget (node, instance, price)


def constraints_from(constraints: Constraints | dict | None, overrides: dict[str, Any]) -> Constraints:
    base = constraints.model_dump() if isinstance(constraints, Constraints) else dict(constraints or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    from pydantic import ValidationError

    try:
        return Constraints.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"constraint '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}") from None


def resolve(task: str, *, targets, prompt_tokens, new_tokens, batch, constraints, constraint_kwargs,
            catalog_paths, runtime: str | None, user_models_only: bool, allow_unscored: bool = False,
            local_models=None, concurrency: int | None = None) -> Plan:
    cat = get_catalog(tuple(catalog_paths), local=local_models)   # + --hf-cache / --models-dir models
    profile = cat.task(task)
    k = constraints_from(constraints, constraint_kwargs)
    rules = resolve_rules(k, catalog=cat, task=profile, license=k.license, formats=k.formats,
                          require_known=RECOMMEND_REQUIRES)
    if rules.license is not None:
        k = k.model_copy(update={"license": rules.license})
    shape = RequestShape(prompt_tokens=prompt_tokens or profile.prompt_tokens,
                         new_tokens=new_tokens or profile.new_tokens, batch=batch or profile.batch)
    if not targets:
        raise UsageError("give at least one target")
    if concurrency is not None and k.min_rps is not None:
        raise UsageError("give --rps (open-loop arrivals) or --concurrency (closed-loop clients), not both")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or not 1 <= concurrency <= 1_000_000):
        raise UsageError(f"--concurrency must be a whole number of clients from 1 to 1,000,000, got {concurrency!r}")
    notes = []
    if k.max_latency_ms is None:
        notes.append(f"latency budget: the {task} profile's default, {secs(profile.latency_budget_ms)} end-to-end p95")
    notes.append(f"quality is a proxy: {profile.quality_proxy.description}")
    notes.extend(cat.local_notes)
    models = sorted(cat.models.values(), key=lambda m: (m.params_total, m.id))
    if user_models_only:
        mine = set(cat.user_model_ids())
        if not mine:
            raise UsageError("--user-models-only needs models from --catalog, ADVISOR_CATALOG_PATH, --hf-cache "
                             "or --models-dir")
        models = [m for m in models if m.id in mine]
    for target in targets:
        refuse_unrunnable(cat, runtime, target)
    return Plan(catalog=cat, task=profile, shape=shape, constraints=k, rules=rules, models=models,
                runtime=runtime, targets=list(targets), catalog_paths=tuple(catalog_paths),
                allow_unscored=allow_unscored, notes=notes, concurrency=concurrency)


def _runtime_for(plan: Plan, local: bool, kind: str) -> RuntimeProfile:
    from advisor.estimate.engine import default_runtime_id, resolve_runtime

    rts = plan.catalog.runtimes
    return resolve_runtime(rts, plan.runtime or default_runtime_id(rts, local=local, device_kind=kind))


def device_kind(catalog: Catalog, target: str) -> tuple[str, str]:
    """("gpu" or "cpu", what the target is) for `local` (detected) or a named target."""
    if target == "local":
        from advisor.hardware.profile import detect_profile

        prof = detect_profile(include_torch=False)
        if prof.gpu_count:
            return "gpu", f"this machine ({prof.gpu_count} GPU)"
        return "cpu", "this machine (no GPU found)"
    hw = catalog.target(target)
    return hw.kind, f"{target} ({hw.name}, a {hw.kind.upper()} target)"


def refuse_unrunnable(catalog: Catalog, runtime: str | None, target: str) -> None:
    """A runtime/target pair the runtime profile cannot describe is refused before any estimate, in one
    line (exit 2), instead of a table of candidates that were never estimated. No runtime given: each
    target gets its default, which always runs there."""
    if runtime is None:
        return
    from advisor.estimate.engine import resolve_runtime

    profile = resolve_runtime(catalog.runtimes, runtime)
    kind, what = device_kind(catalog, target)
    if kind in profile.devices:
        return
    others = sorted(r.id for r in catalog.runtimes.values() if kind in r.devices)
    kinds = "/".join(k.upper() for k in profile.devices)
    gpus = sorted(t.id for t in catalog.targets.values() if t.kind in profile.devices)[:3]
    raise UsageError(f"--runtime {runtime} cannot run on {what}: the {profile.id} profile models "
                     f"{kinds} devices only",
                     hint=f"use {' or '.join('--runtime ' + o for o in others) or '--runtime transformers'} here, or a "
                          f"{kinds} --target such as {', '.join(gpus)}")


def describe_target(target: str, plan: Plan) -> TargetSpec:
    price_flag = plan.constraints.gpu_hour_cost
    if target == "local":
        from advisor.hardware.profile import detect_profile

        prof = detect_profile(include_torch=False)  # torch backends cost seconds to import; probes say more
        summary = (", ".join(f"{g.name} ({(g.memory_total_bytes or 0) / 2**30:.0f} GiB)" for g in prof.gpus)
                   or f"CPU only: {prof.cpu.model_name or 'unknown CPU'}, "
                      f"{(prof.cpu.ram_total_bytes or 0) / 2**30:.0f} GiB RAM")
        kind = "gpu" if prof.gpus else "cpu"
        return TargetSpec(id=target, local=True, name="this machine", summary=summary,
                          gpu_count=max(prof.gpu_count, 1), price=price_flag, kind=kind,
                          runtime=_runtime_for(plan, True, kind), fingerprint=prof.fingerprint,
                          hardware=prof.model_dump())
    hw = plan.catalog.target(target)
    return TargetSpec(id=target, local=False, name=hw.name, summary=f"{hw.gpus} x {hw.name} ({hw.memory_gb:g} GB)",
                      gpu_count=hw.gpus if hw.kind == "gpu" else 1,
                      price=price_flag if price_flag is not None else hw.price_per_hour_usd, kind=hw.kind,
                      runtime=_runtime_for(plan, False, hw.kind), hw=hw)

"""From what the user gave (limits, a task, allow-lists) to the RuleSet that applies: the same
resolution for recommend and check, so both apply the task's default budget and the same licence ids."""

from __future__ import annotations

from advisor.errors import UsageError, unknown_id
from advisor.rules.licences import resolve_allow_list
from advisor.rules.limits import Limits
from advisor.rules.table import RuleSet


def resolve_rules(limits: Limits, *, catalog, task=None, license: list[str] | None = None,
                  formats: list[str] | None = None, require_known=frozenset(),
                  task_budget: bool = True) -> RuleSet:
    """The effective rules. Without max_latency_ms, a task's latency_budget_ms applies (said in the message)."""
    note = ""
    if limits.max_latency_ms is None and task is not None and task_budget:
        limits = limits.model_copy(update={"max_latency_ms": task.latency_budget_ms})
        note = f" (the {task.id} task's default budget)"
    for f in formats or ():
        if catalog.formats and f not in catalog.formats:
            raise unknown_id("format", f, list(catalog.formats))
    allow = resolve_allow_list(license, catalog.licenses) if license is not None else None
    if allow is not None and not allow:
        raise UsageError("the licence allow-list is empty")
    return RuleSet(limits=limits, license=allow, formats=list(formats) if formats is not None else None,
                   require_known=frozenset(require_known), latency_note=note)

"""Read advisor recommendation runs back from MLflow: the latest pick per (machine, target, task).

A machine is the run's advisor.hardware.fingerprint, else its GPU name and count; the target is what
the figures are for (`local`, or a named target run from that machine as a what-if), so a what-if
never hides the machine's own local pick. Only complete runs count (tag advisor.complete=true, status
FINISHED). A sqlite store that does not exist yet is read as empty and never created.
"""

from __future__ import annotations

from datetime import datetime, timezone

from advisor.errors import AdvisorError, UsageError
from advisor.tracking import connection

FIGURES = ("ttft_ms", "e2e_p50_ms", "e2e_p95_ms", "tokens_per_s", "memory_gb", "quality_proxy", "cost_per_mtok_usd")
MAX_RUNS = 5000


def profile_label(tags: dict) -> str:
    """The machine the run was made on (a named target's run still names its host, not the target)."""
    name = tags.get("advisor.gpu.name")
    if name and name != "none":
        return f"{tags.get('advisor.gpu.count', '1')} x {name}"
    if tags.get("advisor.cpu.model"):
        return f"{tags['advisor.cpu.model']} (no GPU)"
    return tags.get("advisor.device_summary") or tags.get("advisor.target") or "unknown"


def profile_key(tags: dict) -> tuple[str, str]:
    """(machine, target): the fingerprint (else GPU name and count) of the machine, and the target."""
    if tags.get("advisor.hardware.fingerprint"):
        machine = tags["advisor.hardware.fingerprint"]
    elif tags.get("advisor.gpu.name"):
        machine = f"{tags['advisor.gpu.name']} x{tags.get('advisor.gpu.count', '1')}"
    else:
        machine = tags.get("advisor.cpu.model") or "unknown"
    return machine, tags.get("advisor.target") or "local"


def sqlite_path(uri: str):
    """The file of a sqlite:/// tracking URI (None for other stores)."""
    from pathlib import Path

    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def row_of(run) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    return {
        "profile": profile_label(tags),
        "fingerprint": tags.get("advisor.hardware.fingerprint"),
        "gpu_name": tags.get("advisor.gpu.name"),
        "gpu_count": tags.get("advisor.gpu.count"),
        "gpu_memory_gb": tags.get("advisor.gpu.memory_gb"),
        "cpu_model": tags.get("advisor.cpu.model"),
        "task": tags.get("advisor.task"),
        "target": tags.get("advisor.target") or "local",
        "figures_for": tags.get("advisor.target.devices") or tags.get("advisor.device_summary"),
        "pick": tags.get("advisor.pick"),
        "status": tags.get("advisor.status"),
        "verdict": tags.get("advisor.verdict"),
        **{name: metrics.get(name) for name in FIGURES},
        "run_id": run.info.run_id,
        "started": started,
    }


def load_picks(*, experiment: str | None = None, task: str | None = None,
               tracking_uri: str | None = None) -> list[dict]:
    """Latest complete recommendation per (profile, task), sorted by task then profile."""
    if task is not None and ("'" in task or "`" in task):
        raise UsageError(f"invalid task name {task!r}")
    uri = connection.resolve_tracking_uri(tracking_uri)
    name = connection.resolve_experiment(experiment)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        return []  # nothing was ever logged there; opening it would create an empty store
    filters = ["tags.`advisor.kind` = 'recommendation'", "tags.`advisor.complete` = 'true'",
               "attributes.status = 'FINISHED'"]
    if task:
        filters.append(f"tags.`advisor.task` = '{task}'")
    try:
        with connection.bounded_http():
            client = connection.client(uri)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                return []
            runs = client.search_runs([exp.experiment_id], filter_string=" and ".join(filters),
                                      order_by=["attributes.start_time DESC"], max_results=MAX_RUNS)
    except AdvisorError:
        raise
    except Exception as exc:
        from advisor.errors import InfraError

        cause = connection.redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:240]
        raise InfraError(f"cannot read runs from MLflow at {connection.redact(uri)}", hint=cause) from exc
    latest: dict[tuple[str, str, str], dict] = {}
    for run in runs:
        key = (*profile_key(run.data.tags), run.data.tags.get("advisor.task") or "")
        latest.setdefault(key, row_of(run))
    # this machine's own pick first, then its what-ifs on named targets
    return sorted(latest.values(), key=lambda r: (r["task"] or "", r["profile"], r["fingerprint"] or "",
                                                   r["target"] != "local", r["target"]))

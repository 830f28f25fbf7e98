"""The gate's rules: each turns one figure and one limit into a named pass/fail/unknown result."""

from __future__ import annotations

from advisor.catalog.schema import ModelEntry
from advisor.check.schema import CheckResult

GB = 1e9


def _ms(x: float) -> str:
    return f"{x:,.0f} ms" if x >= 100 else f"{x:,.1f} ms"


def memory_rules(est, target: str, headroom: float) -> list[CheckResult]:
    """fits-memory (the estimator's verdict) and memory-headroom (need <= memory less the headroom)."""
    mem = est.memory
    need, have = mem.per_device_bytes / GB, mem.available_bytes / GB
    fits = mem.verdict == "fits"
    extra = []
    if not fits and mem.fits_with_format:
        extra.append(f"fits at {mem.fits_with_format}")
    if not fits and mem.fits_with_gpus:
        extra.append(f"fits on {mem.fits_with_gpus} GPUs")
    fit_msg = f"needs {need:.2f} GB per device of {have:.2f} GB ({mem.verdict}" + (
        f"; {', '.join(extra)})" if extra else ")")
    limit = have * (1 - headroom)
    head_ok = fits and need <= limit
    head_msg = (f"{need:.2f} GB {'<=' if need <= limit else '>'} {limit:.2f} GB "
                f"({have:.2f} GB less {headroom:.0%} headroom)")
    return [
        CheckResult(name="fits-memory", target=target, status="pass" if fits else "fail", value=round(need, 3),
                    limit=round(have, 3), unit="GB", basis=mem.basis, message=fit_msg),
        CheckResult(name="memory-headroom", target=target, status="pass" if head_ok else "fail",
                    value=round(need, 3), limit=round(limit, 3), unit="GB", basis=mem.basis, message=head_msg),
    ]


def latency_rules(est, target: str, thresholds: dict) -> list[CheckResult]:
    """latency-p95, ttft (at most) and tokens-per-s (at least), only for the limits that are set."""
    lat = est.latency
    # A model that does not fit is timed as if it did: say so next to the figure.
    note = "" if est.memory.verdict == "fits" else f" (if it were served: memory verdict {est.memory.verdict})"
    out = []
    for name, key, value in (("latency-p95", "max_latency_ms", lat.e2e_p95_ms), ("ttft", "max_ttft_ms", lat.ttft_ms)):
        limit = thresholds.get(key)
        if limit is None:
            continue
        ok = value <= limit
        out.append(CheckResult(name=name, target=target, status="pass" if ok else "fail", value=round(value, 3),
                               limit=limit, unit="ms", basis=lat.basis,
                               message=f"{_ms(value)} {'<=' if ok else '>'} {_ms(limit)}{note}"))
    limit = thresholds.get("min_tokens_per_s")
    if limit is not None:
        value = lat.tokens_per_s
        ok = value >= limit
        out.append(CheckResult(name="tokens-per-s", target=target, status="pass" if ok else "fail",
                               value=round(value, 3), limit=limit, unit="tokens/s", basis=lat.basis,
                               message=f"{value:,.1f} tokens/s {'>=' if ok else '<'} {limit:,.1f}{note}"))
    return out


def _unknown(name: str, target: str, limit, why: str, required: bool, unit: str = "") -> CheckResult:
    if required:
        return CheckResult(name=name, target=target, status="fail", value=None, limit=limit, unit=unit,
                           basis="unknown", message=f"{why}, and the policy requires it (require_known)")
    return CheckResult(name=name, target=target, status="unknown", value=None, limit=limit, unit=unit,
                       basis="unknown", message=f"{why}; not a failure (add '{name}' to require_known to fail)")


def license_rule(entry: ModelEntry | None, target: str, allow: list[str], required: bool) -> CheckResult:
    if entry is None:
        return _unknown("license", target, allow, "licence unknown: the model is not in the catalog", required)
    ok = entry.license.lower() in {a.lower() for a in allow}
    return CheckResult(name="license", target=target, status="pass" if ok else "fail", value=entry.license,
                       limit=allow, basis="catalog",
                       message=f"{entry.license} {'is' if ok else 'is not'} in the allow-list ({', '.join(allow)})")


def quality_rule(entry: ModelEntry | None, target: str, task, fmt: str, catalog, minimum: float,
                 required: bool) -> CheckResult:
    """The task quality PROXY (weighted published benchmarks), never a measurement of the task."""
    if entry is None:
        return _unknown("quality", target, minimum, "quality unknown: the model is not in the catalog",
                        required, "points")
    from advisor.recommend.quality import quality_score

    q = quality_score(entry, task, fmt, catalog)
    if q.score is None:
        return _unknown("quality", target, minimum, f"quality unscored: benchmarks cover {q.coverage:.0%} of the "
                        f"'{task.id}' proxy", required, "points")
    ok = q.score >= minimum
    return CheckResult(name="quality", target=target, status="pass" if ok else "fail", value=round(q.score, 2),
                       limit=minimum, unit="points", basis="proxy",
                       message=f"proxy {q.score:.1f} {'>=' if ok else '<'} {minimum:g} ({', '.join(q.used)})")

"""Constraint checks: each returns a reason with numbers when a candidate fails it (pure)."""

from __future__ import annotations

from advisor.recommend.schema import Constraints


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def secs(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def memory_limit(available_bytes: int, headroom: float) -> int:
    return int(available_bytes * (1.0 - headroom))


def failures(c: dict, k: Constraints, *, latency_budget_ms: float) -> list[tuple[str, str, float]]:
    """(constraint key, reason, relative violation) for every constraint the candidate misses.

    `c` holds the candidate's figures (Candidate fields). The relative violation (how far past the
    limit, as a fraction) ranks the closest misses when nothing passes.
    """
    out: list[tuple[str, str, float]] = []
    if k.formats is not None and c["format"] not in k.formats:
        out.append(("formats", f"format {c['format']} excluded (allowed: {', '.join(k.formats)})", 1.0))
    if k.max_params is not None and c["params_total"] > k.max_params:
        out.append(("max_params", f"{c['params_total'] / 1e9:.1f}B parameters exceed the {k.max_params / 1e9:g}B limit",
                    c["params_total"] / k.max_params - 1))
    if k.license is not None and c["license"] not in k.license:
        out.append(("license", f"licence {c['license']} is not in the allow-list ({', '.join(k.license)})", 1.0))
    limit = c["memory_limit_bytes"]
    if c["verdict"] == "does-not-fit" or c["memory_bytes"] > limit:
        headroom = f", {k.memory_headroom:.0%} headroom kept free" if k.memory_headroom else ""
        out.append(("memory", f"needs {gb(c['memory_bytes'])} per device, the limit is {gb(limit)}{headroom}",
                    c["memory_bytes"] / max(limit, 1) - 1))
    elif c["verdict"] == "fits-with-offload":
        out.append(("memory", "fits only with CPU offload of weights (slow)", 0.5))
    if c["e2e_p95_ms"] > latency_budget_ms:
        out.append(("max_latency_ms", f"p95 end-to-end {secs(c['e2e_p95_ms'])} exceeds the {secs(latency_budget_ms)} budget "
                    f"({c['latency_basis']})", c["e2e_p95_ms"] / latency_budget_ms - 1))
    if k.max_ttft_ms is not None and c["ttft_ms"] > k.max_ttft_ms:
        out.append(("max_ttft_ms", f"time to first token {secs(c['ttft_ms'])} exceeds {secs(k.max_ttft_ms)}",
                    c["ttft_ms"] / k.max_ttft_ms - 1))
    if k.min_tokens_per_s is not None and c["tokens_per_s"] < k.min_tokens_per_s:
        out.append(("min_tokens_per_s", f"{c['tokens_per_s']:.1f} tokens/s is below {k.min_tokens_per_s:g}",
                    k.min_tokens_per_s / max(c["tokens_per_s"], 1e-9) - 1))
    if k.min_quality is not None:
        if c["quality"] is None:
            out.append(("min_quality", "unscored: too few published scores for this task's quality proxy", 1.0))
        elif c["quality"] < k.min_quality:
            out.append(("min_quality", f"quality proxy {c['quality']:.1f} is below the minimum {k.min_quality:g}",
                        (k.min_quality - c["quality"]) / k.min_quality))
    return out

"""Pareto frontier over quality (higher is better), latency and memory (lower is better)."""

from __future__ import annotations

from advisor.recommend.schema import Candidate


def _objectives(c: Candidate) -> tuple[float, float, float]:
    # Unscored models rank below every scored one on quality; they are never invented a score.
    q = c.quality_proxy if c.quality_proxy is not None else float("-inf")
    inf = float("inf")  # a candidate never estimated is dominated by every estimated one
    return (-q, c.e2e_p95_ms if c.e2e_p95_ms is not None else inf,
            float(c.memory_bytes) if c.memory_bytes is not None else inf)


def dominates(a: Candidate, b: Candidate) -> bool:
    oa, ob = _objectives(a), _objectives(b)
    return all(x <= y for x, y in zip(oa, ob)) and any(x < y for x, y in zip(oa, ob))


def frontier(cands: list[Candidate]) -> list[Candidate]:
    return [c for c in cands if not any(dominates(o, c) for o in cands if o is not c)]

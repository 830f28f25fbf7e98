"""Step 3 of recommend: rank the candidates and choose the small, the large and the pick (pure).

One ranking key for everything: a higher quality proxy first (unscored below every scored model),
then lower p95 latency, then less memory, then the id for a stable order.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.recommend import pareto
from advisor.recommend.schema import Candidate

UNSCORED = float("-inf")


def quality_key(c: Candidate) -> float:
    return c.quality_proxy if c.quality_proxy is not None else UNSCORED


def rank_key(c: Candidate) -> tuple:
    inf = float("inf")
    return (-quality_key(c), c.e2e_p95_ms if c.e2e_p95_ms is not None else inf,
            c.memory_bytes if c.memory_bytes is not None else inf, c.key)


def best(cands: list[Candidate]) -> Candidate | None:
    return min(cands, key=rank_key) if cands else None


@dataclass(frozen=True)
class Selection:
    candidates: list[Candidate]            # with on_frontier set
    small: Candidate | None
    large: Candidate | None
    pick: Candidate | None
    frontier: list[str]                    # keys


def choose(cands: list[Candidate], min_quality_gain: float) -> Selection:
    """The large tier wins only when its best beats the best small one by `min_quality_gain` points."""
    passed = [c for c in cands if c.passed]
    front = {c.key for c in pareto.frontier(passed)}
    cands = [c.model_copy(update={"on_frontier": c.key in front}) for c in cands]
    passed = [c for c in cands if c.passed]
    small = best([c for c in passed if c.tier == "small"])
    large = best([c for c in passed if c.tier == "large"])
    if large is not None and (small is None or quality_key(large) >= quality_key(small) + min_quality_gain):
        pick = large
    else:
        pick = small or large
    return Selection(cands, small, large, pick, sorted(front))


def best_large_overall(cands: list[Candidate]) -> Candidate | None:
    """The highest-quality large model, in its least-failing format (for 'what it would take')."""
    large = [c for c in cands if c.tier == "large"]
    if not large:
        return None
    top = min(large, key=lambda c: (-quality_key(c), c.params_total, c.key)).model
    return min((c for c in large if c.model == top), key=lambda c: (len(c.reasons), rank_key(c)))


def closest_misses(cands: list[Candidate], violations: dict[str, float], n: int = 5) -> list[Candidate]:
    """When nothing passes: the candidates that miss the fewest limits by the least (estimated ones only)."""
    misses = [c for c in cands if not c.passed and "request" not in c.binding]
    return sorted(misses, key=lambda c: (len(c.binding), violations.get(c.key, 0.0), c.key))[:n]

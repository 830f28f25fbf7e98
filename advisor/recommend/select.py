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


def table_key(c: Candidate) -> tuple:
    """The order of every table (terminal, report.md, MLflow, recommendation.json): passing candidates
    first, then rejected ones with figures, then those never estimated; each group by rank_key."""
    return (not c.passed, not c.estimated, rank_key(c))


def roles(pick: Candidate | None, small: Candidate | None, large: Candidate | None,
          closest: Candidate | None = None) -> dict[str, str]:
    """key -> "pick", "pick, best large", "best small", "closest large", ... for the table's pick column."""
    out: dict[str, list[str]] = {}
    for label, c in (("pick", pick), ("best small", small), ("best large", large), ("closest large", closest)):
        if c is not None and label not in out.get(c.key, []):
            out.setdefault(c.key, []).append(label)
    return {k: ", ".join(v) for k, v in out.items()}


def in_table_order(cands: list[Candidate], labels: dict[str, str]) -> list[Candidate]:
    """The target's candidates sorted by table_key, numbered (rank 1 first) and labelled with their role."""
    ordered = sorted(cands, key=table_key)
    return [c.model_copy(update={"rank": i, "role": labels.get(c.key)}) for i, c in enumerate(ordered, 1)]


def best(cands: list[Candidate]) -> Candidate | None:
    return min(cands, key=rank_key) if cands else None


@dataclass(frozen=True)
class Selection:
    candidates: list[Candidate]            # with on_frontier set
    small: Candidate | None
    large: Candidate | None
    pick: Candidate | None
    frontier: list[str]                    # keys


# Limits the user sets as filters (what may be deployed at all), as opposed to budgets to be met: a
# candidate that fails one is not admissible, is never a closest miss, and is never proposed back.
FILTERS = frozenset({"license", "formats", "max_params"})


def eligible(c: Candidate, allow_unscored: bool) -> bool:
    """May this passing candidate be picked? An unscored model only when the user allows it."""
    return c.passed and (allow_unscored or c.quality_proxy is not None)


def admissible(c: Candidate) -> bool:
    """Passes the user's filters (it may still miss a budget) and was estimated."""
    return c.estimated and not (FILTERS | {"request"}) & set(c.binding)


def choose(cands: list[Candidate], min_quality_gain: float, allow_unscored: bool = False) -> Selection:
    """The large tier wins only when its best beats the best small one by `min_quality_gain` points.
    Unscored models pass or fail like any other but are never chosen unless `allow_unscored`."""
    passed = [c for c in cands if c.passed]
    front = {c.key for c in pareto.frontier(passed)}
    cands = [c.model_copy(update={"on_frontier": c.key in front}) for c in cands]
    ok = [c for c in cands if eligible(c, allow_unscored)]
    small = best([c for c in ok if c.tier == "small"])
    large = best([c for c in ok if c.tier == "large"])
    if large is not None and (small is None or quality_key(large) >= quality_key(small) + min_quality_gain):
        pick = large
    else:
        pick = small or large
    return Selection(cands, small, large, pick, sorted(front))


def closest_large(cands: list[Candidate], violations: dict[str, float], allow_unscored: bool = False,
                  exclude: Candidate | None = None) -> Candidate | None:
    """The large candidate the verdict weighs against the pick: admissible (passes the user's filters),
    scored, and missing the fewest budgets by the least; higher quality breaks ties."""
    large = [c for c in cands if c.tier == "large" and admissible(c) and c is not exclude
             and (exclude is None or c.key != exclude.key)
             and (allow_unscored or c.quality_proxy is not None)]
    if not large:
        return None
    return min(large, key=lambda c: (len(c.binding), violations.get(c.key, 0.0), -quality_key(c), c.key))


def closest_misses(cands: list[Candidate], violations: dict[str, float], n: int = 5,
                   allow_unscored: bool = False) -> list[Candidate]:
    """When nothing passes: admissible, scored candidates that miss the fewest budgets by the least."""
    misses = [c for c in cands if not c.passed and admissible(c) and (allow_unscored or c.quality_proxy is not None)]
    ranked = sorted(misses, key=lambda c: (len(c.binding), violations.get(c.key, 0.0), c.key))
    out, seen = [], set()
    for c in ranked:  # one row per model: its closest format
        if c.model not in seen:
            seen.add(c.model)
            out.append(c)
    return out[:n]


def cost_key(c: Candidate) -> tuple:
    """Under a load: lower USD per hour first (a target without a price ranks after every priced one,
    by GPUs), then higher quality, then lower p95 latency."""
    inf = float("inf")
    return (c.cost_per_hour_usd if c.cost_per_hour_usd is not None else inf,
            c.gpus_total if c.gpus_total is not None else inf, -quality_key(c),
            c.e2e_p95_ms if c.e2e_p95_ms is not None else inf, c.key)


def worth_it(ok: list[Candidate], tolerance: float) -> Candidate | None:
    """The cheapest of the candidates within `tolerance` quality-proxy points of the best one: quality is
    bought while it comes at a price, not at any price (a tolerance of 100 picks the cheapest outright)."""
    if not ok:
        return None
    top = max(quality_key(c) for c in ok)
    return min((c for c in ok if quality_key(c) >= top - tolerance), key=cost_key)


def choose_under_load(cands: list[Candidate], min_quality_gain: float, allow_unscored: bool = False,
                      tolerance: float = 100.0) -> Selection:
    """The pick is the cheapest candidate within `tolerance` points of the best quality among those that meet
    every constraint at the load (SLOs, --min-quality, filters); small and large stay the best of their
    tiers by quality, for the verdict to weigh."""
    sel = choose(cands, min_quality_gain, allow_unscored)
    ok = [c for c in sel.candidates if eligible(c, allow_unscored)]
    return Selection(sel.candidates, sel.small, sel.large, worth_it(ok, tolerance), sel.frontier)


def cheapest(cands: list[Candidate], allow_unscored: bool = False) -> Candidate | None:
    ok = [c for c in cands if eligible(c, allow_unscored)]
    return min(ok, key=cost_key) if ok else None


def best_quality(cands: list[Candidate], allow_unscored: bool = False) -> Candidate | None:
    """The highest quality proxy among the candidates that meet everything (cheaper first on ties)."""
    ok = [c for c in cands if eligible(c, allow_unscored)]
    return min(ok, key=lambda c: (-quality_key(c), cost_key(c))) if ok else None

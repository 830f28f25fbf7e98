"""The task quality PROXY: where a model's published scores sit among the catalog's, weighted per task.

Not a measurement of task quality. For task T (catalog/tasks.yaml `quality_proxy`) and model M:

1. Only scores of T's `variant` count (instruct, usually): base and instruct scores are never mixed.
2. Each benchmark b is put on a common footing: M's score becomes its POSITION within the range of
   the catalog's scores of b in that variant, 0 (the lowest) to 100 (the highest); for a benchmark
   where lower is better (hallucination rate) the scale is turned round. An LLM-judged benchmark
   (Arena-Hard, MT-Bench, ...) is compared only within one source document: judges and baselines
   differ between reports. A comparison set needs MIN_PEERS models (MIN_JUDGED_PEERS if LLM-judged).
3. A model without every `core` benchmark of T is unscored (None), never promoted.
4. Missing non-core benchmarks count as the catalog's lowest score (position 0): lacking a score can
   never raise the proxy. The proxy is therefore a lower bound; `upper` is what it would be if every
   missing score were the catalog's best, so `upper - score` is the uncertainty from missing data.
   Below T's `min_coverage` (share of the weight with a real score) the model is unscored.
5. A weight format's documented loss (formats.yaml `quality_delta_points`, in benchmark points) moves
   the proxy by delta x T's `format_delta_scale` position points, never below 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from advisor.catalog.schema import Benchmark, ModelEntry, TaskProfile

# Fewest models a comparison set needs before positions in it mean anything: two give a range; an
# LLM-judged set (one document's own models against its own baseline) needs three.
MIN_PEERS = 2
MIN_JUDGED_PEERS = 3


class QualityScore(BaseModel):
    score: float | None            # the proxy (lower bound), format delta included; None = unscored
    upper: float | None = None     # the proxy if every missing score were the catalog's best
    band_points: float = 0.0       # differences below this are ties
    base_score: float | None = None  # before the format delta
    format_delta: float = 0.0      # raw benchmark points (formats.yaml)
    coverage: float                # share of the task's weight with a real score
    variant: str = "instruct"
    used: list[str] = Field(default_factory=list)      # "ifeval=84.7 (instruct, position 91)"
    missing: list[str] = Field(default_factory=list)   # weighted benchmarks the model has no usable score for
    reason: str | None = None      # why unscored
    proxy: bool = True

    @property
    def label(self) -> str:
        return "unscored" if self.score is None else f"{self.score:.1f}"


@dataclass(frozen=True)
class Peers:
    """One comparison set: the scores of one benchmark, one variant (and one source, if LLM-judged)."""

    low: float
    high: float
    count: int

    def position(self, value: float, higher_is_better: bool) -> float:
        if self.high <= self.low:
            return 50.0
        frac = (value - self.low) / (self.high - self.low)
        return 100.0 * (frac if higher_is_better else 1.0 - frac)

    @property
    def span(self) -> float:
        return self.high - self.low


def chosen_score(entry: ModelEntry, name: str, variant: str) -> Benchmark | None:
    """The model's score for a benchmark in a variant: the developer's own first, then in file order."""
    found = [b for b in entry.benchmarks if b.name == name and b.variant == variant]
    if not found:
        return None
    own = [b for b in found if b.evaluator is None]
    return (own or found)[0]


def _set_key(b: Benchmark, llm_judged: bool) -> tuple:
    return (b.name, b.variant, b.source.strip().rstrip("/").lower() if llm_judged else None)


def _judged(catalog, name: str) -> bool:
    spec = getattr(catalog, "benchmarks", {}).get(name) if catalog is not None else None
    return bool(spec and spec.llm_judged)


def _higher_better(catalog, name: str) -> bool:
    spec = getattr(catalog, "benchmarks", {}).get(name) if catalog is not None else None
    return True if spec is None else spec.higher_is_better


def comparison_sets(models, names: set[str], variant: str, catalog=None) -> dict[tuple, Peers]:
    """Low, high and count of every comparison set of the given benchmarks (one score per model)."""
    values: dict[tuple, list[float]] = {}
    for m in models:
        for name in names:
            b = chosen_score(m, name, variant)
            if b is not None:
                values.setdefault(_set_key(b, _judged(catalog, name)), []).append(b.normalised)
    return {k: Peers(min(v), max(v), len(v)) for k, v in values.items()}


def _sets_for(catalog, task: TaskProfile) -> dict[tuple, Peers]:
    """Memoised per catalog object and task (the catalog does not change once loaded)."""
    cache = catalog.__dict__.setdefault("_quality_sets", {})
    key = (task.id, tuple(sorted(task.quality_proxy.weights)), task.quality_proxy.variant)
    if key not in cache:
        cache[key] = comparison_sets(catalog.models.values(), set(task.quality_proxy.weights),
                                     task.quality_proxy.variant, catalog)
    return cache[key]


def quality_score(entry: ModelEntry, task: TaskProfile, fmt: str, catalog=None,
                  sets: dict[tuple, Peers] | None = None) -> QualityScore:
    proxy = task.quality_proxy
    variant = proxy.variant
    if sets is None:
        sets = _sets_for(catalog, task) if catalog is not None else comparison_sets(
            [entry], set(proxy.weights), variant)
    delta = 0.0
    if catalog is not None and fmt in getattr(catalog, "formats", {}):
        delta = catalog.formats[fmt].quality_delta_points
    total = sum(proxy.weights.values())
    shifts = delta * proxy.format_delta_scale * total
    covered, low, up, used, missing = 0.0, 0.0, 0.0, [], []
    for name, weight in proxy.weights.items():
        b = chosen_score(entry, name, variant)
        judged = _judged(catalog, name)
        need = MIN_JUDGED_PEERS if judged else MIN_PEERS
        peers = sets.get(_set_key(b, judged)) if b is not None else None
        if b is None or peers is None or peers.count < need:
            missing.append(name if b is None else f"{name} (fewer than {need} comparable scores)")
            up += weight * 100.0   # position 0 (the catalog's lowest) in the proxy, 100 in its upper bound
            continue
        pos = peers.position(b.normalised, _higher_better(catalog, name))
        covered += weight
        low += weight * pos
        up += weight * pos
        shots = f", {b.shots}-shot" if b.shots is not None else ""
        by = f", by {b.evaluator}" if b.evaluator else ""
        used.append(f"{name}={b.value:g}{'/' + format(b.scale, 'g') if b.scale != 100 else ''} "
                    f"({b.variant}{shots}{by}; position {pos:.0f})")
    coverage = covered / total if total else 0.0
    lacking_core = [c for c in proxy.core if c in missing or any(m.startswith(c + " ") for m in missing)]
    reason = None
    if lacking_core:
        reason = f"no comparable {variant} score for core benchmark(s) {', '.join(lacking_core)}"
    elif covered == 0 or coverage + 1e-9 < proxy.min_coverage:
        reason = f"{variant} scores cover {coverage:.0%} of the task's weight (minimum {proxy.min_coverage:.0%})"
    if reason is not None:
        return QualityScore(score=None, format_delta=delta, coverage=coverage, variant=variant, used=used,
                            missing=missing, reason=reason, band_points=proxy.band_points)
    # a position never goes below the catalog's lowest (0), whatever a format loses (max() keeps the order)
    return QualityScore(score=max(0.0, (low + shifts) / total), upper=max(0.0, (up + shifts) / total),
                        band_points=proxy.band_points,
                        base_score=low / total, format_delta=delta, coverage=coverage, variant=variant,
                        used=used, missing=missing)

"""The task quality PROXY: a weighted mean of a model's published benchmark scores.

Not a measurement of task quality. For each benchmark the task profile weights, the model's
score is taken (the profile's preferred variant, base or instruct, when both exist), rescaled to
0-100; the weighted mean is renormalised over the weight the model has scores for. Below the
profile's min_coverage the model is "unscored" (None), never given an invented score. The
format's documented delta (formats.yaml) is then added.
"""

from __future__ import annotations

from pydantic import BaseModel

from advisor.catalog.schema import Benchmark, ModelEntry, TaskProfile


class QualityScore(BaseModel):
    score: float | None            # proxy incl. format delta; None = unscored
    base_score: float | None       # before the format delta
    format_delta: float
    coverage: float                # fraction of the task's weight the model has scores for
    used: list[str]                # "mmlu=69.4 (instruct, 5-shot)" for every score used
    missing: list[str]             # benchmarks the profile wanted that the model lacks
    proxy: bool = True

    @property
    def label(self) -> str:
        return "unscored" if self.score is None else f"{self.score:.1f}"


def pick_score(entry: ModelEntry, name: str, prefer: str) -> Benchmark | None:
    found = [b for b in entry.benchmarks if b.name == name]
    if not found:
        return None
    preferred = [b for b in found if b.variant == prefer]
    return (preferred or found)[0]


def quality_score(entry: ModelEntry, task: TaskProfile, fmt: str, catalog=None) -> QualityScore:
    proxy = task.quality_proxy
    total_weight = sum(proxy.weights.values())
    covered, acc, used, missing = 0.0, 0.0, [], []
    for name, weight in proxy.weights.items():
        b = pick_score(entry, name, proxy.prefer_variant)
        if b is None:
            missing.append(name)
            continue
        covered += weight
        acc += weight * b.normalised
        shots = f", {b.shots}-shot" if b.shots is not None else ""
        used.append(f"{name}={b.value:g}{'/' + format(b.scale, 'g') if b.scale != 100 else ''} ({b.variant}{shots})")
    coverage = covered / total_weight if total_weight else 0.0
    delta = 0.0
    if catalog is not None and fmt in getattr(catalog, "formats", {}):
        delta = catalog.formats[fmt].quality_delta_points
    if covered == 0 or coverage + 1e-9 < proxy.min_coverage:
        return QualityScore(score=None, base_score=None, format_delta=delta, coverage=coverage, used=used, missing=missing)
    base = acc / covered
    return QualityScore(score=base + delta, base_score=base, format_delta=delta, coverage=coverage, used=used, missing=missing)

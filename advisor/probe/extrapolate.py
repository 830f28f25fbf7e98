"""From timed forwards of a truncated decoder to full-depth predictions (pure, no torch).

Each timed sample is extrapolated on its own: its truncated forward and its LM head, plus the
layers it lacks, each at the typical cost of a later layer and of the gap before it. The typical
costs are medians over every sample, so a stall in one timed layer is counted once, as it would
have cost the full model, not multiplied by L / depth: interference from other processes steals
time additively, and scaling each sample's own mean by L turned one 30 ms stall into 500 ms.
A hybrid's samples carry a LayerMix: each kind's missing layers are priced at that kind's typical cost.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from advisor.probe.layer_mix import LayerMix


class ComponentTimes(BaseModel):
    """Medians (ms) of the parts the extrapolation adds up; for one prefill or one decode step."""

    fixed_ms: float = Field(description="embeddings, masks, rotary, final norm: forward minus its layers and gaps")
    layer_ms: float = Field(description="one decoder layer after the first (median over those layers and samples)")
    first_layer_ms: float | None = Field(default=None, description="the first decoder layer (median over samples)")
    gap_ms: float = Field(default=0.0, description="host time between two layers (median)")
    lm_head_ms: float = Field(description="LM head (+ argmax for decode) at full vocabulary, timed on its own")
    layer_ms_by_kind: dict[str, float] | None = Field(
        default=None, description="a hybrid's typical layer per kind (layer_ms is then their mean over the full model)")
    layer_samples: int
    samples: int


def extrapolate(total_ms: float, head_ms: float, timed_layers: int, full_depth: int, layer_ms: float,
                gap_ms: float) -> float:
    """One sample at full depth: its truncated forward and head, plus the missing layers and gaps."""
    return total_ms + head_ms + (full_depth - timed_layers) * (layer_ms + gap_ms)


@dataclass
class TimedSamples:
    """Timed forwards of the truncated decoder (one kind: prefill or decode): each sample's total,
    per-layer durations, gaps between layers and LM head, in ms."""

    totals: list[float] = field(default_factory=list)
    layers: list[list[float]] = field(default_factory=list)
    gaps: list[list[float]] = field(default_factory=list)
    head: list[float] = field(default_factory=list)
    mix: LayerMix | None = None

    def add(self, total_ms: float, layer_ms: list[float], head_ms: float, gap_ms: list[float] | None = None) -> None:
        self.totals.append(total_ms)
        self.layers.append(list(layer_ms))
        self.gaps.append(list(gap_ms or []))
        self.head.append(head_ms)

    def __len__(self) -> int:
        return len(self.totals)

    def set_head(self, head_ms: float) -> None:
        """One figure for every sample's head (the prefill head's median over its timings)."""
        self.head = [head_ms] * len(self.head)

    def _later_layers(self, kind: str | None = None) -> list[float]:
        # The first layer of a step runs colder than the ones after it (on the CI CPU's decode: 1.75 ms
        # for layer 0, 1.57 for layer 1, about 1.5 deeper in a 30-layer model); the layers added by the
        # extrapolation are later layers, so they are priced from layers 1.. when those were timed.
        def pick(ls: list[float], start: int) -> list[float]:
            if kind is None or self.mix is None:
                return ls[start:]
            return [x for i, x in enumerate(ls) if i >= start and self.mix.timed[i] == kind]

        later = [x for ls in self.layers for x in pick(ls, 1)]
        return later or [x for ls in self.layers for x in pick(ls, 0)]

    def typical_layer_ms(self) -> float:
        if self.mix is not None:
            kind_ms = self.typical_kind_ms()
            return sum(n * kind_ms[k] for k, n in self.mix.full) / sum(n for _, n in self.mix.full)
        return statistics.median(self._later_layers())

    def typical_kind_ms(self) -> dict[str, float]:
        """A hybrid's typical layer of each kind (median over that kind's later layers)."""
        assert self.mix is not None
        return {k: statistics.median(self._later_layers(k)) for k, _ in self.mix.full}

    def typical_gap_ms(self) -> float:
        flat = [x for gs in self.gaps for x in gs]
        return statistics.median(flat) if flat else 0.0

    def predictions(self, full_depth: int) -> list[float]:
        """One full-depth prediction per sample, in sampling order (see the module docstring)."""
        gap = self.typical_gap_ms()
        if self.mix is not None:
            kind_ms, timed = self.typical_kind_ms(), Counter(self.mix.timed)
            missing = sum((n - timed[k]) * (kind_ms[k] + gap) for k, n in self.mix.full)
            return [t + h + missing for t, h in zip(self.totals, self.head)]
        layer = self.typical_layer_ms()
        return [extrapolate(t, h, len(ls), full_depth, layer, gap)
                for t, ls, h in zip(self.totals, self.layers, self.head)]

    def components(self) -> ComponentTimes:
        fixed = [max(0.0, t - sum(ls) - sum(gs)) for t, ls, gs in zip(self.totals, self.layers, self.gaps)]
        first = [ls[0] for ls in self.layers if len(ls) > 1]
        return ComponentTimes(fixed_ms=statistics.median(fixed), layer_ms=self.typical_layer_ms(),
                              first_layer_ms=statistics.median(first) if first else None,
                              gap_ms=self.typical_gap_ms(), lm_head_ms=statistics.median(self.head),
                              layer_ms_by_kind=self.typical_kind_ms() if self.mix is not None else None,
                              layer_samples=sum(map(len, self.layers)), samples=len(self.totals))


__all__ = ["ComponentTimes", "TimedSamples", "extrapolate"]

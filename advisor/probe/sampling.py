"""The architecture probe's sampling policy: pure functions of the timings so far and a clock value.

Sampling has two stages (advisor.probe.arch_sampler runs them on the truncated model):

1. A fixed plan: the timed decode steps in blocks, with a prefill repeat between two blocks
   (decode_blocks). The budget may cut it short, but only after min_decode_samples decode steps
   (decode_may_stop) and before a prefill that would not fit (prefill_fits).
2. Extra rounds, each one prefill (its head timed) then round_decode_steps decode steps, while
   next_round() says so. First the size rule: rounds until sampling has lasted size_target_s()
   (a share of one predicted request, at least min_sample_s, at most sample_max_s). Then the
   steadying rule: while the earlier and later half of the samples disagree (unsteady), rounds
   until steadying_target_s(). Never more than max_extra_rounds rounds in all, never into the
   budget's last margin.

So: at least N samples (the plan) and at least T seconds, at most a cap, as optimum-benchmark's
inference scenario samples ("at least `iterations` and at least `duration` seconds").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.probe.arch_config import ArchProbeConfig


def decode_blocks(steps: int, repeats: int, first_min: int = 2) -> list[int]:
    """Timed decode steps per block, one block before each prefill repeat: as even as possible, the
    first block at least `first_min` steps (a budget stop after it still leaves a spread)."""
    repeats = max(1, repeats)
    sizes = [steps // repeats + (1 if k < steps % repeats else 0) for k in range(repeats)]
    first = min(steps, first_min)
    k = len(sizes) - 1
    while sizes[0] < first and k > 0:
        if sizes[k]:
            sizes[k] -= 1
            sizes[0] += 1
        else:
            k -= 1
    return sizes


def unsteady(predictions: Sequence[float], tolerance: float, min_samples: int = 4) -> bool:
    """Whether the earlier and the later half of the samples disagree: their medians differ by more
    than `tolerance` of the smaller one (the machine's speed moved while sampling)."""
    n = len(predictions)
    if n < max(2, min_samples):
        return False
    early, late = statistics.median(predictions[: n // 2]), statistics.median(predictions[n // 2:])
    return abs(early - late) > tolerance * min(early, late)


def decode_may_stop(cfg: ArchProbeConfig, timed_steps: int) -> bool:
    """Whether the budget may end the decode loop now (before, running out of it is an error)."""
    return timed_steps >= cfg.min_decode_samples


def prefill_fits(cfg: ArchProbeConfig, one_prefill_s: float, budget_left_s: float) -> bool:
    """Whether one more prefill repeat fits in what is left of the budget."""
    return budget_left_s >= one_prefill_s * cfg.prefill_budget_margin


def size_target_s(cfg: ArchProbeConfig, prefill_ms: float, decode_ms: float, new_tokens: int) -> float:
    """Sampling time the size rule asks for: `sample_share` of one predicted request (prefill_ms +
    new_tokens x decode_ms), at least `min_sample_s`, at most `sample_max_s`."""
    share_s = cfg.sample_share * (prefill_ms + new_tokens * decode_ms) / 1000
    return min(cfg.sample_max_s, max(cfg.min_sample_s, share_s))


def steadying_target_s(cfg: ArchProbeConfig, sampled_s: float) -> float:
    """Sampling time the steadying rule may reach from `sampled_s`: `unsteady_extra` more, at most
    `sample_max_s` more."""
    return min(sampled_s * (1 + cfg.unsteady_extra), sampled_s + cfg.sample_max_s)


@dataclass(frozen=True)
class SamplingState:
    """What the policy sees between two rounds."""

    elapsed_s: float                  # clock now minus the start of sampling
    budget_left_s: float
    round_s: float                    # what one extra round costs (one prefill, its decode steps)
    extra_rounds: int                 # extra rounds taken so far (both rules together)
    stopped: bool = False             # the budget already cut sampling short
    prefill: Sequence[float] = ()     # full-depth prefill predictions so far (ms), in sampling order
    decode: Sequence[float] = ()      # the same for decode steps


@dataclass(frozen=True)
class Decision:
    another: bool
    reason: str


def next_round(cfg: ArchProbeConfig, state: SamplingState, until_s: float, *, while_unsteady: bool) -> Decision:
    """Whether to take another extra round on the way to `until_s` seconds of sampling.

    A round is taken while more than half a round is left to `until_s` (the total lands nearest
    the target), the round cap and the budget margin allow it and, for the steadying rule
    (`while_unsteady`), while the prefill or the decode samples are unsteady.
    """
    if state.stopped:
        return Decision(False, "the budget stopped sampling")
    if state.extra_rounds >= cfg.max_extra_rounds:
        return Decision(False, "round cap")
    if state.elapsed_s >= until_s - state.round_s / 2:
        return Decision(False, "target reached")
    if state.budget_left_s <= state.round_s * cfg.round_budget_margin:
        return Decision(False, "budget margin")
    if while_unsteady:
        moved = (unsteady(state.prefill, cfg.unsteady_tolerance, cfg.unsteady_min_samples)
                 or unsteady(state.decode, cfg.unsteady_tolerance, cfg.unsteady_min_samples))
        return Decision(True, "unsteady") if moved else Decision(False, "steady")
    return Decision(True, "below target")


__all__ = ["Decision", "SamplingState", "decode_blocks", "decode_may_stop", "next_round", "prefill_fits",
           "size_target_s", "steadying_target_s", "unsteady"]

"""Runs the architecture probe's sampling on a truncated model, as advisor.probe.sampling decides.

The model is anything with prefill(n_tokens, with_head) and step(token, cache) returning
advisor.probe.arch_timing.Timed (the real one is arch_timing.TruncatedModel); the clock, the
budget, the energy meter and the progress callback are passed in, so the whole run can be driven
by a fake model on a fake clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from advisor.probe.arch_config import ArchProbeConfig
from advisor.probe.base import Budget, Progress, report
from advisor.probe.extrapolate import TimedSamples
from advisor.probe.layer_mix import LayerMix
from advisor.probe.sampling import (
    SamplingState,
    decode_blocks,
    decode_may_stop,
    next_round,
    prefill_fits,
    size_target_s,
    steadying_target_s,
)


class TimedModel(Protocol):
    def prefill(self, n_tokens: int, with_head: bool = True) -> Any: ...

    def step(self, token: Any, cache: Any) -> Any: ...


class Meter(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float | None: ...


class NoMeter:
    """No energy counter: every reading is unknown."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        return None


@dataclass(frozen=True)
class Plan:
    """What one probe run samples: the request's shape and the fixed plan's size."""

    full_depth: int
    prompt_tokens: int
    new_tokens: int
    decode_steps: int
    prefill_repeats: int
    warmup_steps: int
    mix: LayerMix | None = None        # a hybrid's timed layer kinds (extrapolated per kind)


@dataclass
class SampledRun:
    prefill: TimedSamples
    decode: TimedSamples
    notes: list[str] = field(default_factory=list)
    joules: float | None = None        # energy over the timed decode blocks (None: no counter)
    decode_s: float = 0.0              # wall time of those blocks
    sampled_s: float = 0.0             # from the first timed prefill to the last sample
    steadying_rounds: int = 0


class Sampler:
    """One run: a warm-up, the fixed plan (decode blocks alternating with prefill repeats), then the
    extra rounds of the size and steadying rules."""

    def __init__(self, model: TimedModel, plan: Plan, tuning: ArchProbeConfig, budget: Budget, *,
                 clock: Callable[[], float], progress: Progress | None = None, meter: Meter | None = None):
        self.model, self.plan, self.cfg, self.budget = model, plan, tuning, budget
        self.clock, self.progress, self.meter = clock, progress, meter or NoMeter()
        self.result = SampledRun(TimedSamples(mix=plan.mix), TimedSamples(mix=plan.mix), joules=0.0)
        self.head_times: list[float] = []
        self.timed_steps = self.prefills = self.extra_rounds = 0   # samples taken, extra rounds done
        self.stopped = False
        self.one_prefill_s = 0.0
        self._start = 0.0
        self._cache: Any = None
        self._token: Any = None

    def run(self) -> SampledRun:
        cfg, plan, run = self.cfg, self.plan, self.result
        # First timings of a process (and of a model) are slow: a short prompt is run and discarded, as
        # the full-model measurement does; decode is warmed again at its real context below.
        self.budget.check("the warm-up")
        report(self.progress, "warm-up", 0.05)
        self.model.prefill(min(plan.prompt_tokens, cfg.warmup_prompt_tokens))
        self.budget.check("the first prefill")
        report(self.progress, f"prefill {plan.prompt_tokens} tokens", 0.1)
        self._start = self.clock()
        first = self.model.prefill(plan.prompt_tokens)
        run.prefill.add(first.body_ms, first.layer_ms, first.head_ms, first.gap_ms)
        self.head_times.append(first.head_ms)
        self.prefills = 1
        self.one_prefill_s = (first.body_ms + first.head_ms) / 1000
        self._cache, self._token = first.cache, first.token
        del first
        for _ in range(plan.warmup_steps):
            t = self.model.step(self._token, self._cache)
            self._cache, self._token = t.cache, t.token
        # Decode steps and prefill repeats alternate, in blocks, so that both spread over the whole
        # probe: the machine's speed wanders (a fixed workload's 0.5 s windows differ by up to 26% on
        # the CI VM), and a slow moment then lands on a few samples of each, not on all of one kind.
        repeats = plan.prefill_repeats
        for r, block in enumerate(decode_blocks(plan.decode_steps, repeats, cfg.min_decode_samples)):
            self._decode_block(block)
            if self.stopped or (r + 1 < repeats and not self._prefill_repeat()):
                break
        round_s = self.one_prefill_s + cfg.round_decode_steps * statistics.median(run.decode.totals) / 1000
        L = plan.full_depth
        self._rounds(size_target_s(cfg, statistics.median(run.prefill.predictions(L)),
                                   statistics.median(run.decode.predictions(L)), plan.new_tokens),
                     round_s, while_unsteady=False)
        # When the machine's speed moved while sampling (the earlier and later halves disagree), more
        # rounds let the median settle on the speed that held most of the time.
        run.steadying_rounds = self._rounds(steadying_target_s(cfg, self.clock() - self._start), round_s,
                                            while_unsteady=True)
        if run.steadying_rounds:
            run.notes.append(f"timings moved while probing: {run.steadying_rounds} more rounds of samples were taken")
        run.sampled_s = self.clock() - self._start
        run.prefill.set_head(statistics.median(self.head_times))
        self._cache = self._token = None
        return run

    def state(self, round_s: float) -> SamplingState:
        L = self.plan.full_depth
        return SamplingState(elapsed_s=self.clock() - self._start, budget_left_s=self.budget.left, round_s=round_s,
                             extra_rounds=self.extra_rounds, stopped=self.stopped,
                             prefill=self.result.prefill.predictions(L), decode=self.result.decode.predictions(L))

    def _rounds(self, until_s: float, round_s: float, *, while_unsteady: bool) -> int:
        """Extra rounds (a prefill with its head timed, then decode steps) while the policy says so."""
        done = 0
        while next_round(self.cfg, self.state(round_s), until_s, while_unsteady=while_unsteady).another:
            if not self._prefill_repeat(with_head=True):
                break
            self._decode_block(self.cfg.round_decode_steps)
            self.extra_rounds += 1
            done += 1
        return done

    def _fraction(self) -> float:
        planned = self.plan.decode_steps + self.plan.prefill_repeats
        return 0.15 + 0.85 * (self.timed_steps + self.prefills) / planned

    def _decode_block(self, n: int) -> None:
        cfg, run = self.cfg, self.result
        self.meter.start()
        t_block = self.clock()
        for _ in range(n):
            if decode_may_stop(cfg, self.timed_steps):
                if self.budget.exhausted():
                    run.notes.append(f"stopped at the time budget after {self.timed_steps} of "
                                     f"{self.plan.decode_steps} decode steps")
                    self.stopped = True
                    break
            else:
                self.budget.check(f"{cfg.min_decode_samples} decode steps were timed")
            t = self.model.step(self._token, self._cache)
            self._cache, self._token = t.cache, t.token
            run.decode.add(t.body_ms, t.layer_ms, t.head_ms, t.gap_ms)
            self.timed_steps += 1
            report(self.progress, "decode steps", self._fraction())
        run.decode_s += self.clock() - t_block
        block_j = self.meter.stop()
        run.joules = None if run.joules is None or block_j is None else run.joules + block_j

    def _prefill_repeat(self, with_head: bool = False) -> bool:
        """One more prefill sample; its head is timed again `with_head`, up to head_prefill_samples
        timings, and every sample carries the median of those so far."""
        if not prefill_fits(self.cfg, self.one_prefill_s, self.budget.left):
            self.result.notes.append(f"stopped at the time budget after {self.prefills} of "
                                   f"{self.plan.prefill_repeats} prefill repeats")
            self.stopped = True
            return False
        report(self.progress, f"prefill {self.plan.prompt_tokens} tokens", self._fraction())
        timed_head = with_head and len(self.head_times) < self.cfg.head_prefill_samples
        t = self.model.prefill(self.plan.prompt_tokens, with_head=timed_head)
        if timed_head:
            self.head_times.append(t.head_ms)
        self.result.prefill.add(t.body_ms, t.layer_ms, statistics.median(self.head_times), t.gap_ms)
        self.prefills += 1
        return True


__all__ = ["NoMeter", "Plan", "SampledRun", "Sampler"]

"""The sampling run (advisor.probe.arch_sampler) on a fake model and a fake clock: exact counts, no torch.

The fake model (tests/probe_fakes.py): a prefill of the 2 timed layers costs 1 + 4 + 4 + 1 (gap) =
10 ms and its head 6 ms; a decode step 0.5 + 2 + 2 + 0.5 = 5 ms and its head 1 ms. At 30 layers a
prefill sample predicts 10 + 6 + 28 x (4 + 1) = 156 ms, a decode step 5 + 1 + 28 x 2.5 = 76 ms.
With 10 decode steps and 5 prefills the fixed plan takes, from the first timed prefill, 16 (first
prefill) + 12 (2 warm-up steps) + 5 x 12 (decode blocks) + 4 x 10 (body-only repeats) = 128 ms.
An extra round costs 16 + 12 = 28 ms while the head is timed again (twice), 22 ms after; the
policy prices a round at one first prefill and two decode bodies: 16 + 2 x 5 = 26 ms.
"""

from __future__ import annotations

import pytest

from advisor.probe.arch_config import ArchProbeConfig
from advisor.probe.arch_sampler import Plan, Sampler
from advisor.probe.base import Budget, BudgetExhausted
from tests.probe_fakes import FakeClock, FakeTruncatedModel

BASE_CALLS = ["P16h", "P16h", "S", "S"] + ["S", "S", "P16"] * 4 + ["S", "S"]


def sample(new_tokens: int = 8, budget_s: float = 30.0, decode_steps: int = 10, prefill_repeats: int = 5,
           model_kw: dict | None = None, **knobs):
    clock = FakeClock()
    model = FakeTruncatedModel(clock, **(model_kw or {}))
    plan = Plan(full_depth=30, prompt_tokens=16, new_tokens=new_tokens, decode_steps=decode_steps,
                prefill_repeats=prefill_repeats, warmup_steps=2)
    seen: list[tuple[str, float]] = []
    run = Sampler(model, plan, ArchProbeConfig(**knobs), Budget(budget_s, clock), clock=clock,
                  progress=lambda what, f: seen.append((what, f))).run()
    return run, model, seen


def test_the_fixed_plan_alternates_decode_blocks_and_prefill_repeats():
    run, model, seen = sample(new_tokens=4)     # target 0.25 x (156 + 4 x 76) = 115 ms: reached already
    assert model.calls == BASE_CALLS
    assert (len(run.prefill), len(run.decode)) == (5, 10)
    assert run.sampled_s == pytest.approx(0.128)
    assert run.prefill.predictions(30) == pytest.approx([156.0] * 5)
    assert run.decode.predictions(30) == pytest.approx([76.0] * 10)
    assert run.notes == [] and run.steadying_rounds == 0
    # progress moves forward only, from the warm-up to the last of the 15 planned samples
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.15 + 0.85 * 15 / 15)
    assert [w for w, _ in seen][:2] == ["warm-up", "prefill 16 tokens"]


def test_the_size_rule_samples_until_a_share_of_one_request():
    # 0.25 x (156 + 8 x 76) ms = 191 ms; rounds while more than half a round (13 ms) short of it:
    # 128 -> 156 -> 184 ms, then 184 >= 178 stops
    run, model, _ = sample(new_tokens=8)
    assert model.calls == BASE_CALLS + ["P16h", "S", "S"] * 2
    assert (len(run.prefill), len(run.decode)) == (7, 14)
    assert run.sampled_s == pytest.approx(0.184)


def test_at_least_t_seconds_without_the_size_rule():
    # no share of the request, but at least 190 ms: the same two rounds (184 >= 190 - 13)
    run, model, _ = sample(new_tokens=8, sample_share=0.0, min_sample_s=0.19)
    assert len(run.prefill) == 7 and run.sampled_s == pytest.approx(0.184)
    run, model, _ = sample(new_tokens=8, sample_share=0.0)
    assert model.calls == BASE_CALLS


@pytest.mark.parametrize("knobs,rounds", [
    ({}, 15),                          # 0.25 x (156 + 32 x 76) = 647 ms: far; the 15-round cap stops first
    ({"max_extra_rounds": 3}, 3),
    ({"sample_max_s": 0.2}, 3),        # 128 -> 156 -> 184 -> 206 ms, the first >= 200 - 13
])
def test_extra_rounds_stop_at_the_caps(knobs, rounds):
    run, model, _ = sample(new_tokens=32, **knobs)
    assert model.calls == BASE_CALLS + (["P16h", "S", "S"] * 2 + ["P16", "S", "S"] * (rounds - 2))
    assert (len(run.prefill), len(run.decode)) == (5 + rounds, 10 + 2 * rounds)


def test_the_prefill_head_is_the_median_of_its_timings():
    # heads: the warm-up's 1 ms, the first prefill's 80 ms (a stall), then 5 ms in the extra rounds
    run, _, _ = sample(new_tokens=32, model_kw={"prefill_heads": (1.0, 80.0, 5.0)})
    assert run.prefill.head == [5.0] * len(run.prefill)              # median of 80, 5, 5
    assert run.prefill.predictions(30) == pytest.approx([10 + 5 + 28 * 5.0] * len(run.prefill))
    # timed at most head_prefill_samples times: rounds after the second time the body only
    run, model, _ = sample(new_tokens=32, max_extra_rounds=4, head_prefill_samples=2,
                           model_kw={"prefill_heads": (1.0, 80.0, 5.0)})
    assert model.calls[len(BASE_CALLS):] == ["P16h", "S", "S"] + ["P16", "S", "S"] * 3
    assert run.prefill.head == [42.5] * 9                            # median of 80 and 5


def test_a_machine_that_slows_down_half_way_gets_steadying_rounds():
    # layers run 10x slower from the 13th forward on (the third prefill repeat): the earlier and later
    # halves of the samples disagree by far more than 8%
    slow = {"slow": lambda n: 1.0 if n < 12 else 10.0}
    run, model, _ = sample(new_tokens=8, sample_share=0.0, model_kw=slow)
    assert run.steadying_rounds > 0 and len(run.prefill) == 5 + run.steadying_rounds
    assert run.notes == [f"timings moved while probing: {run.steadying_rounds} more rounds of samples were taken"]
    # the same model judged with a tolerance it cannot exceed: no rounds
    run, model, _ = sample(new_tokens=8, sample_share=0.0, unsteady_tolerance=100.0, model_kw=slow)
    assert run.steadying_rounds == 0 and model.calls == BASE_CALLS and run.notes == []


def test_steadying_time_is_a_share_of_the_time_sampled():
    slow = {"slow": lambda n: 1.0 if n < 12 else 10.0}
    plan_only, _, _ = sample(new_tokens=8, sample_share=0.0, unsteady_tolerance=100.0, model_kw=slow)
    # a slow round: a prefill (1 + 40 + 40 + 1 ms) and its head (6 ms), two steps (0.5 + 20 + 20 + 0.5 + 1 ms)
    slow_round_s = (82 + 6 + 2 * 42) / 1000
    rounds = []
    for extra in (0.25, 1.0):
        run, _, _ = sample(new_tokens=8, sample_share=0.0, unsteady_extra=extra, model_kw=slow)
        # a round starts only while short of (1 + extra) x the plan's time, and then takes one round
        assert run.sampled_s < (1 + extra) * plan_only.sampled_s + slow_round_s
        rounds.append(run.steadying_rounds)
    assert 0 < rounds[0] < rounds[1] < 15         # more time, more rounds; below the round cap
    assert sample(new_tokens=8, sample_share=0.0, unsteady_extra=0.0, model_kw=slow)[0].steadying_rounds == 0


def test_the_budget_stops_decoding_with_a_note():
    # budget 300 ms from the clock's start: warm-up prefill 16 + first prefill 16 + 2 warm steps 12 = 44 ms,
    # then the first of two 100-step blocks: steps start at 44, 50, ... ms; the one at 302 ms is not taken
    run, model, _ = sample(new_tokens=200, budget_s=0.3, decode_steps=200, prefill_repeats=2)
    assert (len(run.prefill), len(run.decode)) == (1, 43)
    assert run.notes == ["stopped at the time budget after 43 of 200 decode steps"]
    assert model.calls == ["P16h", "P16h", "S", "S"] + ["S"] * 43


def test_the_budget_stops_prefill_repeats_with_a_note():
    # blocks of 4 steps (24 ms) then a 10 ms repeat: a repeat needs 1.2 x 16 ms left. After the
    # 27th repeat the clock is at 44 + 27 x 34 = 962 ms; the next block ends at 986 ms, 14 ms left
    run, _, _ = sample(new_tokens=200, budget_s=1.0, decode_steps=200, prefill_repeats=50)
    assert (len(run.prefill), len(run.decode)) == (28, 112)
    assert run.notes == ["stopped at the time budget after 28 of 50 prefill repeats"]


def test_a_budget_gone_before_two_decode_steps_is_an_error():
    with pytest.raises(BudgetExhausted, match="before 2 decode steps were timed"):
        sample(budget_s=0.040)      # 32 ms of prefills + 12 of warm-up steps: gone before the first timed step

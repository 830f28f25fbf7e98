"""The architecture probe's sampling policy (advisor.probe.sampling): pure functions, hand-computed tables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from advisor.probe.arch_config import ArchProbeConfig
from advisor.probe.sampling import (
    SamplingState,
    decode_blocks,
    decode_may_stop,
    next_round,
    prefill_fits,
    size_target_s,
    steadying_target_s,
    unsteady,
)

DEFAULT = ArchProbeConfig()


@pytest.mark.parametrize("steps,repeats,first_min,expected", [
    (10, 5, 2, [2, 2, 2, 2, 2]),
    (10, 3, 2, [4, 3, 3]),
    (3, 5, 2, [2, 1, 0, 0, 0]),      # the first block takes two steps from the end
    (1, 4, 2, [1, 0, 0, 0]),         # cannot have two when there is one
    (7, 1, 2, [7]),
    (6, 3, 4, [4, 2, 0]),            # a larger first block, taken from the last blocks first
    (5, 0, 2, [5]),                  # no repeats: one block
])
def test_decode_steps_are_spread_between_the_prefill_repeats(steps, repeats, first_min, expected):
    blocks = decode_blocks(steps, repeats, first_min)
    assert blocks == expected and sum(blocks) == steps


@pytest.mark.parametrize("predictions,tolerance,min_samples,expected", [
    ([100, 101, 99, 100, 102, 100], 0.08, 4, False),
    ([100, 101, 99, 120, 122, 121], 0.08, 4, True),     # slowed by a fifth half-way: 101 vs 121
    ([100, 100, 100, 107, 107, 107], 0.08, 4, False),   # 7% is within 8%
    ([100, 100, 100, 109, 109, 109], 0.08, 4, True),    # 9% is not
    ([100, 100, 100, 107, 107, 107], 0.05, 4, True),    # ... nor 7% within 5%
    ([120, 121, 100, 101], 0.08, 4, True),              # faster later counts too: 120.5 vs 100.5
    ([100, 200, 100], 0.08, 4, False),                  # too few samples to tell
    ([100, 200, 100], 0.08, 2, True),                   # 100 vs median(200, 100) = 150
    ([], 0.08, 4, False),
])
def test_unsteady_compares_the_earlier_and_later_half(predictions, tolerance, min_samples, expected):
    assert unsteady(predictions, tolerance, min_samples) is expected


@pytest.mark.parametrize("knobs,prefill_ms,decode_ms,new_tokens,expected_s", [
    ({}, 600.0, 40.0, 32, 0.47),                                 # 0.25 x (600 + 32 x 40) ms
    ({}, 2000.0, 200.0, 64, 2.0),                                # 0.25 x 14.8 s = 3.7 s, capped at 2 s
    ({"sample_max_s": 1.0}, 2000.0, 200.0, 64, 1.0),
    ({"sample_share": 0.0}, 600.0, 40.0, 32, 0.0),               # no size rule
    ({"min_sample_s": 1.0}, 600.0, 40.0, 32, 1.0),               # at least T seconds
    ({"min_sample_s": 0.3}, 600.0, 40.0, 32, 0.47),              # ... the share is more
    ({"min_sample_s": 1.5, "sample_max_s": 1.5}, 2000.0, 200.0, 64, 1.5),
])
def test_size_target_is_a_share_of_one_request_with_a_floor_and_a_cap(knobs, prefill_ms, decode_ms, new_tokens,
                                                                       expected_s):
    cfg = ArchProbeConfig(**knobs)
    assert size_target_s(cfg, prefill_ms, decode_ms, new_tokens) == pytest.approx(expected_s)


@pytest.mark.parametrize("knobs,sampled_s,expected_s", [
    ({}, 1.0, 1.25),                        # a quarter more
    ({}, 10.0, 12.0),                       # 12.5 s, but at most 2 s more
    ({"unsteady_extra": 0.0}, 1.0, 1.0),    # no steadying
    ({"sample_max_s": 0.1}, 1.0, 1.1),
])
def test_steadying_target_is_a_share_more_at_most_the_cap_more(knobs, sampled_s, expected_s):
    assert steadying_target_s(ArchProbeConfig(**knobs), sampled_s) == pytest.approx(expected_s)


STEADY = [100.0] * 6
MOVED = [100.0, 100.0, 100.0, 120.0, 120.0, 120.0]


@pytest.mark.parametrize("state,until_s,while_unsteady,another,reason", [
    # size rule: rounds of 0.5 s while more than half a round is left to the 2 s target (1.75 s)
    (SamplingState(0.50, 30.0, 0.5, 0), 2.0, False, True, "below target"),
    (SamplingState(1.74, 30.0, 0.5, 0), 2.0, False, True, "below target"),
    (SamplingState(1.75, 30.0, 0.5, 0), 2.0, False, False, "target reached"),
    (SamplingState(2.50, 30.0, 0.5, 0), 2.0, False, False, "target reached"),
    # caps: rounds, the budget margin (more than 1.5 rounds left), an earlier budget stop
    (SamplingState(0.50, 30.0, 0.5, 15), 2.0, False, False, "round cap"),
    (SamplingState(0.50, 30.0, 0.5, 14), 2.0, False, True, "below target"),
    (SamplingState(0.50, 0.75, 0.5, 0), 2.0, False, False, "budget margin"),
    (SamplingState(0.50, 0.76, 0.5, 0), 2.0, False, True, "below target"),
    (SamplingState(0.50, 30.0, 0.5, 0, stopped=True), 2.0, False, False, "the budget stopped sampling"),
    # steadying rule: only while the prefill or the decode samples moved, within the same limits
    (SamplingState(0.50, 30.0, 0.5, 0, prefill=STEADY, decode=STEADY), 2.0, True, False, "steady"),
    (SamplingState(0.50, 30.0, 0.5, 0, prefill=MOVED, decode=STEADY), 2.0, True, True, "unsteady"),
    (SamplingState(0.50, 30.0, 0.5, 0, prefill=STEADY, decode=MOVED), 2.0, True, True, "unsteady"),
    (SamplingState(1.75, 30.0, 0.5, 0, prefill=MOVED, decode=MOVED), 2.0, True, False, "target reached"),
    (SamplingState(0.50, 30.0, 0.5, 15, prefill=MOVED, decode=MOVED), 2.0, True, False, "round cap"),
])
def test_next_round(state, until_s, while_unsteady, another, reason):
    d = next_round(DEFAULT, state, until_s, while_unsteady=while_unsteady)
    assert (d.another, d.reason) == (another, reason)


def test_next_round_reads_its_knobs():
    state = SamplingState(0.5, 30.0, 0.1, 3, prefill=[100.0, 100.0, 105.0, 105.0])
    assert next_round(DEFAULT, state, 1.0, while_unsteady=True).reason == "steady"              # 5% < 8%
    assert next_round(ArchProbeConfig(unsteady_tolerance=0.04), state, 1.0, while_unsteady=True).another
    assert next_round(ArchProbeConfig(max_extra_rounds=3), state, 1.0, while_unsteady=False).reason == "round cap"
    assert next_round(ArchProbeConfig(round_budget_margin=400), state, 1.0,
                      while_unsteady=False).reason == "budget margin"                          # 30 s <= 40 s


@pytest.mark.parametrize("knobs,timed,expected", [({}, 0, False), ({}, 1, False), ({}, 2, True), ({}, 9, True),
                                                   ({"min_decode_samples": 4}, 3, False)])
def test_the_budget_may_stop_decoding_only_after_the_minimum_of_steps(knobs, timed, expected):
    assert decode_may_stop(ArchProbeConfig(**knobs), timed) is expected


@pytest.mark.parametrize("one_prefill_s,left_s,expected", [(0.5, 0.6, True), (0.5, 0.59, False), (0.5, 10, True),
                                                           (0.0, 0.0, True)])
def test_a_prefill_repeat_needs_its_time_and_a_fifth_more(one_prefill_s, left_s, expected):
    assert prefill_fits(DEFAULT, one_prefill_s, left_s) is expected


def test_config_refuses_a_floor_above_the_cap_and_unknown_knobs():
    with pytest.raises(ValidationError, match="min_sample_s"):
        ArchProbeConfig(min_sample_s=3.0, sample_max_s=2.0)
    with pytest.raises(ValidationError):
        ArchProbeConfig(unsteady=0.1)          # a misspelt knob is an error, not ignored
    with pytest.raises(ValidationError):
        ArchProbeConfig(sample_share=-0.1)


def test_depth_by_device():
    cfg = ArchProbeConfig(cpu_layers=3, gpu_layers=6)
    assert (cfg.layers_for("cpu"), cfg.layers_for("cuda:0")) == (3, 6)

"""From truncated-forward timings to full-depth predictions (advisor.probe.extrapolate): hand-computed."""

from __future__ import annotations

import pytest

from advisor.probe.extrapolate import TimedSamples, extrapolate


@pytest.mark.parametrize("total,head,timed,full,layer,gap,expected", [
    (10.0, 7.0, 2, 24, 3.0, 0.5, 10 + 7 + 22 * 3.5),
    (10.0, 7.0, 2, 2, 3.0, 0.5, 17.0),          # nothing missing
    (6.0, 2.0, 1, 1, 4.0, 0.0, 8.0),            # a one-layer model
    (20.0, 0.0, 4, 32, 1.5, 0.0, 20 + 28 * 1.5),
])
def test_one_sample_at_full_depth(total, head, timed, full, layer, gap, expected):
    assert extrapolate(total, head, timed, full, layer, gap) == pytest.approx(expected)


def test_missing_layers_are_priced_at_the_typical_later_layer_and_gap():
    s = TimedSamples()
    # 2 timed layers: the first runs colder (5 ms) than the later one (3 ms); 0.5 ms between them
    s.add(total_ms=10.0, layer_ms=[5.0, 3.0], head_ms=7.0, gap_ms=[0.5])
    s.add(total_ms=11.0, layer_ms=[5.0, 3.0], head_ms=9.0, gap_ms=[0.5])
    # each sample: its own forward and head + 22 missing layers at 3 ms + 0.5 ms
    assert s.predictions(24) == pytest.approx([10 + 7 + 22 * 3.5, 11 + 9 + 22 * 3.5])
    c = s.components()
    assert (c.fixed_ms, c.layer_ms, c.first_layer_ms, c.gap_ms, c.lm_head_ms, c.layer_samples, c.samples) == \
        (2.0, 3.0, 5.0, 0.5, 8.0, 4, 2)


def test_a_stall_in_one_timed_layer_is_counted_once_not_times_the_depth():
    s = TimedSamples()
    for _ in range(4):
        s.add(total_ms=10.0, layer_ms=[4.0, 4.0], head_ms=5.0)
    s.add(total_ms=40.0, layer_ms=[4.0, 34.0], head_ms=5.0)      # another process took 30 ms
    preds = s.predictions(30)
    assert preds[:4] == pytest.approx([10 + 5 + 28 * 4] * 4)
    assert preds[4] == pytest.approx(preds[0] + 30)              # the stall costs its 30 ms once
    # scaling the stalled sample's own mean layer (19 ms) by the depth would have said 15 + 30 x 19
    assert preds[4] < 10 + 5 + 28 * 19


def test_the_typical_layer_is_a_median_over_later_layers_of_every_sample():
    s = TimedSamples()
    s.add(total_ms=12.0, layer_ms=[6.0, 2.0, 3.0], head_ms=1.0, gap_ms=[0.25, 0.25])
    s.add(total_ms=12.0, layer_ms=[6.0, 4.0, 2.0], head_ms=1.0, gap_ms=[0.5, 0.25])
    # later layers 2, 3, 4, 2 -> 2.5; gaps 0.25, 0.25, 0.5, 0.25 -> 0.25; 7 missing layers
    assert (s.typical_layer_ms(), s.typical_gap_ms()) == (2.5, 0.25)
    assert s.predictions(10) == pytest.approx([12 + 1 + 7 * 2.75] * 2)
    assert s.components().first_layer_ms == 6.0


def test_one_layer_models_are_priced_from_their_only_layer():
    s = TimedSamples()
    s.add(total_ms=6.0, layer_ms=[4.0], head_ms=2.0)
    assert s.predictions(1) == [8.0]
    assert s.predictions(3) == pytest.approx([8.0 + 2 * 4.0])
    assert s.components().first_layer_ms is None


def test_one_head_figure_for_every_prefill_sample():
    s = TimedSamples()
    s.add(total_ms=10.0, layer_ms=[4.0, 4.0], head_ms=80.0)
    s.add(total_ms=10.0, layer_ms=[4.0, 4.0], head_ms=5.0)
    s.set_head(5.0)
    assert s.head == [5.0, 5.0] and s.predictions(2) == [15.0, 15.0] and len(s) == 2

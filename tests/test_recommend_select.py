"""Selection, ranking and the Pareto frontier on hand-built candidates, with hand-worked expectations."""

from __future__ import annotations

import pytest

from advisor.recommend import pareto
from advisor.recommend.schema import Candidate
from advisor.recommend.select import best, choose, closest_misses, rank_key


def cand(key, q, p95, mem, tier="small", passed=True, binding=()):
    return Candidate(key=key, model=key, name=key, tier=tier, format="bf16", target="t", params_total=1,
                     license="mit", verdict="fits", memory_bytes=mem, memory_limit_bytes=10**12, memory_basis="spec",
                     ttft_ms=1.0, decode_ms_per_token=1.0, e2e_p50_ms=p95, e2e_p95_ms=p95, tokens_per_s=1.0,
                     latency_basis="spec", latency_bound="compute", quality_proxy=q, passed=passed,
                     binding=list(binding), reasons=[f"fails {b}" for b in binding])


def test_frontier_by_hand():
    # a: best quality; b: faster than a, lower quality; c: dominated by b (worse on all three);
    # d: least memory only; e: same figures as b (neither dominates the other: both stay)
    a = cand("a", 80, 3000, 10)
    b = cand("b", 70, 1000, 10)
    c = cand("c", 60, 2000, 20)
    d = cand("d", 50, 5000, 1)
    e = cand("e", 70, 1000, 10)
    f = cand("f", 70, 1000, 20)     # as good as b on quality and latency, worse on memory: dominated
    assert {x.key for x in pareto.frontier([a, b, c, d, e, f])} == {"a", "b", "d", "e"}
    assert pareto.dominates(b, f) and not pareto.dominates(f, b) and not pareto.dominates(b, e)


def test_unscored_never_dominates_a_scored_candidate_on_quality():
    scored = cand("s", 10, 5000, 50)
    unscored = cand("u", None, 1, 1)            # faster and smaller, but no quality: neither dominates
    assert {x.key for x in pareto.frontier([scored, unscored])} == {"s", "u"}
    assert not pareto.dominates(unscored, scored) and not pareto.dominates(scored, unscored)


def test_rank_key_orders_quality_then_latency_then_memory_then_id():
    order = [cand("q90", 90, 9000, 90), cand("q80-fast", 80, 100, 90), cand("q80-slow-small", 80, 200, 1),
             cand("q80-slow-big-a", 80, 200, 5), cand("q80-slow-big-b", 80, 200, 5), cand("zero", 0.0, 1, 1),
             cand("unscored", None, 1, 1)]
    assert [c.key for c in sorted(reversed(order), key=rank_key)] == [c.key for c in order]


def test_a_score_of_zero_is_a_score():
    assert best([cand("zero", 0.0, 100, 1), cand("unscored", None, 1, 1)]).key == "zero"


@pytest.mark.parametrize("gain,small_q,large_q,expect", [
    (2.0, 70.0, 72.0, "large"),     # exactly the gain: large
    (2.0, 70.0, 71.9, "small"),     # just under: small
    (0.0, 70.0, 70.0, "large"),     # no gain required: ties go large
    (2.0, None, 60.0, "large"),     # an unscored small is not eligible at all
])
def test_pick_needs_the_quality_gain(gain, small_q, large_q, expect):
    s = cand("s", small_q, 100, 1, tier="small")
    big = cand("l", large_q, 1000, 10, tier="large")
    sel = choose([s, big], gain)
    assert sel.pick.key == ("l" if expect == "large" else "s")
    assert sel.large.key == "l"
    assert (sel.small.key == "s") if small_q is not None else sel.small is None


def test_only_passing_candidates_are_picked_or_on_the_frontier():
    ok = cand("ok", 50, 100, 1)
    bad = cand("bad", 99, 1, 1, passed=False, binding=["license"])
    sel = choose([ok, bad], 2.0)
    assert sel.pick.key == "ok" and sel.frontier == ["ok"]
    assert [c.on_frontier for c in sel.candidates] == [True, False]


def test_closest_misses_fewest_limits_then_smallest_violation():
    # (one row per model; filters the user set and unscored models are never closest misses)
    one_far = cand("one-far", 50, 1, 1, passed=False, binding=["max_latency_ms"])
    one_near = cand("one-near", 50, 1, 1, passed=False, binding=["max_latency_ms"])
    two = cand("two", 50, 1, 1, passed=False, binding=["max_latency_ms", "memory"])
    never = cand("never", 50, 1, 1, passed=False, binding=["request"])
    got = closest_misses([two, one_far, never, one_near], {"one-far": 0.9, "one-near": 0.1, "two": 0.0})
    assert [c.key for c in got] == ["one-near", "one-far", "two"]


def test_closest_misses_skip_filters_unscored_and_repeat_models():
    a = cand("a", 50, 1, 1, passed=False, binding=["max_latency_ms"])
    a2 = cand("a2", 50, 1, 1, passed=False, binding=["max_latency_ms"]).model_copy(update={"model": "a"})
    lic = cand("lic", 90, 1, 1, passed=False, binding=["license"])
    unscored = cand("u", None, 1, 1, passed=False, binding=["max_latency_ms"])
    got = closest_misses([a, a2, lic, unscored], {"a": 0.5, "a2": 0.1})
    assert [c.key for c in got] == ["a2"]
    assert [c.key for c in closest_misses([unscored], {}, allow_unscored=True)] == ["u"]


def test_unscored_is_never_the_pick_unless_allowed():
    unscored = cand("u", None, 10, 1, tier="small")
    scored = cand("s", 20.0, 5000, 50, tier="small")
    assert choose([unscored, scored], 2.0).pick.key == "s"
    assert choose([unscored], 2.0).pick is None
    assert choose([unscored], 2.0, allow_unscored=True).pick.key == "u"


def test_closest_large_is_admissible_and_misses_least():
    from advisor.recommend.select import closest_large

    best_but_filtered = cand("licensed-out", 95, 100, 10, tier="large", passed=False, binding=["license"])
    far = cand("far", 80, 100, 10, tier="large", passed=False, binding=["max_latency_ms", "memory"])
    near = cand("near", 70, 100, 10, tier="large", passed=False, binding=["max_latency_ms"])
    got = closest_large([best_but_filtered, far, near], {"near": 0.2, "far": 0.1})
    assert got.key == "near"


class _FakeProbes:
    """measure() returns the candidate with a measured latency (a factor x its calibrated one)."""

    def __init__(self, factor):
        self.factor, self.contradictions, self.measured = factor, [], []

    def measure(self, c, estimates, failfn, left=None):
        self.measured.append(c.key)
        p95 = c.e2e_p95_ms * self.factor
        if abs(self.factor - 1) > 0.3:
            self.contradictions.append((c.key, self.factor))
        passed = p95 <= 1000
        return c.model_copy(update={"e2e_p95_ms": p95, "latency_basis": "measured", "passed": passed,
                                    "binding": [] if passed else ["max_latency_ms"]})


def _plan():
    from types import SimpleNamespace

    return SimpleNamespace(catalog=SimpleNamespace(tiers={}), allow_unscored=False)


def test_the_pick_is_measured_and_a_contradicted_calibration_is_flagged():
    from advisor.recommend.engine import _measure_the_pick

    a = cand("a", 80, 600, 1).model_copy(update={"latency_basis": "calibrated"})
    b = cand("b", 70, 400, 1).model_copy(update={"latency_basis": "calibrated"})
    sel = choose([a, b], 0.0)
    assert sel.pick.key == "a"
    probes = _FakeProbes(factor=2.0)          # a measures 1200 ms: over the 1000 ms budget
    sel2, warnings = _measure_the_pick(_plan(), sel, [a, b], {}, probes, None)
    assert probes.measured == ["a", "b"]       # a was ruled out by its measurement, so b was measured too
    assert sel2.pick.key == "b" and sel2.pick.latency_basis == "measured"
    assert any("contradict" in w for w in warnings)
    assert all(c.latency_reliable for c in sel2.candidates if c.latency_basis == "measured")


def test_a_measurement_that_agrees_leaves_the_calibration_trusted():
    from advisor.recommend.engine import _measure_the_pick

    a = cand("a", 80, 600, 1).model_copy(update={"latency_basis": "calibrated"})
    b = cand("b", 70, 400, 1).model_copy(update={"latency_basis": "calibrated"})
    probes = _FakeProbes(factor=1.1)
    sel2, warnings = _measure_the_pick(_plan(), choose([a, b], 0.0), [a, b], {}, probes, None)
    assert probes.measured == ["a"] and sel2.pick.key == "a" and warnings == []
    assert all(c.latency_reliable for c in sel2.candidates)

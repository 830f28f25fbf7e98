"""check's view of the rule table on hand-made estimates: one CheckResult per rule, with value, limit,
unit, basis and a message, the does-not-fit note, the quality detail and an engine's own memory reserve."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from advisor.check.rules import check_results, figures
from advisor.rules.limits import Limits
from advisor.rules.table import RuleSet


def est(verdict="fits", need=9e9, have=10e9, p95=2000.0, ttft=300.0, tps=50.0, pool=None, fraction=None):
    return NS(format="bf16", memory=NS(verdict=verdict, per_device_bytes=need, available_bytes=have, basis="spec",
                                       kv_pool_bytes=pool, memory_fraction=fraction),
              latency=NS(e2e_p95_ms=p95, ttft_ms=ttft, tokens_per_s=tps, basis="calibrated", decode_ms_per_token=20.0))


ENTRY = NS(params_total=3_000_000_000, license="apache-2.0")


def by_name(results):
    return {r.name: r for r in results}


def test_every_limit_gives_one_named_result_with_its_numbers():
    rules = RuleSet(limits=Limits(max_latency_ms=2500, max_ttft_ms=200, min_tokens_per_s=40, min_quality=70,
                                  max_params=2e9), license=["apache-2.0"])
    r = by_name(check_results(est(), "t", rules, ENTRY, 60.0, {}, quality_detail="ifeval=80"))
    assert list(r) == ["params", "license", "fits-memory", "memory-headroom", "latency-p95", "ttft",
                       "tokens-per-s", "quality-proxy"]
    assert (r["latency-p95"].status, r["latency-p95"].value, r["latency-p95"].limit, r["latency-p95"].unit,
            r["latency-p95"].basis) == ("pass", 2000.0, 2500, "ms", "calibrated")
    assert (r["ttft"].status, r["ttft"].value) == ("fail", 300.0)
    assert (r["tokens-per-s"].status, r["tokens-per-s"].unit) == ("pass", "tokens/s")
    assert (r["quality-proxy"].status, r["quality-proxy"].basis) == ("fail", "proxy")
    assert r["quality-proxy"].message.endswith("[ifeval=80]")
    assert (r["params"].status, r["params"].value, r["params"].limit) == ("fail", 3e9, 2e9)
    assert (r["license"].status, r["license"].value) == ("pass", "apache-2.0")
    assert (r["fits-memory"].value, r["fits-memory"].limit, r["memory-headroom"].limit) == (9.0, 10.0, 9.0)
    assert r["memory-headroom"].status == "pass"                  # 9.0 <= 10 x 0.9, at the limit


def test_a_model_that_does_not_fit_is_timed_as_if_served_and_says_so():
    r = by_name(check_results(est(verdict="does-not-fit", need=20e9), "t", RuleSet(limits=Limits(max_latency_ms=1e6)),
                              ENTRY, None, {}))
    assert r["fits-memory"].status == "fail" and r["memory-headroom"].status == "fail"
    assert r["latency-p95"].status == "pass"
    assert r["latency-p95"].message.endswith("(if it were served: memory verdict does-not-fit)")
    assert "if it were served" not in r["fits-memory"].message


def test_outside_the_catalog_licence_and_quality_are_unknown_unless_required():
    loose = RuleSet(limits=Limits(min_quality=50), license=["mit"])
    r = by_name(check_results(est(), "t", loose, None, None, {}, params_total=7_000_000_000))
    assert r["license"].status == "unknown" and r["quality-proxy"].status == "unknown"
    strict = RuleSet(limits=Limits(min_quality=50), license=["mit"], require_known=frozenset({"license", "quality"}))
    r = by_name(check_results(est(), "t", strict, None, None, {}, params_total=7_000_000_000))
    assert r["license"].status == "fail" and r["quality-proxy"].status == "fail"


@pytest.mark.parametrize("pool,fraction,reserved", [(5e9, 0.9, pytest.approx(0.1)), (None, 0.9, None),
                                                    (5e9, None, None)])
def test_an_engine_pool_means_its_own_reserve(pool, fraction, reserved):
    f = figures(est(pool=pool, fraction=fraction), ENTRY, None)
    assert f.memory_reserved_fraction == reserved
    assert f.params_total == 3_000_000_000 and figures(est(), ENTRY, None, 5).params_total == 5


def test_engine_reserve_replaces_the_default_headroom_in_check():
    e = est(need=9.5e9, pool=1e9, fraction=0.9)
    r = by_name(check_results(e, "t", RuleSet(limits=Limits()), ENTRY, None, {}))
    assert r["memory-headroom"].status == "pass" and r["memory-headroom"].limit == 10.0   # all the pool offers
    r = by_name(check_results(e, "t", RuleSet(limits=Limits(memory_headroom=0.1)), ENTRY, None, {}))
    assert r["memory-headroom"].status == "fail"


def test_values_are_rounded_to_three_decimals_and_the_quality_detail_only_when_given():
    e = est(p95=2000.123456)
    r = by_name(check_results(e, "t", RuleSet(limits=Limits(max_latency_ms=3000, min_quality=10)), ENTRY, 60.0, {}))
    assert r["latency-p95"].value == 2000.123
    assert "[" not in r["quality-proxy"].message and "[" not in r["latency-p95"].message
    with_detail = by_name(check_results(e, "t", RuleSet(limits=Limits(max_latency_ms=3000)), ENTRY, 60.0, {},
                                        quality_detail="ifeval=80"))
    assert "[" not in with_detail["latency-p95"].message     # the detail belongs to the quality proxy alone

"""The shared rule table: hand-computed values below, at and above every limit, and the proof that
recommend and check give the same verdict on the same inputs (licence spelling included)."""

from __future__ import annotations

import pytest

from advisor.catalog.loader import get_catalog
from advisor.errors import UsageError
from advisor.rules.licences import canonical, resolve_allow_list
from advisor.rules.limits import LIMIT_KEYS, Limits
from advisor.rules.resolve import resolve_rules
from advisor.rules.table import (
    RULES_BY_KEY,
    THRESHOLD_RULES,
    Figures,
    RuleSet,
    evaluate,
    failures,
    memory_results,
    threshold_result,
)

FIG = Figures(format="bf16", memory_verdict="fits", memory_bytes=9e9, memory_available_bytes=10e9,
              e2e_p95_ms=2000.0, ttft_ms=300.0, tokens_per_s=50.0, quality=60.0, params_total=3e9,
              license="apache-2.0")


def test_every_limit_has_a_rule_and_every_rule_a_limit():
    assert set(RULES_BY_KEY) | {"memory_headroom"} == set(LIMIT_KEYS)
    from advisor.check.schema import CHECK_NAMES

    assert {r.check for r in THRESHOLD_RULES} | {"fits-memory", "memory-headroom", "license", "format"} \
        == set(CHECK_NAMES)


# (rule key, limit, expected status, expected violation): FIG's figure is 2000 ms / 300 ms / 50 tok/s / 60 / 3e9
CASES = [
    ("max_latency_ms", 2500.0, "pass", 0.0),
    ("max_latency_ms", 2000.0, "pass", 0.0),           # at the limit passes
    ("max_latency_ms", 1600.0, "fail", 0.25),          # 2000 / 1600 - 1
    ("max_ttft_ms", 300.0, "pass", 0.0),
    ("max_ttft_ms", 200.0, "fail", 0.5),               # 300 / 200 - 1
    ("min_tokens_per_s", 40.0, "pass", 0.0),
    ("min_tokens_per_s", 50.0, "pass", 0.0),
    ("min_tokens_per_s", 80.0, "fail", 0.6),           # 80 / 50 - 1
    ("min_quality", 60.0, "pass", 0.0),
    ("min_quality", 75.0, "fail", 0.25),               # 75 / 60 - 1
    ("max_params", 3e9, "pass", 0.0),
    ("max_params", 2e9, "fail", 0.5),                  # 3e9 / 2e9 - 1
]


@pytest.mark.parametrize("key,limit,status,violation", CASES)
def test_threshold_rules_below_at_and_above_the_limit(key, limit, status, violation):
    r = threshold_result(RULES_BY_KEY[key], FIG, limit, required=True)
    assert r.status == status
    assert r.violation == pytest.approx(violation)
    assert r.rule == key and r.value == getattr(FIG, RULES_BY_KEY[key].figure) and r.limit == limit


def test_latency_message_names_value_limit_and_basis():
    r = threshold_result(RULES_BY_KEY["max_latency_ms"], FIG, 1600.0, required=True)
    assert r.message == "p95 end-to-end 2.00 s exceeds the budget of 1.60 s (spec)"


def test_unknown_quality_is_unknown_unless_required():
    unscored = Figures(format="bf16", quality=None)
    rule = RULES_BY_KEY["min_quality"]
    assert threshold_result(rule, unscored, 50, required=False).status == "unknown"
    required = threshold_result(rule, unscored, 50, required=True)
    assert required.status == "fail" and required.violation == 1.0 and "unscored" in required.message


@pytest.mark.parametrize("need,headroom,fits,head", [
    (8.0e9, 0.10, "pass", "pass"),      # 8 <= 10 x 0.9 = 9
    (9.0e9, 0.10, "pass", "pass"),      # exactly at the headroom limit
    (9.5e9, 0.10, "pass", "fail"),      # fits the device, not the 9 GB it may use
    (9.5e9, 0.0, "pass", "pass"),
])
def test_memory_headroom_sign(need, headroom, fits, head):
    fig = Figures(format="bf16", memory_verdict="fits", memory_bytes=need, memory_available_bytes=10e9)
    fit_r, head_r = memory_results(fig, headroom)
    assert (fit_r.status, head_r.status) == (fits, head)
    if head == "fail":
        assert head_r.violation == pytest.approx(need / 9e9 - 1)


def test_does_not_fit_fails_both_and_counts_once_in_failures():
    fig = Figures(format="bf16", memory_verdict="does-not-fit", memory_bytes=20e9, memory_available_bytes=10e9,
                  e2e_p95_ms=1.0, ttft_ms=1.0, tokens_per_s=1.0)
    results = evaluate(fig, RuleSet(limits=Limits()))
    assert [r.status for r in results if r.rule == "memory"] == ["fail", "fail"]
    fails = failures(results)
    assert [r.rule for r in fails] == ["memory"]
    assert fails[0].violation == pytest.approx(20e9 / 9e9 - 1)   # the worse of 1.0 (device) and 1.22 (headroom)


@pytest.mark.parametrize("spelling", ["Apache-2.0", "apache 2.0", "APACHE_2.0", "apache-2.0", "Apache License 2.0"])
def test_licence_spellings_are_one_licence(spelling):
    lic = get_catalog().licenses
    assert canonical(spelling, lic) == "apache-2.0"
    assert resolve_allow_list([spelling], lic) == ["apache-2.0"]


def test_unknown_licence_suggests_the_close_id():
    with pytest.raises(UsageError) as exc:
        resolve_allow_list(["apach-2.0"], get_catalog().licenses)
    assert exc.value.one_line() == "unknown licence 'apach-2.0' (did you mean: apache-2.0?)"
    lic = get_catalog().licenses
    with pytest.raises(UsageError) as exc:
        resolve_allow_list(["lama3.1"], lic)
    assert "llama3.1" in exc.value.one_line()


def test_task_default_budget_applies_when_no_latency_limit_is_set():
    cat = get_catalog()
    task = cat.task("summarization")
    rules = resolve_rules(Limits(), catalog=cat, task=task)
    assert rules.limits.max_latency_ms == task.latency_budget_ms
    assert "summarization task's default budget" in rules.latency_note
    given = resolve_rules(Limits(max_latency_ms=1234), catalog=cat, task=task)
    assert given.limits.max_latency_ms == 1234 and given.latency_note == ""


# --- recommend and check agree -----------------------------------------------------------------------

AGREEMENT = [
    dict(max_latency_ms=10_000_000, license=["Apache-2.0"]),
    dict(max_latency_ms=10_000_000, license=["mit"]),                 # licence fails
    dict(max_latency_ms=100.0, license=["apache 2.0"]),               # latency fails
    dict(max_latency_ms=10_000_000, min_tokens_per_s=1e6),            # throughput fails
    dict(max_latency_ms=10_000_000, max_ttft_ms=1.0, memory_headroom=0.99),
    dict(),                                                           # the task's default budget in both
    dict(max_latency_ms=10_000_000, min_quality=99.0),                # quality below the minimum
]


@pytest.mark.parametrize("limits", AGREEMENT)
@pytest.mark.parametrize("model,fmt,target", [("qwen2.5-3b", "int8", "a10g-24gb"),
                                              ("llama-3.1-70b", "bf16", "a10g-24gb")])
def test_recommend_and_check_give_the_same_verdict(limits, model, fmt, target):
    from advisor import check
    from advisor.recommend.engine import recommend

    rec = recommend("summarization", targets=[target], probe=False, formats=[fmt], **limits)
    cand = next(c for c in rec.candidates if c.model == model and c.format == fmt)
    report = check(model, targets=[target], task="summarization", format=fmt, probe=False,
                   license=[s.upper() for s in limits.get("license", [])] or None,
                   **{k: v for k, v in limits.items() if k != "license"})
    failed_checks = {c.name for c in report.results() if c.status == "fail"}
    assert cand.passed == report.passed, (cand.reasons, failed_checks)
    by_check = {"fits-memory": "memory", "memory-headroom": "memory", "latency-p95": "max_latency_ms",
                "ttft": "max_ttft_ms", "tokens-per-s": "min_tokens_per_s", "license": "license",
                "quality-proxy": "min_quality", "params": "max_params"}
    assert {by_check[n] for n in failed_checks} == set(cand.binding)


def test_an_engine_that_keeps_memory_free_is_not_charged_the_default_headroom_again():
    # vLLM offers 0.9 of the device (its pool); the default 10% headroom would take another 10% off that
    fig = Figures(format="bf16", memory_verdict="fits", memory_bytes=9.5e9, memory_available_bytes=10e9,
                  memory_reserved_fraction=0.1)
    default = RuleSet(limits=Limits())
    assert default.headroom_for(fig) == 0.0
    assert [r.status for r in memory_results(fig, default.headroom_for(fig))] == ["pass", "pass"]
    asked = RuleSet(limits=Limits(memory_headroom=0.1))            # a headroom the user sets still applies
    assert asked.headroom_for(fig) == 0.1
    assert [r.status for r in memory_results(fig, asked.headroom_for(fig))] == ["pass", "fail"]
    eager = Figures(format="bf16", memory_verdict="fits", memory_bytes=9.5e9, memory_available_bytes=10e9)
    assert default.headroom_for(eager) == 0.10


# --- every message, value and violation pinned (what a mutation of the table would change) ---------

from dataclasses import FrozenInstanceError  # noqa: E402

from advisor.rules.table import RuleResult, ThresholdRule, format_result, gb, licence_result, secs  # noqa: E402


@pytest.mark.parametrize("ms,text", [(None, "-"), (999.4, "999 ms"), (999.6, "1000 ms"), (1000.0, "1.00 s"),
                                     (12345.0, "12.35 s")])
def test_seconds_are_written_like_the_table(ms, text):
    assert secs(ms) == text


@pytest.mark.parametrize("n,text", [(None, "-"), (1.5e9, "1.5 GB"), (999_999_999, "1.0 GB"), (0, "0.0 GB")])
def test_gigabytes_are_written_like_the_table(n, text):
    assert gb(n) == text


def test_result_objects_are_frozen():
    r = threshold_result(RULES_BY_KEY["max_ttft_ms"], FIG, 200.0, required=True)
    with pytest.raises(FrozenInstanceError):
        r.status = "pass"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        FIG.quality = 1.0  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        RULES_BY_KEY["max_ttft_ms"].unit = "s"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        RuleSet(limits=Limits()).latency_note = "x"  # type: ignore[misc]
    assert r.failed and not threshold_result(RULES_BY_KEY["max_ttft_ms"], FIG, 400.0, required=True).failed


@pytest.mark.parametrize("key,limit,message", [
    ("max_latency_ms", 2500.0, "p95 end-to-end 2.00 s within the budget of 2.50 s (spec)"),
    ("max_ttft_ms", 200.0, "time to first token 300 ms exceeds the limit of 200 ms (spec)"),
    ("min_tokens_per_s", 80.0, "throughput 50.0 tokens/s is below the minimum of 80.0 tokens/s (spec)"),
    ("min_tokens_per_s", 40.0, "throughput 50.0 tokens/s meets the minimum of 40.0 tokens/s (spec)"),
    ("min_quality", 75.0, "quality proxy 60.0 is below the minimum of 75.0"),
    ("max_params", 2e9, "parameters 3.0B exceeds the limit of 2.0B"),
])
def test_threshold_messages(key, limit, message):
    assert threshold_result(RULES_BY_KEY[key], FIG, limit, required=True).message == message


def test_threshold_result_carries_unit_basis_and_the_suffix():
    r = threshold_result(RULES_BY_KEY["max_latency_ms"], FIG, 1000.0, required=True, suffix=" (task default)")
    assert (r.unit, r.basis, r.check, r.rule) == ("ms", "spec", "latency-p95", "max_latency_ms")
    assert r.message.endswith("(spec) (task default)") and r.violation == pytest.approx(1.0)
    q = threshold_result(RULES_BY_KEY["min_quality"], FIG, 50.0, required=True)
    assert (q.unit, q.basis) == ("points", "proxy") and "(" not in q.message
    zero = Figures(format="bf16", tokens_per_s=0.0)
    z = threshold_result(RULES_BY_KEY["min_tokens_per_s"], zero, 10.0, required=True)
    assert z.status == "fail" and z.violation == pytest.approx(10.0 / 1e-9 - 1)     # never a division by zero


def test_unknown_figures_say_how_to_make_them_fail():
    rule = RULES_BY_KEY["min_quality"]
    soft = threshold_result(rule, Figures(format="bf16"), 50, required=False)
    assert soft.message == ("unscored: too few published scores for this task's quality proxy "
                            "(not a failure; require 'quality-proxy' to fail)")
    assert (soft.value, soft.limit, soft.basis, soft.violation) == (None, 50, "unknown", 0.0)
    hard = threshold_result(RULES_BY_KEY["max_latency_ms"], Figures(format="bf16"), 50, required=True)
    assert (hard.status, hard.message, hard.violation) == ("fail", "not estimated", 1.0)


def test_memory_messages_values_and_violations_by_hand():
    fits = Figures(format="bf16", memory_verdict="fits", memory_bytes=8.0e9, memory_available_bytes=10e9,
                   memory_basis="calibrated")
    fit_r, head_r = memory_results(fits, 0.25)                        # limit 10 x 0.75 = 7.5 GB
    assert (fit_r.status, fit_r.value, fit_r.limit, fit_r.unit, fit_r.basis) == ("pass", 8.0, 10.0, "GB", "calibrated")
    assert fit_r.message == "needs 8.0 GB per device of 10.0 GB" and fit_r.violation == 0.0
    assert (head_r.status, head_r.limit) == ("fail", 7.5)
    assert head_r.message == "needs 8.0 GB per device, the limit is 7.5 GB, 25% headroom kept free"
    assert head_r.violation == pytest.approx(8.0 / 7.5 - 1)
    no_room = memory_results(fits, 0.0)[1]
    assert no_room.message == "needs 8.0 GB per device, the limit is 10.0 GB" and no_room.status == "pass"
    offload = Figures(format="bf16", memory_verdict="fits-with-offload", memory_bytes=12e9, memory_available_bytes=10e9)
    off_fit, off_head = memory_results(offload, 0.1)
    assert off_fit.status == "fail" and off_fit.violation == 0.5
    assert off_fit.message == "fits only with CPU offload of weights (slow): needs 12.0 GB per device of 10.0 GB"
    assert off_head.violation == pytest.approx(0.5)            # max(12 / 9 - 1, the offload penalty 0.5)
    nofit = Figures(format="bf16", memory_verdict="does-not-fit", memory_bytes=30e9, memory_available_bytes=10e9)
    nf, nh = memory_results(nofit, 0.5)
    assert nf.message == "needs 30.0 GB per device, the device offers 10.0 GB" and nf.violation == pytest.approx(2.0)
    assert nh.violation == pytest.approx(30 / 5 - 1)
    small = Figures(format="bf16", memory_verdict="does-not-fit", memory_bytes=11e9, memory_available_bytes=10e9)
    # the headroom violation never reads smaller than the device's own
    assert memory_results(small, 0.0)[1].violation == pytest.approx(0.1)
    engine = Figures(format="bf16", memory_verdict="fits", memory_bytes=8e9, memory_available_bytes=9e9,
                     memory_reserved_fraction=0.1)
    assert memory_results(engine, 0.0)[1].message == ("needs 8.0 GB per device, the limit is 9.0 GB (the engine uses "
                                                      "90% of the device and keeps the rest free)")
    (unknown,) = memory_results(Figures(format="bf16", memory_bytes=1e9, memory_available_bytes=2e9), 0.1)
    assert (unknown.status, unknown.message, unknown.violation) == ("fail", "memory not estimated", 1.0)
    assert len(memory_results(Figures(format="bf16", memory_verdict="fits", memory_available_bytes=2e9), 0.1)) == 1
    assert len(memory_results(Figures(format="bf16", memory_verdict="fits", memory_bytes=1e9), 0.1)) == 1


def test_licence_and_format_results_by_hand():
    lic = get_catalog().licenses
    ok = licence_result(FIG, ["apache-2.0", "mit"], lic, required=False)
    assert (ok.status, ok.value, ok.basis, ok.violation) == ("pass", "apache-2.0", "catalog", 0.0)
    assert ok.message == "licence apache-2.0 is in the allow-list (apache-2.0, mit)"
    no = licence_result(FIG, ["mit"], lic, required=False)
    assert (no.status, no.violation, no.message) == ("fail", 1.0, "licence apache-2.0 is not in the allow-list (mit)")
    outside = Figures(format="bf16")
    soft = licence_result(outside, ["mit"], lic, required=False)
    assert (soft.status, soft.violation) == ("unknown", 0.0) and soft.message.endswith("require 'license' to fail)")
    hard = licence_result(outside, ["mit"], lic, required=True)
    assert (hard.status, hard.violation) == ("fail", 1.0)
    assert hard.message == "licence unknown: the model is not in the catalog"
    f_ok = format_result(FIG, ["bf16", "int8"])
    assert (f_ok.status, f_ok.message, f_ok.violation) == ("pass", "format bf16 allowed (allowed: bf16, int8)", 0.0)
    f_no = format_result(FIG, ["int8"])
    assert (f_no.status, f_no.message, f_no.violation) == ("fail", "format bf16 excluded (allowed: int8)", 1.0)


def test_evaluate_applies_exactly_the_rules_that_are_set_in_order():
    lic = get_catalog().licenses
    bare = evaluate(FIG, RuleSet(limits=Limits()), lic)
    assert [r.check for r in bare] == ["fits-memory", "memory-headroom"]
    full = evaluate(FIG, RuleSet(limits=Limits(max_latency_ms=1e6, max_ttft_ms=1e6, min_tokens_per_s=1,
                                               min_quality=1, max_params=1e12),
                                 license=["apache-2.0"], formats=["bf16"], latency_note=" (default)"), lic)
    assert [r.check for r in full] == ["format", "params", "license", "fits-memory", "memory-headroom", "latency-p95",
                                       "ttft", "tokens-per-s", "quality-proxy"]
    assert all(r.status == "pass" for r in full)
    assert full[5].message.endswith("(default)") and not full[6].message.endswith("(default)")
    unscored = Figures(format="bf16", memory_verdict="fits", memory_bytes=1e9, memory_available_bytes=2e9)
    soft = evaluate(unscored, RuleSet(limits=Limits(min_quality=10)), lic)[-1]
    assert soft.status == "unknown"
    hard = evaluate(unscored, RuleSet(limits=Limits(min_quality=10), require_known=frozenset({"quality"})), lic)[-1]
    assert hard.status == "fail"
    # max_params is always required: a model of unknown size never passes a size limit
    assert evaluate(unscored, RuleSet(limits=Limits(max_params=1e9)), lic)[0].status == "fail"
    lic_soft = evaluate(unscored, RuleSet(limits=Limits(), license=["mit"]), lic)[0]
    lic_hard = evaluate(unscored, RuleSet(limits=Limits(), license=["mit"], require_known=frozenset({"license"})),
                        lic)[0]
    assert (lic_soft.status, lic_hard.status) == ("unknown", "fail")


def test_failures_keep_one_result_per_rule_the_worse_and_the_first_on_a_tie():
    a = RuleResult("memory", "fits-memory", "fail", 1, 1, "GB", "spec", "a", 0.5)
    b = RuleResult("memory", "memory-headroom", "fail", 1, 1, "GB", "spec", "b", 0.5)
    c = RuleResult("memory", "memory-headroom", "fail", 1, 1, "GB", "spec", "c", 0.7)
    ok = RuleResult("max_ttft_ms", "ttft", "pass", 1, 1, "ms", "spec", "ok", 0.0)
    unknown = RuleResult("license", "license", "unknown", None, ["mit"], "", "unknown", "u", 0.0)
    assert [r.message for r in failures([a, b, ok, unknown])] == ["a"]
    assert [r.message for r in failures([a, c])] == ["c"]


def test_a_threshold_rule_names_its_cli_option():
    rule = ThresholdRule("max_tpot_ms", "tpot", "tpot_ms", "max", "ms", lambda f: "spec", secs, "time per token")
    assert rule.option_name == "--max-tpot-ms"
    renamed = ThresholdRule("max_x", "x", "x", "max", "ms", lambda f: "spec", secs, "x", option="--x-limit")
    assert renamed.option_name == "--x-limit"


def test_memory_figures_are_gigabytes_rounded_to_three_decimals():
    fig = Figures(format="bf16", memory_verdict="fits", memory_bytes=8_125_500_000,
                  memory_available_bytes=10_251_000_000)
    fit_r, head_r = memory_results(fig, 0.2)                      # limit 8.2008 GB
    assert (fit_r.value, fit_r.limit) == (8.126, 10.251)          # 8.1255 -> 8.126, not 8.1255
    assert (head_r.value, head_r.limit) == (8.126, 8.201)
    assert head_r.status == "pass" and head_r.violation == 0.0
    assert gb(1.05e9) == "1.1 GB"                                 # 1.05 GB, rounded as the table shows it
    assert threshold_result(RULES_BY_KEY["max_params"], Figures(format="bf16", params_total=1.35e9), 1e12,
                            required=True).message.startswith("parameters 1.4B")
    tiny = Figures(format="bf16", memory_verdict="does-not-fit", memory_bytes=3.0, memory_available_bytes=1.0)
    assert memory_results(tiny, 0.0)[0].violation == pytest.approx(2.0)   # 3 / 1 - 1


def test_a_rule_result_passes_with_no_violation_by_default():
    r = RuleResult("x", "x", "pass", 1.0, 2.0, "ms", "spec", "m")
    assert r.violation == 0.0 and not r.failed


def test_licence_aliases_from_the_catalog_are_used_when_evaluating():
    lic = get_catalog().licenses
    spelled = Figures(format="bf16", memory_verdict="fits", memory_bytes=1e9, memory_available_bytes=2e9,
                      license="Apache License")
    assert evaluate(spelled, RuleSet(limits=Limits(), license=["apache-2.0"]), lic)[0].status == "pass"
    assert evaluate(spelled, RuleSet(limits=Limits(), license=["apache-2.0"]), {})[0].status == "fail"

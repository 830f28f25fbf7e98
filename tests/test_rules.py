"""The shared rule table: hand-computed values below, at and above every limit, and the proof that
recommend and check give the same verdict on the same inputs (licence spelling included)."""

from __future__ import annotations

import pytest

from advisor.catalog.loader import get_catalog
from advisor.errors import UsageError
from advisor.rules.licences import canonical, resolve_allow_list
from advisor.rules.limits import LIMIT_KEYS, Limits
from advisor.rules.resolve import resolve_rules
from advisor.rules.table import (RULES_BY_KEY, THRESHOLD_RULES, Figures, RuleSet, evaluate, failures,
                                 memory_results, threshold_result)

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

"""A warm run (measurements in the cache) probes no more candidates than the cold run did."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from advisor.recommend import probing
from advisor.recommend.schema import Candidate


def candidate(model: str, quality: float, *, measured: bool, passed: bool) -> Candidate:
    return Candidate(
        key=f"{model}:fp32@local", model=model, name=model, tier="small", format="fp32", target="local",
        params_total=1, license="apache-2.0", verdict="fits", memory_bytes=1, memory_limit_bytes=10,
        memory_basis="spec", ttft_ms=10.0, decode_ms_per_token=1.0, e2e_p50_ms=100.0, e2e_p95_ms=120.0,
        tokens_per_s=10.0, latency_basis="measured" if measured else "calibrated", latency_bound="memory",
        quality_proxy=quality, passed=passed, reasons=[] if passed else ["too slow"],
        binding=[] if passed else ["max_latency_ms"])


def test_cached_failures_count_against_the_per_tier_cap(monkeypatch):
    calls: list[str] = []

    def local_calibration(entry, *a, **kw):
        calls.append(entry)
        return SimpleNamespace(measurement=None, skipped="not measured in this test")

    fake_api = SimpleNamespace(PROBED_FORMATS=("fp32",), local_calibration=local_calibration)
    lp = probing.LocalProbes(enabled=True, budget_s=None, refresh=False, progress=None,
                             catalog=SimpleNamespace(models={m: m for m in ("a", "b", "c")}))
    lp.rates = object()
    monkeypatch.setattr(lp, "_api", lambda: fake_api)
    # the cold run measured a and b (both too slow) and stopped at PER_TIER_MAX = 2
    cands = [candidate("a", 90, measured=True, passed=False), candidate("b", 80, measured=True, passed=False),
             candidate("c", 70, measured=False, passed=False)]
    estimates = {f"{m}:fp32": SimpleNamespace(batch=1, prompt_tokens=8, new_tokens=4) for m in "abc"}
    lp.refine(cands, estimates, lambda c: [("max_latency_ms", "too slow")], latency_budget_ms=100.0)
    assert probing.PER_TIER_MAX == 2 and calls == []

    # with one cached failure only, the next candidate is measured
    cands[1] = candidate("b", 80, measured=False, passed=False)
    lp.refine(cands, estimates, lambda c: [("max_latency_ms", "too slow")], latency_budget_ms=100.0)
    assert calls == ["b"]


def _probes_with(monkeypatch, local_calibration):
    fake_api = SimpleNamespace(PROBED_FORMATS=("fp32",), local_calibration=local_calibration)
    lp = probing.LocalProbes(enabled=True, budget_s=None, refresh=False, progress=None,
                             catalog=SimpleNamespace(models={"a": "a"}))
    lp.rates = object()
    monkeypatch.setattr(lp, "_api", lambda: fake_api)
    return lp


def test_a_probe_that_crashes_costs_one_measurement_not_the_recommendation(monkeypatch):
    def crashes(entry, *a, **kw):
        raise ValueError("`get_seq_length` can only be called on Attention layers")

    monkeypatch.delenv("ADVISOR_DEBUG", raising=False)
    lp = _probes_with(monkeypatch, crashes)
    c = candidate("a", 90, measured=False, passed=False)
    estimates = {"a:fp32": SimpleNamespace(batch=1, prompt_tokens=8, new_tokens=4)}
    assert lp.measure(c, estimates, lambda c: []) is None
    assert lp.notes == ["a fp32: probe failed (ValueError: `get_seq_length` can only be called on Attention "
                        "layers); figures stay calibrated"]
    monkeypatch.setenv("ADVISOR_DEBUG", "1")   # a developer sees the traceback

    with pytest.raises(ValueError, match="get_seq_length"):
        lp.measure(c, estimates, lambda c: [])


def test_an_advisor_error_from_a_probe_still_reaches_the_user(monkeypatch):
    from advisor.errors import UsageError

    def refuses(entry, *a, **kw):
        raise UsageError("bad request")

    monkeypatch.delenv("ADVISOR_DEBUG", raising=False)
    lp = _probes_with(monkeypatch, refuses)
    estimates = {"a:fp32": SimpleNamespace(batch=1, prompt_tokens=8, new_tokens=4)}

    with pytest.raises(UsageError):
        lp.measure(candidate("a", 90, measured=False, passed=False), estimates, lambda c: [])


def test_cached_failures_that_now_rank_lower_still_count(monkeypatch):
    """Cold: g-bf16 and g-fp32 measured, both too slow. Warm: their measured latencies sort g-fp16
    (calibrated) above g-fp32; the tier's two measurements are spent all the same."""
    calls: list[str] = []

    def local_calibration(entry, *a, **kw):
        calls.append(entry)
        return SimpleNamespace(measurement=None, skipped="not measured in this test")

    lp = _probes_with(monkeypatch, local_calibration)
    lp.catalog = SimpleNamespace(models={m: m for m in ("g-bf16", "g-fp16", "g-fp32")})
    cands = [candidate("g-bf16", 90, measured=True, passed=False),
             candidate("g-fp16", 89, measured=False, passed=False),
             candidate("g-fp32", 88, measured=True, passed=False)]
    estimates = {f"{c.model}:fp32": SimpleNamespace(batch=1, prompt_tokens=8, new_tokens=4) for c in cands}
    lp.refine(cands, estimates, lambda c: [("max_latency_ms", "too slow")], latency_budget_ms=100.0)
    assert calls == []

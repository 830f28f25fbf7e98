"""advisor.check(...) from Python: the same engine and report as the CLI."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import advisor
from advisor.check.policy import THRESHOLD_KEYS, Policy, RequestPolicy
from advisor.errors import UsageError

CHECK = Path(__file__).parent / "fixtures" / "check"
CAT = [str(CHECK / "catalog.yaml")]


def test_api_is_advisor_check_and_stays_callable():
    r1 = advisor.check("gate-small", targets=["gate-gpu-24gb"], catalog_paths=CAT)
    import importlib

    importlib.import_module("advisor.check.engine")   # binds the attribute advisor.check to the package

    r2 = advisor.check("gate-small", targets=["gate-gpu-24gb"], catalog_paths=CAT)
    assert r1.status == r2.status == "pass" and r1.report_id != r2.report_id


def test_api_arguments_override_the_policy_file():
    report = advisor.check(policy=CHECK / "policy-pass.yaml", targets=["gate-gpu-24gb"], min_quality=90)
    assert [t.target for t in report.targets] == ["gate-gpu-24gb"]
    quality = next(c for c in report.results() if c.name == "quality-proxy")
    assert quality.status == "fail" and quality.limit == 90 and quality.basis == "proxy"
    assert report.failed == ["gate-gpu-24gb:quality-proxy"] and report.exit_code == 1


def test_api_takes_every_policy_setting():
    """A policy key without a check() argument cannot be set from Python (this caught a dropped min_quality)."""
    params = set(inspect.signature(advisor.check).parameters)
    wanted = set(THRESHOLD_KEYS) | set(RequestPolicy.model_fields) | (
        set(Policy.model_fields) - {"request", "thresholds", "targets", "catalog", "mlflow"})
    assert wanted <= params
    report = advisor.check("gate-small", targets=["gate-gpu-24gb"], catalog_paths=CAT, task="gate-summarization",
                           max_latency_ms=1e6, max_ttft_ms=1e6, min_tokens_per_s=0.001, memory_headroom=0.5,
                           license=["apache-2.0"], min_quality=10, prompt_tokens=64, new_tokens=8, batch=2)
    assert {c.name for c in report.results()} == {"fits-memory", "memory-headroom", "latency-p95", "ttft",
                                                  "tokens-per-s", "license", "quality-proxy"}
    assert (report.prompt_tokens, report.new_tokens, report.batch) == (64, 8, 2)
    assert report.passed


def test_api_policy_as_dict_and_errors_are_usage_errors():
    report = advisor.check(policy={"model": "gate-large", "targets": ["gate-gpu-24gb"], "catalog": CAT})
    assert report.status == "fail" and "gate-gpu-24gb:fits-memory" in report.failed
    with pytest.raises(UsageError, match="field 'thresholds.max_ttft_ms'"):
        advisor.check(policy={"thresholds": {"max_ttft_ms": 0}})


def test_request_shape_comes_from_the_task_unless_given():
    report = advisor.check("gate-small", targets=["gate-gpu-24gb"], catalog_paths=CAT, task="gate-summarization")
    assert (report.prompt_tokens, report.new_tokens) == (1000, 100)


def test_api_functions_survive_importing_their_subpackages():
    """advisor.estimate/recommend/check are functions even after `import advisor.estimate.engine` & co."""
    import importlib

    for name in ("estimate", "recommend", "check"):
        importlib.import_module(f"advisor.{name}.engine")
        fn = getattr(advisor, name)
        assert callable(fn) and not isinstance(fn, type(advisor)), name
        real = getattr(importlib.import_module(f"advisor.{name}.engine"), name)
        assert inspect.signature(fn) == inspect.signature(real)
    assert advisor.estimate("qwen2.5-0.5b", target="a10g-24gb").model == "qwen2.5-0.5b"

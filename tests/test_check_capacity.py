"""check's load limits from the shared rule table: min_rps, max_cost_per_hour_usd and max_tpot_ms."""

from __future__ import annotations

import json

import pytest
from conftest import run_advisor

import advisor

L40S = 1.861          # catalog/hardware.yaml: USD per GPU-hour (g6e.xlarge, us-east-1, 2026-01-21)


def by_name(report, target):
    t = next(t for t in report.targets if t.target == target)
    return {c.name: c for c in t.checks}, t


def test_a_policy_with_load_limits_reports_each_as_a_check(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("model: qwen2.5-7b\ntask: chat\nformat: fp8\ntargets: [l40s-48gb]\n"
                      "thresholds: {min_rps: 20, max_cost_per_hour_usd: 10, max_tpot_ms: 50, max_ttft_ms: 1000}\n")
    report = advisor.check(policy=str(policy))
    checks, t = by_name(report, "l40s-48gb")
    assert report.passed
    assert {"rps", "cost-per-hour", "tpot"} <= set(checks)
    replicas = t.figures["replicas"]
    assert checks["rps"].value >= 20 and checks["rps"].unit == "req/s"
    assert checks["rps"].value == pytest.approx(replicas * t.figures["max_rps_per_replica"], rel=1e-3)
    assert (checks["cost-per-hour"].value == pytest.approx(replicas * L40S)
            and checks["cost-per-hour"].basis == "catalog")
    assert checks["tpot"].value == pytest.approx(t.figures["tpot_p95_ms"], rel=1e-3) and checks["tpot"].value <= 50
    assert any(n.startswith("capacity:") for n in t.notes)


def test_a_cost_limit_below_the_plan_fails_with_the_numbers():
    report = advisor.check("qwen2.5-7b", targets=["l40s-48gb"], task="chat", format="fp8", min_rps=20,
                           max_cost_per_hour_usd=2.0, max_tpot_ms=50)
    checks, t = by_name(report, "l40s-48gb")
    assert not report.passed and checks["cost-per-hour"].status == "fail"
    assert f"${t.figures['replicas'] * L40S:,.2f}/h exceeds the limit of $2.00/h" in checks["cost-per-hour"].message
    assert checks["rps"].status == "pass"


def test_an_slo_no_replica_count_can_meet_fails_the_rate():
    report = advisor.check("qwen2.5-7b", targets=["l40s-48gb"], task="chat", format="fp8", min_rps=5,
                           max_tpot_ms=2)
    checks, t = by_name(report, "l40s-48gb")
    assert checks["rps"].status == "fail" and checks["rps"].value == 0
    assert checks["tpot"].status == "fail"
    assert any("no number of replicas" in n for n in t.notes)


def test_tpot_without_a_load_is_the_estimate_and_an_unpriced_target_is_not_costed():
    report = advisor.check("qwen2.5-7b", targets=["rtx4090-24gb"], task="chat", format="fp8", max_tpot_ms=500,
                           max_cost_per_hour_usd=5)
    checks, t = by_name(report, "rtx4090-24gb")
    assert checks["tpot"].status == "pass" and checks["tpot"].value == pytest.approx(t.figures["tpot_ms"], rel=1e-3)
    assert checks["cost-per-hour"].status == "fail" and "not costed" in checks["cost-per-hour"].message
    priced = advisor.check("qwen2.5-7b", targets=["rtx4090-24gb"], task="chat", format="fp8",
                           max_cost_per_hour_usd=5, gpu_hour_cost=0.7)
    checks, _ = by_name(priced, "rtx4090-24gb")
    assert checks["cost-per-hour"].status == "pass" and checks["cost-per-hour"].value == pytest.approx(0.7)
    assert checks["cost-per-hour"].basis == "user"


def test_the_cli_gate_takes_the_flags_and_writes_junit(tmp_path):
    junit = tmp_path / "gate.xml"
    res = run_advisor("check", "qwen2.5-7b", "--target", "l40s-48gb", "--task", "chat", "--format", "fp8",
                      "--rps", "20", "--max-cost-per-hour-usd", "2", "--max-tpot-ms", "50", "--no-mlflow",
                      "--junit", str(junit), "--json")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    failed = report["failed"]
    assert failed == ["l40s-48gb:cost-per-hour"]
    xml = junit.read_text()
    assert 'name="rps"' in xml and 'name="cost-per-hour"' in xml and 'name="tpot"' in xml


def test_explain_shows_the_load_limits(tmp_path):
    res = run_advisor("check", "qwen2.5-7b", "--target", "l40s-48gb", "--rps", "20", "--max-tpot-ms", "50",
                      "--gpu-hour-cost", "1.5", "--explain")
    assert res.returncode == 0
    assert "min_rps: 20.0" in res.stdout and "max_tpot_ms: 50.0" in res.stdout and "gpu_hour_cost: 1.5" in res.stdout

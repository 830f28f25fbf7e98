"""`advisor check` end to end: exit codes, JUnit/JSON/Markdown reports, MLflow down.

Most runs are in-process through the same guard the `advisor` script uses (fast); the ones whose
point is the real process (exit code, no traceback) run a subprocess. Fixture targets and models
(tests/fixtures/check/catalog.yaml) keep the numbers stable while the built-in catalog grows.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from advisor.check.schema import CHECK_NAMES, CheckReport

CHECK = Path(__file__).parent / "fixtures" / "check"
CAT = str(CHECK / "catalog.yaml")
NAMED = ["--catalog", CAT, "--no-mlflow"]


def advisor(capsys, *args: str) -> tuple[int, str, str]:
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    code = run_cli(cli, list(args), prog_name="advisor")
    out = capsys.readouterr()
    return code, out.out, out.err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again when the block ends: connections are refused


def test_pass_exits_0_with_one_line_per_check_per_target(capsys):
    code, out, err = advisor(capsys, "check", "--policy", str(CHECK / "policy-pass.yaml"))
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("  PASS")]
    # fits-memory, memory-headroom, latency-p95, license, quality on each of two targets
    assert len(lines) == 10
    assert all(("[spec]" in ln or "[catalog]" in ln or "[proxy]" in ln) for ln in lines)
    assert "PASSED: gate-small on gate-gpu-24gb, gate-gpu-80gb" in out


def test_fail_exits_1_and_names_every_failed_check(capsys, tmp_path):
    junit = tmp_path / "junit.xml"
    code, out, err = advisor(capsys, "check", "--policy", str(CHECK / "policy-fail.yaml"), "--junit", str(junit),
                             "--json")
    assert code == 1, err
    report = CheckReport.model_validate_json(out)
    assert report.schema_version == 1 and report.status == "fail"
    by_name = {c.name: c for c in report.results()}
    assert by_name["fits-memory"].status == "fail" and by_name["fits-memory"].value > 100   # 70B at bf16
    assert by_name["license"].status == "fail" and by_name["license"].value == "llama3.1"
    assert by_name["latency-p95"].status == "fail" and by_name["latency-p95"].limit == 3000
    assert set(report.failed) >= {"gate-gpu-24gb:fits-memory", "gate-gpu-24gb:license"}
    assert "FAILED: gate-large" in err         # --json keeps the summary off stdout


def test_junit_xml_has_the_shape_ci_systems_read(capsys, tmp_path):
    junit = tmp_path / "out" / "junit.xml"
    code, _, err = advisor(capsys, "check", "gate-large", "--target", "gate-gpu-24gb", "--target", "gate-gpu-80gb",
                           "--format", "int4", "--max-latency-ms", "3000", "--license", "apache-2.0,llama3.1",
                           "--junit", str(junit), *NAMED)
    assert code == 1, err
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["gate-large@gate-gpu-24gb", "gate-large@gate-gpu-80gb"]
    total_tests = total_failures = 0
    for suite in suites:
        cases = suite.findall("testcase")
        failures = [c for c in cases if c.find("failure") is not None]
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == len(failures)
        assert int(suite.get("skipped")) == len([c for c in cases if c.find("skipped") is not None])
        assert {c.get("name") for c in cases} <= set(CHECK_NAMES)
        for case in cases:
            props = {p.get("name"): p.get("value") for p in case.find("properties")}
            assert props["basis"] in ("spec", "catalog") and "value" in props and "limit" in props
            failure = case.find("failure")
            if failure is not None:
                assert failure.get("message") and props["status"] == "fail"
        total_tests += len(cases)
        total_failures += len(failures)
    assert int(root.get("tests")) == total_tests and int(root.get("failures")) == total_failures
    # the 70B model at int4 (~35 GB) does not fit 24 GB but fits 80 GB; the licence passes on both
    status = {(s.get("name").split("@")[1], c.get("name")): c.find("failure") is None
              for s in suites for c in s.findall("testcase")}
    assert status[("gate-gpu-24gb", "fits-memory")] is False
    assert status[("gate-gpu-80gb", "fits-memory")] is True
    assert status[("gate-gpu-80gb", "license")] is True


def test_markdown_file_and_github_step_summary_appended(capsys, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md = tmp_path / "check.md"
    code, _, err = advisor(capsys, "check", "--policy", str(CHECK / "policy-pass.yaml"), "--markdown", str(md))
    assert code == 0, err
    text = summary.read_text()
    assert text.startswith("# earlier step\n")              # appended, not overwritten
    assert "advisor check: gate-small" in text and "| gate-gpu-80gb | quality-proxy |" in text
    assert md.read_text().strip() in text


def test_unknown_model_is_usage_error_with_did_you_mean(advisor_cli):
    proc = advisor_cli("check", "gate-smal", "--target", "gate-gpu-24gb", *NAMED)
    assert proc.returncode == 2
    assert "unknown model 'gate-smal'" in proc.stderr and "did you mean" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()[-1]) < 400


def test_bad_policy_is_usage_error_with_file_line_field(capsys):
    path = CHECK / "policy-bad-threshold.yaml"
    code, _, err = advisor(capsys, "check", "--policy", str(path))
    assert code == 2
    assert f"error: {path}:7: field 'thresholds.max_latency_ms': Input should be greater than 0" in err


@pytest.mark.parametrize("args, needle", [
    (["gate-small", "--target", "gate-gpu-2gb"], "unknown target 'gate-gpu-2gb'"),
    (["gate-small", "--target", "gate-gpu-24gb", "--min-quality", "50"], "min_quality needs a task"),
    (["--target", "gate-gpu-24gb"], "no model to check"),
    (["--model-path", "/nonexistent/model", "--target", "gate-gpu-24gb"], "no such file"),
    (["gate-small", "--target", "gate-gpu-24gb", "--task", "summarisation"], "unknown task"),
    (["gate-small", "--target", "gate-gpu-24gb", "--max-latency-ms", "0"], "--max-latency-ms"),
    (["--model-uri", "runs:/x/model", "--target", "gate-gpu-24gb"], "models:/NAME/VERSION"),
])
def test_other_usage_errors_exit_2(capsys, args, needle):
    code, _, err = advisor(capsys, "check", *args, *NAMED)
    assert code == 2
    assert needle in err and err.startswith("error: ")


def test_explain_prints_effective_policy_and_checks_nothing(capsys):
    import yaml

    code, out, _ = advisor(capsys, "check", "--policy", str(CHECK / "policy-fail.yaml"), "--explain",
                           "--max-latency-ms", "9000", "--target", "gate-gpu-80gb")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["model"] == "gate-large" and data["thresholds"]["max_latency_ms"] == 9000
    assert data["targets"] == ["gate-gpu-80gb"] and data["license"] == ["apache-2.0"]


def test_local_config_json_licence_unknown_unless_required(capsys):
    args = ["check", "--model-path", str(CHECK / "tiny-model"), "--target", "gate-gpu-24gb",
            "--license", "apache-2.0", "--json", *NAMED]
    code, out, err = advisor(capsys, *args)
    assert code == 0, err
    report = CheckReport.model_validate_json(out)
    lic = next(c for c in report.results() if c.name == "license")
    assert lic.status == "unknown" and lic.basis == "unknown"
    assert report.model.kind == "path" and not report.model.in_catalog
    assert report.model.params_total == 11094272        # derived from the config.json
    code, out, _ = advisor(capsys, *args, "--require-known", "license")
    assert code == 1
    assert CheckReport.model_validate_json(out).failed == ["gate-gpu-24gb:license"]


def test_catalog_id_with_model_path_keeps_catalog_licence(capsys):
    code, out, err = advisor(capsys, "check", "gate-small", "--model-path", str(CHECK / "tiny-model" / "config.json"),
                             "--target", "gate-gpu-24gb", "--license", "apache-2.0", "--json", *NAMED)
    assert code == 0, err
    report = CheckReport.model_validate_json(out)
    assert report.model.in_catalog and report.model.params_total == 11094272   # architecture from the file
    assert next(c for c in report.results() if c.name == "license").status == "pass"


def test_mlflow_down_exits_3_and_keeps_the_report(tmp_path, advisor_cli):
    uri = f"http://127.0.0.1:{closed_port()}"
    proc = advisor_cli("check", "--policy", str(CHECK / "policy-pass.yaml"), "--tracking-uri", uri,
                       "--junit", str(tmp_path / "j.xml"),
                       env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PASSED" in proc.stdout                         # the verdict is shown before MLflow is tried
    assert (tmp_path / "j.xml").is_file()                  # local outputs written first
    saved = list((tmp_path / "reports").glob("check-*/check.json"))
    assert len(saved) == 1
    assert str(saved[0].parent) in proc.stderr              # the message says where the report is
    assert json.loads(saved[0].read_text())["status"] == "pass"


def test_set_alias_needs_a_registered_model(capsys):
    code, _, err = advisor(capsys, "check", "gate-small", "--target", "gate-gpu-24gb", "--catalog", CAT,
                           "--set-alias-on-pass", "champion")
    assert code == 2 and "--set-alias-on-pass needs a registered model" in err


def test_help_documents_exit_codes(capsys):
    code, out, _ = advisor(capsys, "check", "--help")
    assert code == 0
    for text in ("0  every check passed", "1  a check failed", "2  usage or input error", "3  infrastructure error"):
        assert text in out


def test_positional_model_may_be_a_folder(capsys):
    code, out, err = advisor(capsys, "check", str(CHECK / "tiny-model"), "--target", "gate-gpu-24gb", "--json", *NAMED)
    assert code == 0, err
    assert CheckReport.model_validate_json(out).model.kind == "path"


def test_registry_unreachable_for_model_uri_exits_3(capsys):
    uri = f"http://127.0.0.1:{closed_port()}"
    code, _, err = advisor(capsys, "check", "--model-uri", "models:/summarizer/1", "--target", "gate-gpu-24gb",
                           "--catalog", CAT, "--tracking-uri", uri)
    assert code == 3
    assert err.startswith(f"error: MLflow at {uri} is unreachable")

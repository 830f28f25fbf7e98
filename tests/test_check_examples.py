"""Every `advisor check` command line in examples/ runs against fixtures and ends as a gate should.

The workflow files are parsed as YAML; their commands run in a scratch folder holding a copy of
examples/, with MLflow pointed at a temporary sqlite store (conftest). A command may pass (0) or
fail its checks (1); a usage error (2), MLflow error (3) or a traceback fails this test.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CHECK = Path(__file__).parent / "fixtures" / "check"
WORKFLOWS = ["github-actions-gate.yml", "gitlab-ci-gate.yml", "github-actions-gpu-probe.yml"]


def _strings(node, key=None):
    """(key, string) for every string under `run:` or in a `script:` list of a CI file."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str) and key in ("run", "script"):
        yield node


def check_commands(name: str) -> list[list[str]]:
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    out = []
    for text in _strings(doc):
        for line in text.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:2] == ["advisor", "check"]:
                out.append(argv)
    return out


@pytest.fixture
def workdir(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES, work / "examples")
    return work


def run(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "advisor", *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), f"{shlex.join(argv)} -> exit {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def junit_ok(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) > 0


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_files_parse_and_hold_a_check_command(name):
    assert check_commands(name), f"{name} has no `advisor check` command"


def test_github_gate_installs_without_torch_and_runs(workdir, tmp_path):
    installs = [s for s in _strings(yaml.safe_load((EXAMPLES / "github-actions-gate.yml").read_text()))
                if "pip install" in s]
    assert installs and not any("probe" in s or "torch" in s for s in installs)
    summary = tmp_path / "step-summary.md"
    for argv in check_commands("github-actions-gate.yml"):
        assert "--target" in argv and "local" not in argv           # named targets only
        proc = run(argv, workdir, env={"GITHUB_STEP_SUMMARY": str(summary),
                                       "PYTHONPATH": str(CHECK / "no_torch")})   # as installed: no torch
        assert ("PASSED" if proc.returncode == 0 else "FAILED") in proc.stdout
        junit_ok(workdir / "advisor-junit.xml")
        assert (workdir / "advisor-check.md").is_file() and "advisor check" in summary.read_text()


def test_gitlab_gate_moves_the_alias_only_on_pass(workdir, tmp_path):
    from mlflow import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]                         # tmp sqlite (conftest)
    source = tmp_path / "candidate"
    source.mkdir()
    shutil.copy(CHECK / "tiny-model" / "config.json", source / "config.json")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("summarizer")
    version = client.create_model_version("summarizer", source=str(source)).version
    client.set_registered_model_alias("summarizer", "candidate", version)
    for argv in check_commands("gitlab-ci-gate.yml"):
        proc = run(argv, workdir)
        junit_ok(workdir / "advisor-junit.xml")
        tags = client.get_model_version("summarizer", version).tags
        assert tags["advisor.check.status"] == ("pass" if proc.returncode == 0 else "fail")
        aliases = client.get_registered_model("summarizer").aliases
        assert ("champion" in aliases) == (proc.returncode == 0)


def test_gpu_probe_workflow_runs_spec_only_here(workdir):
    text = (EXAMPLES / "github-actions-gpu-probe.yml").read_text()
    assert '.[probe]' in text
    for argv in check_commands("github-actions-gpu-probe.yml"):
        assert "--target" in argv and argv[argv.index("--target") + 1] == "local"
        # A CPU-only test machine: the same command without the torch probes (spec basis).
        run([*argv, "--no-probe"], workdir)
        junit_ok(workdir / "advisor-junit-local.xml")


def test_python_api_example_runs(workdir):
    proc = subprocess.run([sys.executable, "examples/check_api.py"], cwd=workdir, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(CHECK / "no_torch")})
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert "a10g-24gb" in proc.stdout and ("PASS" in proc.stdout or "FAIL" in proc.stdout)


def test_example_policy_explains(workdir):
    proc = run(["advisor", "check", "--policy", "examples/policy-summarization-a10g.yaml", "--explain"], workdir)
    assert proc.returncode == 0
    assert yaml.safe_load(proc.stdout)["task"] == "summarization"

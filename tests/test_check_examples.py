"""Every workflow in examples/ runs its steps as CI would: the installed `advisor` script, from the
install the workflow asks for, in a checkout-like folder.

Each workflow's `pip install` step is matched to a fresh venv built from this tree's wheel
(tests/conftest.py): `pip install .` -> `plain_install` (no extras), `pip install ".[probe]"` ->
`probe_install`. Then every `run:`/`script:` step that calls `advisor` runs through bash with that
venv first on PATH, in a scratch folder holding a copy of examples/. A step may pass (0) or fail
its checks (1); a usage error (2), MLflow error (3), internal error (70) or a traceback fails here.
Where a workflow names an MLflow server (MLFLOW_TRACKING_URI), a real `mlflow server` on 127.0.0.1
stands in for it (the `mlflow_server` fixture).
"""

from __future__ import annotations

import os
import shlex
import shutil
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


def steps(name: str) -> list[str]:
    """Every shell step of a workflow, in order (a folded `run: >-` block is one line)."""
    return [text for text in _strings(yaml.safe_load((EXAMPLES / name).read_text()))]


def advisor_steps(name: str) -> list[str]:
    return [s for s in steps(name) if shlex.split(s, comments=True)[:1] == ["advisor"]]


def check_commands(name: str) -> list[list[str]]:
    return [argv for s in advisor_steps(name) if (argv := shlex.split(s, comments=True))[:2] == ["advisor", "check"]]


def install_spec(name: str) -> list[str]:
    """The arguments of the workflow's one `pip install` step."""
    [step] = [s for s in steps(name) if "pip install" in s]
    argv = shlex.split(step, comments=True)
    return argv[argv.index("install") + 1:]


@pytest.fixture
def workdir(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES, work / "examples")
    return work


def run_step(install, step: str, cwd: Path, env: dict | None = None):
    proc = install.shell(step, cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), f"{step} -> exit {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def junit_ok(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) > 0


def no_mlflow_files(work: Path) -> None:
    left = [p.name for p in work.iterdir() if p.name in ("mlflow.db", "mlruns", "mlartifacts")]
    assert not left, f"the gate wrote {left} into the checkout"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_files_parse_and_hold_a_check_command(name):
    assert check_commands(name), f"{name} has no `advisor check` command"
    assert install_spec(name) in (["."], [".[probe]"]), install_spec(name)


def test_github_gate_runs_from_a_plain_install_and_logs_nothing(plain_install, workdir, tmp_path):
    assert install_spec("github-actions-gate.yml") == ["."]       # no torch, no full MLflow
    summary = tmp_path / "step-summary.md"
    for step in advisor_steps("github-actions-gate.yml"):
        argv = shlex.split(step)
        assert "--target" in argv and "local" not in argv           # named targets only
        proc = run_step(plain_install, step, workdir, env={"GITHUB_STEP_SUMMARY": str(summary)})
        assert ("PASSED" if proc.returncode == 0 else "FAILED") in proc.stdout
        assert "MLflow: not logged (no tracking URI" in proc.stdout
        junit_ok(workdir / "advisor-junit.xml")
        assert (workdir / "advisor-check.md").is_file() and "advisor check" in summary.read_text()
        no_mlflow_files(workdir)
    reports = Path(os.environ["ADVISOR_REPORTS_DIR"])
    assert not reports.exists() or not any(reports.iterdir()), "nothing logged, so nothing kept to send"


def test_gitlab_gate_moves_the_alias_only_on_pass(plain_install, mlflow_server, workdir, tmp_path):
    from mlflow import MlflowClient

    assert install_spec("gitlab-ci-gate.yml") == ["."]
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    exp = client.create_experiment("gitlab-candidate")
    run = client.create_run(exp)
    client.log_artifact(run.info.run_id, str(CHECK / "tiny-model" / "config.json"), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("summarizer")
    version = client.create_model_version("summarizer", source=f"{run.info.artifact_uri}/model",
                                          run_id=run.info.run_id).version
    client.set_registered_model_alias("summarizer", "candidate", version)

    job = yaml.safe_load((EXAMPLES / "gitlab-ci-gate.yml").read_text())["model-gate"]
    ci = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "CI_PROJECT_DIR": str(workdir)}   # the CI/CD variables
    env = {**ci, **{k: _expand(v, ci) for k, v in job["variables"].items()}}
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server.uri
    for step in advisor_steps("gitlab-ci-gate.yml"):
        proc = run_step(plain_install, step, workdir, env=env)
        assert "MLflow: logged as run" in proc.stdout, proc.stdout
        junit_ok(workdir / "advisor-junit.xml")
        tags = client.get_model_version("summarizer", version).tags
        assert tags["advisor.check.status"] == ("pass" if proc.returncode == 0 else "fail")
        aliases = client.get_registered_model("summarizer").aliases
        assert ("champion" in aliases) == (proc.returncode == 0)
        assert any((workdir / "advisor-reports").iterdir()), "ADVISOR_REPORTS_DIR keeps the report (artifacts:)"
    no_mlflow_files(workdir)


def _expand(value: str, variables: dict) -> str:
    """GitLab's $VAR expansion of a job variable, from the given CI/CD variables only."""
    for key, val in variables.items():
        value = value.replace(f"${key}", val)
    return value


def test_gpu_probe_workflow_runs_from_the_probe_install(probe_install, mlflow_server, workdir):
    assert install_spec("github-actions-gpu-probe.yml") == [".[probe]"]
    job = yaml.safe_load((EXAMPLES / "github-actions-gpu-probe.yml").read_text())["jobs"]["gate-local-gpu"]
    assert "MLFLOW_TRACKING_URI" in job["env"]                      # a secret on the real runner
    for step in advisor_steps("github-actions-gpu-probe.yml"):
        argv = shlex.split(step)
        assert "--target" in argv and argv[argv.index("--target") + 1] == "local"
        # A CPU-only test machine: the same command without the torch probes (spec basis).
        proc = run_step(probe_install, step + " --no-probe", workdir,
                        env={"MLFLOW_TRACKING_URI": mlflow_server.uri})
        assert "MLflow: logged as run" in proc.stdout, proc.stdout
        junit_ok(workdir / "advisor-junit-local.xml")
    no_mlflow_files(workdir)


def test_python_api_example_runs_from_a_plain_install(plain_install, workdir):
    proc = plain_install.shell("python examples/check_api.py", cwd=workdir)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert "a10g-24gb" in proc.stdout and ("PASS" in proc.stdout or "FAIL" in proc.stdout)
    no_mlflow_files(workdir)


def test_example_policy_explains(plain_install, workdir):
    proc = run_step(plain_install, "advisor check --policy examples/policy-summarization-a10g.yaml --explain", workdir)
    assert proc.returncode == 0
    assert yaml.safe_load(proc.stdout)["task"] == "summarization"

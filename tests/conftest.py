"""Shared fixtures. Every test runs with its own cache, reports dir and MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolate_user_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ADVISOR_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("ADVISOR_CATALOG_PATH", raising=False)
    monkeypatch.delenv("ADVISOR_HF_CACHE", raising=False)   # a developer's own cache must not join the tests
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", "")
    # the test run itself loads the 2-core machine; cache tests must not depend on the load average
    monkeypatch.setenv("ADVISOR_PROBE_IGNORE_LOAD", "1")
    yield


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def run_advisor(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
                input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (the way users and CI run it)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, input=input)


@pytest.fixture
def advisor_cli():
    return run_advisor


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 (sqlite backend, local artifacts), once per session.

    Yields tests/mlflow_server.Server (.uri, .port, .root); log to your own experiment name.
    """
    from mlflow_server import serve

    yield from serve(tmp_path_factory)

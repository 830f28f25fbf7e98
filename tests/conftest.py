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


# --- model-advisor installed from its wheel into fresh venvs (tests/installed.py) --------------------

INSTALL_FIGURES: list[str] = []   # lines printed at the end of the run (install size, check time)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from this tree, once per session."""
    from installed import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def plain_install(wheel, tmp_path_factory):
    """`pip install WHEEL` into a fresh venv: no extras, no -e (what `pip install .` gives a CI gate)."""
    from installed import make_venv

    install = make_venv(tmp_path_factory.mktemp("venv-plain") / "v", str(wheel))
    INSTALL_FIGURES.append(f"plain install (no extras): {install.size_mb():.0f} MB in the venv (du -sm) "
                           f"(goal <= 350 MB), pip took {install.install_s:.0f} s")
    yield install
    for line in install.measured.values():
        INSTALL_FIGURES.append(line)


@pytest.fixture(scope="session")
def probe_install(wheel, tmp_path_factory):
    """`pip install "WHEEL[probe]"` into a fresh venv, torch pinned to the version these tests run with."""
    from installed import make_venv, torch_pin

    pin = torch_pin()
    if pin is None:
        pytest.skip("torch is not installed here, so there is no version to pin the probe extra's torch to")
    install = make_venv(tmp_path_factory.mktemp("venv-probe") / "v", f"{wheel}[probe]", pin)
    INSTALL_FIGURES.append(f"probe install ({pin}): {install.size_mb():.0f} MB, pip took {install.install_s:.0f} s")
    yield install


def pytest_terminal_summary(terminalreporter):
    if INSTALL_FIGURES:
        terminalreporter.section("model-advisor as installed from its wheel")
        for line in INSTALL_FIGURES:
            terminalreporter.write_line(line)


# --- the fast loop: `python -m pytest -q -m "not slow"` ---------------------------------------------
# Everything runs in CI (`python -m pytest -q`). These are marked slow because each costs seconds of
# subprocesses, real servers or generated inputs: the PostgreSQL load test, tests that start a real
# `mlflow server`, the fuzz runs, real-probe and installed-wheel tests.
SLOW_MODULES = {"test_load_mlflow", "test_fuzz_inputs", "test_faults_mlflow", "test_packaging", "test_security",
                "test_check_examples", "test_tracking_server", "test_readme_snippets",
                "test_lint"}
SLOW_FIXTURES = {"mlflow_server", "pg_server", "plain_install", "probe_install", "wheel"}
SLOW_TESTS = {
    "test_real_sigint_stops_a_real_probe_promptly",
    "test_report_saved_without_mlflow_gets_its_plot_when_logged_later",
    "test_estimate_mlflow_logs_a_run",
    "test_cli_subprocess_end_to_end",
    "test_probes_calibrate_and_measure_the_leaders_then_reuse_the_cache",
    "test_microprobes_measure_plausible_cpu_rates",
    "test_evaluate_by_name_times_the_model_and_estimates_fit",
    "test_without_a_config_json_the_missing_fit_is_reported",
    "test_a_probe_run_prints_no_library_warnings",
    "test_plain_start_run_gets_the_hardware_inventory",
    "test_default_store_is_sqlite_in_the_current_directory",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if (module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.originalname in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)

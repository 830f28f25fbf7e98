"""The MLflow plugins as installed: entry points load, the run-context provider tags plain runs."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

FIX = Path(__file__).parent / "fixtures" / "tracking"


@pytest.fixture(scope="module")
def db_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('plugins') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def shared_store(db_uri, monkeypatch):
    """One sqlite store for the module (creating one costs seconds); fresh detection caches."""
    import advisor_plugins.run_context as rc
    from advisor.hardware.profile import clear_cache

    monkeypatch.setenv("MLFLOW_TRACKING_URI", db_uri)
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(FIX / "hardware-h100.json"))
    monkeypatch.delenv("ADVISOR_RUN_CONTEXT", raising=False)
    monkeypatch.setattr(rc, "_cache", None)
    clear_cache()
    yield
    clear_cache()


def _start_and_read_tags() -> dict:
    import mlflow

    with mlflow.start_run() as run:
        pass
    return mlflow.MlflowClient().get_run(run.info.run_id).data.tags


def test_entry_points_are_installed_and_load():
    from mlflow.deployments import BaseDeploymentClient
    from mlflow.models.evaluation.base import ModelEvaluator
    from mlflow.tracking.context.abstract_context import RunContextProvider

    found = {g: {ep.name: ep for ep in entry_points(group=g)}
             for g in ("mlflow.run_context_provider", "mlflow.model_evaluator", "mlflow.deployments")}
    assert issubclass(found["mlflow.run_context_provider"]["advisor"].load(), RunContextProvider)
    assert issubclass(found["mlflow.model_evaluator"]["advisor"].load(), ModelEvaluator)
    module = found["mlflow.deployments"]["advisor-gate"].load()
    members = dict(inspect.getmembers(module))        # how MLflow's plugin manager looks
    assert callable(members["run_local"]) and "advisor-gate" in members["target_help"]()
    assert [n for n, o in members.items() if inspect.isclass(o) and issubclass(o, BaseDeploymentClient)
            and o is not BaseDeploymentClient] == ["AdvisorGateClient"]


def test_mlflow_registered_our_providers():
    from mlflow.models.evaluation.evaluator_registry import _model_evaluation_registry
    from mlflow.tracking.context.registry import _run_context_provider_registry

    import advisor_plugins.run_context as rc

    assert any(isinstance(p, rc.AdvisorRunContextProvider) for p in _run_context_provider_registry)
    assert _model_evaluation_registry.is_registered("advisor")


def test_plugin_modules_import_nothing_heavy():
    code = ("import sys, advisor_plugins.run_context, advisor_plugins.evaluator, advisor_plugins.deployments;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'torch', 'pandas', 'advisor'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_plain_start_run_gets_the_hardware_inventory():
    tags = _start_and_read_tags()
    assert tags["advisor.gpu.name"] == "NVIDIA H100 80GB HBM3"
    assert tags["advisor.gpu.count"] == "1" and tags["advisor.gpu.memory_gb"] == "85.5"
    assert tags["advisor.gpu.driver"] == "580.65.06" and tags["advisor.gpu.compute_capability"] == "9.0"
    assert tags["advisor.cpu.model"] == "AMD EPYC 9554 64-Core Processor" and tags["advisor.cpu.cores"] == "16"
    assert tags["advisor.ram_gb"] == "137.4" and tags["advisor.hardware.fingerprint"]
    assert "advisor.error" not in tags


@pytest.mark.parametrize("value", ["0", "off", "OFF", "false"])
def test_switched_off_by_env(monkeypatch, value):
    monkeypatch.setenv("ADVISOR_RUN_CONTEXT", value)
    assert not any(k.startswith("advisor.") for k in _start_and_read_tags())


def test_detection_that_blows_up_never_breaks_start_run(monkeypatch):
    import advisor.tracking.hardware_tags as hw

    def boom():
        raise RuntimeError("NVML exploded")

    monkeypatch.setattr(hw, "local_inventory_tags", boom)
    tags = _start_and_read_tags()
    assert tags["advisor.error"] == "hardware detection failed: RuntimeError: NVML exploded"
    assert not any(k.startswith("advisor.gpu") for k in tags)


def test_a_broken_hardware_fixture_gives_an_error_tag(monkeypatch, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(bad))
    import advisor_plugins.run_context as rc

    provider = rc.AdvisorRunContextProvider()
    assert provider.in_context() is True
    tags = provider.tags()
    assert list(tags) == ["advisor.error"] and "hardware detection failed" in tags["advisor.error"]


def test_tags_are_cached_per_process(monkeypatch):
    import advisor.tracking.hardware_tags as hw
    import advisor_plugins.run_context as rc

    calls = []
    real = hw.local_inventory_tags
    monkeypatch.setattr(hw, "local_inventory_tags", lambda: calls.append(1) or real())
    provider = rc.AdvisorRunContextProvider()
    first = provider.tags()
    first["advisor.gpu.name"] = "edited by a caller"
    assert provider.tags()["advisor.gpu.name"] == "NVIDIA H100 80GB HBM3"
    assert len(calls) == 1

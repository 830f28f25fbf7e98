"""`advisor check` against a real MLflow registry (sqlite in tmp): run, model-version tags, alias."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHECK = Path(__file__).parent / "fixtures" / "check"
CAT = str(CHECK / "catalog.yaml")


def advisor(capsys, *args: str) -> tuple[int, str, str]:
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    code = run_cli(cli, list(args), prog_name="advisor")
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store per module: creating MLflow's tables takes seconds."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'registry.db'}"
    return uri, MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def registry(store, tmp_path, request):
    """A fresh registered model: v1 (config.json at the root), v2 (one folder down, like a flavour's layout)."""
    uri, client = store
    name = "gate-" + request.node.name.split("[")[0].removeprefix("test_")[:40].replace("_", "-")
    if request.node.name.endswith("]"):
        name += "-" + str(abs(hash(request.node.name)) % 10_000)
    v1 = tmp_path / "v1"
    v1.mkdir()
    shutil.copy(CHECK / "tiny-model" / "config.json", v1 / "config.json")
    v2 = tmp_path / "v2" / "model"
    v2.mkdir(parents=True)
    shutil.copy(CHECK / "tiny-model" / "config.json", v2 / "config.json")
    (tmp_path / "v2" / "MLmodel").write_text("flavors: {}\n")
    client.create_registered_model(name)
    client.create_model_version(name, source=str(v1))
    client.create_model_version(name, source=str(tmp_path / "v2"))
    return uri, client, name


def _check(capsys, uri: str, model_uri: str, *extra: str) -> tuple[int, dict, str]:
    code, out, err = advisor(capsys, "check", "--model-uri", model_uri, "--target", "gate-gpu-24gb",
                             "--catalog", CAT, "--tracking-uri", uri, "--experiment", "gate", "--json", *extra)
    return code, (json.loads(out) if out.strip() else {}), err


def test_pass_tags_the_version_and_moves_the_alias(capsys, registry):
    uri, client, name = registry
    code, report, err = _check(capsys, uri, f"models:/{name}/1", "--max-latency-ms", "600000",
                               "--set-alias-on-pass", "champion")
    assert code == 0, err
    mv = client.get_model_version(name, "1")
    assert mv.tags["advisor.check.status"] == "pass"
    assert mv.tags["advisor.check.target"] == "gate-gpu-24gb"
    assert float(mv.tags["advisor.check.memory_gb"]) == pytest.approx(report["targets"][0]["figures"]["memory_gb"])
    assert float(mv.tags["advisor.check.e2e_p95_ms"]) > 0
    assert mv.tags["advisor.check.report_id"] == report["report_id"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"

    run = client.get_run(mv.tags["advisor.check.run_id"])
    assert run.data.tags["advisor.kind"] == "check" and run.data.tags["advisor.check.status"] == "pass"
    assert run.data.params["model_uri"] == f"models:/{name}/1"
    assert run.data.params["targets"] == "gate-gpu-24gb"
    assert run.data.params["threshold.max_latency_ms"] == "600000.0"
    assert run.data.metrics["e2e_p95_ms"] == pytest.approx(report["targets"][0]["figures"]["e2e_p95_ms"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"check.json", "junit.xml", "report.md"}


def test_failing_check_tags_fail_and_does_not_move_the_alias(capsys, registry):
    uri, client, name = registry
    client.set_registered_model_alias(name, "champion", "1")
    code, report, err = _check(capsys, uri, f"models:/{name}/2", "--max-latency-ms", "0.001",
                               "--set-alias-on-pass", "champion")
    assert code == 1, err
    assert report["model"]["config_path"].endswith("config.json")       # found one folder down
    mv = client.get_model_version(name, "2")
    assert mv.tags["advisor.check.status"] == "fail"
    assert mv.tags["advisor.check.failed"] == "gate-gpu-24gb:latency-p95"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"   # not moved
    run = client.get_run(mv.tags["advisor.check.run_id"])
    assert "not moved" in run.data.tags["advisor.check.alias"]


def test_alias_uri_resolves_to_its_version(capsys, registry):
    uri, client, name = registry
    client.set_registered_model_alias(name, "staging", "2")
    code, report, err = _check(capsys, uri, f"models:/{name}@staging")
    assert code == 0, err
    assert report["model"]["registered_model"] == name and report["model"]["version"] == "2"
    assert client.get_model_version(name, "2").tags["advisor.check.status"] == "pass"


@pytest.mark.parametrize("model_uri", ["models:/no-such-model/1", "models:/{name}/9", "models:/{name}@nope"])
def test_unknown_registered_model_is_usage_error(capsys, registry, model_uri):
    uri, _, name = registry
    model_uri = model_uri.format(name=name)
    code, _, err = _check(capsys, uri, model_uri)
    assert code == 2
    assert err.splitlines()[-1].startswith(f"error: cannot resolve {model_uri} in the MLflow registry")


def test_version_without_config_json_is_usage_error(capsys, registry, tmp_path):
    uri, client, name = registry
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "weights.bin").write_bytes(b"\0")
    client.create_model_version(name, source=str(empty))
    code, _, err = _check(capsys, uri, f"models:/{name}/3")
    assert code == 2 and f"no config.json in the artifacts of models:/{name}/3" in err


def test_saved_report_resends_through_the_outbox(capsys, registry):
    """A report saved while MLflow was down is sent later by `advisor log` via log_check."""
    from advisor.check.engine import check
    from advisor.tracking import deliver, outbox

    uri, client, name = registry
    report = check(model_uri=f"models:/{name}/1", targets=["gate-gpu-24gb"], catalog_paths=[CAT],
                   tracking_uri=uri)
    folder = outbox.save_report("check", report)
    run_id = deliver.deliver(folder, tracking_uri=uri, experiment="gate")
    assert deliver.deliver(folder, tracking_uri=uri, experiment="gate") == run_id     # idempotent
    assert client.get_model_version(name, "1").tags["advisor.check.run_id"] == run_id


def test_a_registered_model_is_named_by_its_name_and_version_not_the_borrowed_catalog_id(capsys, registry, tmp_path):
    """Issue 18: with MODEL (a catalog id, for its licence and scores) and --model-uri, the gate's run
    name, JUnit suite names and headers name the registered model and version."""
    import xml.etree.ElementTree as ET

    uri, client, name = registry
    junit = tmp_path / "gate.xml"
    md = tmp_path / "gate.md"
    code, out, err = advisor(capsys, "check", "gate-small", "--model-uri", f"models:/{name}/2", "--target",
                             "gate-gpu-24gb", "--catalog", CAT, "--tracking-uri", uri, "--experiment", "gate",
                             "--max-latency-ms", "600000", "--junit", str(junit), "--markdown", str(md))
    assert code == 0, err
    label = f"{name} v2"
    assert out.splitlines()[0].startswith(f"advisor check {label} (licence and scores of catalog entry gate-small")
    assert f"PASSED: {label} on gate-gpu-24gb" in out
    root = ET.fromstring(junit.read_text())
    assert root.get("name") == f"advisor check {label}"
    assert [s.get("name") for s in root.iter("testsuite")] == [f"{label}@gate-gpu-24gb"]
    props = {p.get("name"): p.get("value") for p in root.find("testsuite/properties")}
    assert props["model"] == label and props["catalog_entry"] == "gate-small"
    assert md.read_text().startswith(f"### ✅ advisor check: {label} — PASS")

    run = client.get_run(client.get_model_version(name, "2").tags["advisor.check.run_id"])
    assert run.info.run_name == f"check {label} (gate-gpu-24gb): pass"
    assert (run.data.tags["advisor.check.label"] == label
            and run.data.tags["advisor.check.catalog_entry"] == "gate-small")


def test_check_runs_carry_the_hardware_tags(capsys, registry):
    """Check runs are created through the client API, where MLflow's run-context providers never run:
    the check logger tags the machine itself, and says the figures are for the named target."""
    from advisor.hardware.profile import detect_profile

    uri, client, name = registry
    code, report, err = _check(capsys, uri, f"models:/{name}/1", "--max-latency-ms", "600000")
    assert code == 0, err
    run = client.get_run(client.get_model_version(name, "1").tags["advisor.check.run_id"])
    tags, here = run.data.tags, detect_profile(include_torch=False)
    assert tags["advisor.hardware.fingerprint"] == here.fingerprint
    assert tags["advisor.gpu.count"] == str(here.gpu_count) and tags["advisor.cpu.model"] == here.cpu.model_name
    assert ("not the named target" in tags["advisor.hardware.scope"]
            and "gate-gpu-24gb" in tags["advisor.hardware.scope"])

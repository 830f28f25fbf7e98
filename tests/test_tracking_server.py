"""Recommendations through a real `mlflow server` (HTTP, sqlite backend, local artifact store).

One server for the session (tests/mlflow_server.py); every test uses its own experiment.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from mlflow_server import closed_port_uri

from advisor.cli.app import cli
from advisor.cli.guard import run_cli
from advisor.errors import InfraError
from advisor.recommend.schema import Recommendation
from advisor.tracking import deliver, outbox
from advisor.tracking.api import record

FIX = Path(__file__).parent / "fixtures" / "tracking"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def make_rec(hardware: str | None = "h100", **changes) -> Recommendation:
    rec = Recommendation.model_validate_json((FIX / "recommendation.json").read_text())
    rec = rec.model_copy(update={"report_id": str(uuid.uuid4()), **changes})
    if hardware:
        rec.hardware = json.loads((FIX / f"hardware-{hardware}.json").read_text())
    return rec


def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri)


def runs_for(server, experiment: str, report_id: str):
    c = client(server)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], filter_string=f"tags.`advisor.report_id` = '{report_id}'")


def cli_run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli(cli, list(args), "advisor")
    out, err = capsys.readouterr()
    return code, out, err


def test_recommendation_round_trip(mlflow_server, tmp_path):
    exp = f"rt-{uuid.uuid4().hex[:8]}"
    rec = make_rec()
    files = {"report.md": "# Deploy Qwen2.5 3B\n", "pareto.png": PNG,
             "hardware.json": json.dumps(rec.hardware), "probes.json": json.dumps(rec.probes)}
    res = record("recommendation", rec, files, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    assert res.ok and res.run_id and not res.already_sent, res.message()

    run = client(mlflow_server).get_run(res.run_id)
    assert run.info.status == "FINISHED"
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    assert p["task"] == "summarization" and p["targets"] == "local"
    assert (p["prompt_tokens"], p["new_tokens"], p["batch"]) == ("1024", "256", "1")
    assert p["constraint.max_latency_ms"] == "3000.0" and p["constraint.license"] == "apache-2.0,llama3.1"
    assert p["catalog_version"] == "2026.11.1"
    assert t["advisor.report_id"] == rec.report_id and t["advisor.kind"] == "recommendation"
    assert t["advisor.complete"] == "true"
    assert t["advisor.gpu.name"] == "NVIDIA H100 80GB HBM3" and t["advisor.gpu.count"] == "1"
    assert t["advisor.gpu.memory_gb"] == "85.5" and t["advisor.gpu.driver"] == "580.65.06"
    assert t["advisor.gpu.compute_capability"] == "9.0"
    assert t["advisor.cpu.model"] == "AMD EPYC 9554 64-Core Processor" and t["advisor.ram_gb"] == "137.4"
    assert t["advisor.pick"] == "qwen2.5-3b:bf16@local" and t["advisor.task"] == "summarization"
    assert t["advisor.verdict"] == rec.primary.verdict and t["advisor.version"] == "0.1.0"
    assert m["ttft_ms"] == 45.0 and m["e2e_p50_ms"] == 2100.0 and m["e2e_p95_ms"] == 2300.0
    assert m["tokens_per_s"] == 121.9 and m["memory_gb"] == 7.4 and m["quality_proxy"] == 62.5
    assert m["cost_per_mtok_usd"] == 0.42 and "energy_kwh_per_mtok" not in m   # None is not logged

    names = {a.path for a in client(mlflow_server).list_artifacts(res.run_id)}
    assert names == {"recommendation.json", "candidates.json", "report.md", "pareto.png", "hardware.json",
                     "probes.json"}
    dl = Path(client(mlflow_server).download_artifacts(res.run_id, "", str(tmp_path / "dl")))
    assert Recommendation.model_validate_json((dl / "recommendation.json").read_text()) == rec
    assert (dl / "pareto.png").read_bytes() == PNG
    table = json.loads((dl / "candidates.json").read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    # table order: passing first by rank (the unscored one last among them), then the rejected one
    assert [r["key"] for r in rows] == ["qwen2.5-3b:bf16@local", "meta/llama:3 8b?x@local", "llama-3.1-8b:int8@local"]
    assert [r["rank"] for r in rows] == [1, 2, 3] and [r["status"] for r in rows] == ["pass", "pass", "rejected"]
    assert "4200 ms" in rows[2]["reason"] and rows[0]["reason"] == ""
    assert rows[0]["memory_gb"] == 7.4

    manifest = outbox.read_manifest(res.folder)
    assert manifest["sent_run_id"] == res.run_id and manifest["sent_experiment"] == exp


def test_several_targets_prefix_metrics_and_long_verdict_is_truncated(mlflow_server):
    exp = f"multi-{uuid.uuid4().hex[:8]}"
    rec = make_rec(hardware=None)
    second = rec.primary.model_copy(update={"target": "a10g-24gb", "verdict": "x" * 9000})
    rec = rec.model_copy(update={"targets": [rec.primary.model_copy(update={"verdict": "v" * 9000}), second]})
    res = record("recommendation", rec, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    run = client(mlflow_server).get_run(res.run_id)
    assert run.data.metrics["e2e_p95_ms"] == 2300.0
    assert run.data.metrics["local/e2e_p95_ms"] == 2300.0 and run.data.metrics["a10g-24gb/ttft_ms"] == 45.0
    assert len(run.data.tags["advisor.verdict"]) == 8000 and run.data.tags["advisor.verdict"].endswith("...")
    assert run.data.params["targets"] == "local,a10g-24gb"


def test_sending_twice_makes_one_run(mlflow_server):
    exp = f"once-{uuid.uuid4().hex[:8]}"
    rec = make_rec()
    first = record("recommendation", rec, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    again = record("recommendation", rec, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    assert again.run_id == first.run_id and again.already_sent
    assert deliver.deliver(first.folder, tracking_uri=mlflow_server.uri, experiment=exp) == first.run_id
    assert len(runs_for(mlflow_server, exp, rec.report_id)) == 1


def _dying_logger(client, run_id, folder, payload):
    client.log_param(run_id, "half", "logged")
    raise ConnectionError("server went away mid-way")


def test_a_run_that_dies_midway_is_failed_and_replaced(mlflow_server, monkeypatch):
    exp = f"dies-{uuid.uuid4().hex[:8]}"
    rec = make_rec()
    with monkeypatch.context() as mp:
        mp.setitem(deliver.KIND_LOGGERS, "recommendation", f"{__name__}:_dying_logger")
        res = record("recommendation", rec, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    assert isinstance(res.error, InfraError) and str(res.folder) in res.error.message
    assert "advisor log" in res.error.one_line() and "ConnectionError" in res.error.one_line()
    [dead] = runs_for(mlflow_server, exp, rec.report_id)
    assert dead.info.status == "FAILED" and dead.data.tags["advisor.complete"] == "false"
    assert outbox.pending() == [res.folder]

    # a run left RUNNING by a crashed process is failed too, then the report is logged afresh
    c = client(mlflow_server)
    crashed = c.create_run(dead.info.experiment_id, tags={"advisor.report_id": rec.report_id})
    run_id = deliver.deliver(res.folder, tracking_uri=mlflow_server.uri, experiment=exp)
    runs = {r.info.run_id: r for r in runs_for(mlflow_server, exp, rec.report_id)}
    assert set(runs) == {dead.info.run_id, crashed.info.run_id, run_id}
    assert runs[crashed.info.run_id].info.status == "FAILED"
    assert runs[crashed.info.run_id].data.tags["advisor.complete"] == "false"
    assert runs[run_id].info.status == "FINISHED" and runs[run_id].data.tags["advisor.complete"] == "true"
    assert outbox.pending() == []


def test_outage_keeps_the_report_and_advisor_log_sends_it_once(mlflow_server, advisor_cli, capsys):
    exp = f"outage-{uuid.uuid4().hex[:8]}"
    rec = make_rec()
    down = closed_port_uri()
    start = time.monotonic()
    res = record("recommendation", rec, send=True, tracking_uri=down, experiment=exp)
    assert time.monotonic() - start < 60          # bounded retries, not minutes
    assert isinstance(res.error, InfraError) and res.error.exit_code == 3
    assert outbox.pending() == [res.folder] and (res.folder / "recommendation.json").is_file()

    # the real CLI, in a subprocess: still down -> exit 3, one line naming the folder
    proc = advisor_cli("log", "--all", "--tracking-uri", down, "--experiment", exp, timeout=180)
    assert proc.returncode == 3, proc.stderr
    assert str(res.folder) in proc.stderr and "advisor log" in proc.stderr and "Traceback" not in proc.stderr
    assert outbox.pending() == [res.folder]

    code, out, err = cli_run(capsys, "log", str(res.folder / "recommendation.json"), "--tracking-uri",
                             mlflow_server.uri, "--experiment", exp, "--json")
    assert code == 0, err
    [sent] = json.loads(out)
    assert sent["status"] == "sent" and sent["report_id"] == rec.report_id
    assert outbox.pending() == []

    code, out, err = cli_run(capsys, "log", str(res.folder), "--tracking-uri", mlflow_server.uri,
                             "--experiment", exp)
    assert code == 0 and out.startswith("already sent:") and sent["run_id"] in out
    assert len(runs_for(mlflow_server, exp, rec.report_id)) == 1


def test_advisor_log_usage_errors(capsys, tmp_path):
    code, _, err = cli_run(capsys, "log")
    assert code == 2 and "--all" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli_run(capsys, "log", str(tmp_path / "nope"))
    assert code == 2 and "no such report folder" in err
    code, _, err = cli_run(capsys, "log", "--all")
    assert code == 0 and "nothing to send" in err


def test_estimate_and_probe_reports(mlflow_server):
    exp = f"simple-{uuid.uuid4().hex[:8]}"
    estimate = {"schema_version": 1, "model": "qwen2.5-3b", "target": "t4-16gb", "format": "int8", "batch": 1,
                "memory": {"per_device_bytes": 4_000_000_000, "fits": True, "verdict": "fits"},
                "latency": {"ttft_ms": 80.5, "e2e_p95_ms": 2500.0, "basis": "spec"}}
    res = record("estimate", estimate, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    run = client(mlflow_server).get_run(res.run_id)
    assert run.data.params["model"] == "qwen2.5-3b" and run.data.params["format"] == "int8"
    assert run.data.params["memory.fits"] == "true"
    assert run.data.metrics["latency.ttft_ms"] == 80.5 and run.data.metrics["memory.per_device_bytes"] == 4e9
    assert run.data.tags["advisor.verdict"] == "fits" and run.data.tags["advisor.kind"] == "estimate"
    assert {a.path for a in client(mlflow_server).list_artifacts(res.run_id)} == {"estimate.json"}

    probe = {"device": "cpu", "matmul_tflops": {"fp32": 0.12}, "bandwidth_gbs": 9.5, "step_overhead_ms": 0.05}
    res = record("probe", probe, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    run = client(mlflow_server).get_run(res.run_id)
    assert run.data.metrics["matmul_tflops.fp32"] == 0.12 and run.data.params["device"] == "cpu"
    assert run.data.tags["advisor.complete"] == "true"


def test_credentials_never_reach_params_tags_or_artifacts(mlflow_server, monkeypatch, tmp_path):
    exp = f"creds-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    uri = mlflow_server.uri.replace("http://", "http://alice:hunter2-secret@")
    rec = make_rec()
    res = record("recommendation", rec, {"report.md": "# r"}, send=True, tracking_uri=uri, experiment=exp)
    assert res.ok, res.message()
    run = client(mlflow_server).get_run(res.run_id)
    everything = json.dumps([run.data.params, run.data.tags])
    dl = Path(client(mlflow_server).download_artifacts(res.run_id, "", str(tmp_path / "dl")))
    everything += "".join(p.read_text(errors="replace") for p in dl.rglob("*") if p.is_file())
    everything += (res.folder / "manifest.json").read_text()
    assert "hunter2" not in everything
    assert outbox.read_manifest(res.folder)["sent_tracking_uri"] == mlflow_server.uri.replace("http://", "http://***@")


def test_the_reports_hardware_wins_over_this_machines(mlflow_server, monkeypatch):
    """A report made elsewhere (CPU-only box) keeps its own inventory, none of this machine's tags."""
    import advisor_plugins.run_context as rc
    from advisor.hardware.profile import clear_cache

    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(FIX / "hardware-h100.json"))
    monkeypatch.setattr(rc, "_cache", None)
    clear_cache()
    exp = f"hw-{uuid.uuid4().hex[:8]}"
    rec = make_rec(hardware=None)
    rec.hardware = {"gpu_count": 0, "gpus": [], "cpu": {"model_name": "Intel Xeon", "physical_cores": 4},
                    "fingerprint": "fp-cpu-only"}
    res = record("recommendation", rec, send=True, tracking_uri=mlflow_server.uri, experiment=exp)
    tags = client(mlflow_server).get_run(res.run_id).data.tags
    clear_cache()
    assert tags["advisor.gpu.name"] == "none" and tags["advisor.gpu.count"] == "0"
    assert tags["advisor.cpu.model"] == "Intel Xeon" and tags["advisor.hardware.fingerprint"] == "fp-cpu-only"
    assert "advisor.gpu.memory_gb" not in tags and "advisor.gpu.driver" not in tags

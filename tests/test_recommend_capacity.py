"""recommend under a load (--rps / --concurrency): capacity figures per candidate, the cheapest pick, the
verdict against the best-quality one, the vLLM command per replica, and the same figures in MLflow."""

from __future__ import annotations

import json
import math

import pytest
from conftest import run_advisor

CHAT = ["recommend", "--task", "chat", "--max-ttft-ms", "1000", "--max-tpot-ms", "50", "--formats", "fp8",
        "--max-params", "15e9", "--no-probe"]
PRICE = {"l4-24gb": 0.8048, "h100-sxm-80gb": 6.88}     # catalog/hardware.yaml, USD per GPU-hour


@pytest.fixture(scope="module")
def planned():
    res = run_advisor(*CHAT, "--rps", "20", "--target", "l4-24gb", "--target", "h100-sxm-80gb", "--no-mlflow",
                      "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_every_planned_candidate_serves_the_rate_within_the_slos(planned):
    load = planned["load"]
    assert load["rps"] == 20 and load["max_tpot_ms"] == 50 and load["max_ttft_ms"] == 1000
    assert load["max_latency_ms"] == 8000            # the chat task's default budget
    ok = [c for c in planned["candidates"] if c["passed"]]
    assert ok
    for c in ok:
        assert c["replicas"] >= 1 and c["gpus_total"] == c["replicas"] * c["tensor_parallel"]
        assert c["cost_per_hour_usd"] == pytest.approx(c["gpus_total"] * PRICE[c["target"]])
        assert c["cost_per_mtok_usd"] == pytest.approx(c["cost_per_hour_usd"] / (20 * 256 * 3600) * 1e6)
        assert c["tpot_p95_ms"] <= 50 and c["ttft_p95_ms"] <= 1000 and c["e2e_p95_ms"] <= 8000
        # replicas = ceil(R / what one replica sustains), and together they sustain R
        assert c["replicas"] == math.ceil(20 / c["max_rps_per_replica"] - 1e-9)
        assert c["rps_sustained"] >= 20
        assert c["load_bound"] in ("kv-pool", "max-num-seqs", "slo-ttft", "slo-tpot", "slo-e2e")
        chosen = [lay for lay in c["layouts"] if lay["tensor_parallel"] == c["tensor_parallel"]]
        assert chosen and chosen[0]["cost_per_hour_usd"] == pytest.approx(c["cost_per_hour_usd"])
        assert all(lay["cost_per_hour_usd"] >= c["cost_per_hour_usd"] - 1e-9 for lay in c["layouts"]
                   if lay["cost_per_hour_usd"] is not None)


def test_the_pick_is_the_cheapest_within_the_tolerance_and_the_verdict_weighs_the_best_quality(planned):
    load = planned["load"]
    ok = [c for c in planned["candidates"] if c["passed"] and c["quality_proxy"] is not None]
    top = max(c["quality_proxy"] for c in ok)
    tolerance = planned["constraints"]["quality_tolerance"]
    assert tolerance == 10.0                                 # the default
    near = [c for c in ok if c["quality_proxy"] >= top - tolerance]
    by_key = {c["key"]: c for c in planned["candidates"]}
    pick, best = by_key[load["pick"]], by_key[load["best_quality"]]
    assert pick["cost_per_hour_usd"] == pytest.approx(min(c["cost_per_hour_usd"] for c in near))
    assert pick["quality_proxy"] >= top - tolerance
    assert best["quality_proxy"] == top
    assert pick["model"] in load["verdict"] and f"${pick['cost_per_hour_usd']:,.2f}/h" in load["verdict"]
    if best["key"] != pick["key"]:
        assert best["model"] in load["verdict"] and f"${best['cost_per_hour_usd']:,.2f}/h" in load["verdict"]
    # each target's own pick is its cheapest within the tolerance of that target's best
    for t in planned["targets"]:
        mine = [c for c in ok if c["target"] == t["target"]]
        if mine:
            best_here = max(c["quality_proxy"] for c in mine)
            near_here = [c for c in mine if c["quality_proxy"] >= best_here - tolerance]
            assert t["pick"]["cost_per_hour_usd"] == pytest.approx(min(c["cost_per_hour_usd"] for c in near_here))


def test_a_tolerance_of_100_picks_the_cheapest_outright():
    res = run_advisor(*CHAT, "--rps", "20", "--target", "l4-24gb", "--target", "h100-sxm-80gb", "--no-mlflow",
                      "--json", "--quality-tolerance", "100")
    rec = json.loads(res.stdout)
    ok = [c for c in rec["candidates"] if c["passed"] and c["quality_proxy"] is not None]
    pick = next(c for c in rec["candidates"] if c["key"] == rec["load"]["pick"])
    assert pick["cost_per_hour_usd"] == pytest.approx(min(c["cost_per_hour_usd"] for c in ok))


def test_the_pick_comes_with_a_vllm_command_per_replica(planned):
    pick = next(c for c in planned["candidates"] if c["key"] == planned["load"]["pick"])
    cmds = pick["serve_commands"]
    assert len(cmds) == pick["replicas"]
    assert all("vllm serve" in c and f"--tensor-parallel-size {pick['tensor_parallel']}" in c for c in cmds)
    assert all("--quantization fp8" in c and "--max-model-len 768" in c for c in cmds)
    assert len({c.split("--port ")[1] for c in cmds}) == min(len(cmds), 8 // pick["tensor_parallel"])
    assert pick["serving_layout"].startswith("vLLM with")


def test_doubling_the_rate_never_lowers_gpus_for_the_same_candidate(planned):
    res = run_advisor(*CHAT, "--rps", "40", "--target", "l4-24gb", "--target", "h100-sxm-80gb", "--no-mlflow",
                      "--json")
    doubled = {c["key"]: c for c in json.loads(res.stdout)["candidates"]}
    for c in planned["candidates"]:
        other = doubled[c["key"]]
        if c["gpus_total"] and other["gpus_total"]:
            # the cheapest layout may change with the rate (3 x TP2 beats 8 x TP1): GPUs never drop, and
            # within one layout neither do replicas
            assert other["gpus_total"] >= c["gpus_total"]
            if other["tensor_parallel"] == c["tensor_parallel"]:
                assert other["replicas"] >= c["replicas"]


def test_without_a_load_recommend_is_unchanged():
    res = run_advisor(*CHAT, "--target", "l4-24gb", "--no-mlflow", "--json")
    rec = json.loads(res.stdout)
    assert rec["load"] is None
    assert all(c["replicas"] is None and c["cost_per_hour_usd"] is None for c in rec["candidates"])


def test_the_table_shows_the_capacity_columns_and_the_plan():
    res = run_advisor(*CHAT, "--rps", "5", "--target", "l40s-48gb", "--no-mlflow", env={"COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    assert "replicas" in res.stdout and "$/h" in res.stdout and "capacity plan" in res.stdout
    assert "Serving layout: vLLM with" in res.stdout and "vllm serve" in res.stdout


def test_concurrency_plans_closed_loop_clients():
    res = run_advisor(*CHAT, "--concurrency", "64", "--target", "h100-sxm-80gb", "--no-mlflow", "--json")
    rec = json.loads(res.stdout)
    assert rec["load"]["concurrency"] == 64 and rec["load"]["rps"] is None
    pick = next(c for c in rec["candidates"] if c["key"] == rec["load"]["pick"])
    assert pick["max_clients_per_replica"] >= 1
    assert pick["replicas"] == math.ceil(64 / pick["max_clients_per_replica"])


def test_rps_and_concurrency_together_is_a_usage_error():
    res = run_advisor(*CHAT, "--rps", "5", "--concurrency", "4", "--target", "l4-24gb", "--no-mlflow")
    assert res.returncode == 2 and "not both" in res.stderr and "Traceback" not in res.stderr


def test_a_target_without_a_price_is_planned_in_gpus_and_not_costed():
    res = run_advisor(*CHAT, "--rps", "5", "--target", "rtx4090-24gb", "--no-mlflow", "--json")
    rec = json.loads(res.stdout)
    planned = [c for c in rec["candidates"] if c["replicas"]]
    assert planned and all(c["cost_per_hour_usd"] is None and c["cost_per_mtok_usd"] is None for c in planned)
    assert any("no price" in n for n in rec["load"]["notes"])
    res = run_advisor(*CHAT, "--rps", "5", "--target", "rtx4090-24gb", "--gpu-hour-cost", "0.5",
                      "--no-mlflow", "--json")
    priced = [c for c in json.loads(res.stdout)["candidates"] if c["replicas"]]
    assert all(c["cost_per_hour_usd"] == pytest.approx(0.5 * c["gpus_total"]) and c["cost_basis"] == "user"
               for c in priced)


def test_a_cost_limit_nothing_meets_exits_1_with_the_reason():
    res = run_advisor(*CHAT, "--rps", "20", "--target", "h100-sxm-80gb", "--max-cost-per-hour-usd", "1",
                      "--no-mlflow", "--json")
    assert res.returncode == 1
    rec = json.loads(res.stdout)
    assert rec["load"]["pick"] is None
    assert any("exceeds the limit of $1.00/h" in r for c in rec["candidates"] for r in c["reasons"])


def test_mlflow_gets_the_load_params_and_the_plan_metrics(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'plan.db'}"
    res = run_advisor(*CHAT, "--rps", "20", "--target", "h100-sxm-80gb", "--tracking-uri", uri, "--json",
                      "--experiment", "capacity")
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    pick = next(c for c in rec["candidates"] if c["key"] == rec["load"]["pick"])
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("capacity").experiment_id])
    p, m = run.data.params, run.data.metrics
    assert p["load.rps"] == "20.0" and p["slo.max_tpot_ms"] == "50.0" and p["slo.max_ttft_ms"] == "1000.0"
    assert p["constraint.min_rps"] == "20.0" and p["load.pick"] == pick["key"]
    assert m["plan/replicas"] == pick["replicas"] and m["plan/gpus_total"] == pick["gpus_total"]
    assert m["plan/cost_per_hour_usd"] == pytest.approx(pick["cost_per_hour_usd"])
    assert m["gpus_total"] == pick["gpus_total"]            # the primary target's pick is this one
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "pareto.png" in arts and "report.md" in arts
    report = (tmp_path / "report.md")
    client.download_artifacts(run.info.run_id, "report.md", str(tmp_path))
    text = report.read_text()
    assert "## Capacity plan" in text and "vllm serve" in text


def test_plot_is_quality_against_cost(tmp_path):
    png = tmp_path / "cost.png"
    res = run_advisor(*CHAT, "--rps", "20", "--target", "l4-24gb", "--no-mlflow", "--plot", str(png))
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_a_config_file_takes_the_load_keys(tmp_path):
    cfg = tmp_path / "advisor.yaml"
    cfg.write_text("task: chat\ntargets: [h100-sxm-80gb]\nconcurrency: 32\nmax_tpot_ms: 40\nformats: [fp8]\n"
                   "max_params: 9e9\n")
    res = run_advisor("recommend", "--config", str(cfg), "--no-probe", "--no-mlflow", "--json")
    assert res.returncode == 0, res.stderr
    load = json.loads(res.stdout)["load"]
    assert load["concurrency"] == 32 and load["max_tpot_ms"] == 40
    cfg.write_text("task: chat\ntargets: [h100-sxm-80gb]\nmin_rps: -3\n")
    res = run_advisor("recommend", "--config", str(cfg), "--no-probe", "--no-mlflow")
    assert res.returncode == 2 and "min_rps" in res.stderr and "Traceback" not in res.stderr

"""recommend(): scenario tests on fixture hardware, constraints, reasons, outputs and exit codes."""

from __future__ import annotations

import json

import pytest

from advisor.recommend.engine import recommend
from tests.conftest import FIXTURES, run_advisor

HW = FIXTURES / "hardware"


def _on(monkeypatch, profile: str):
    """Make 'local' mean a recorded machine (no probes: spec figures, deterministic)."""
    from advisor.hardware import profile as hwprofile

    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(HW / profile))
    if hasattr(hwprofile, "_cached_profile"):
        hwprofile._cached_profile.cache_clear()
    for name in dir(hwprofile):  # any lru_cache'd detector
        fn = getattr(hwprofile, name)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()


def _rec(monkeypatch, profile, task="summarization", **kw):
    _on(monkeypatch, profile)
    return recommend(task, targets=["local"], probe=False, **kw)


def test_seventy_b_is_never_picked_on_8gb(monkeypatch):
    rec = _rec(monkeypatch, "gpu-8gb.json", max_latency_ms=10_000_000)
    t = rec.primary
    assert t.pick is not None and t.pick.params_total < 10e9
    big = [c for c in rec.candidates if c.model == "llama-3.1-70b"]
    assert big and all(not c.passed for c in big)
    assert all("memory" in c.binding for c in big)
    assert any("per device, the limit is" in r for c in big for r in c.reasons)


def test_generous_budget_on_80gb_picks_the_large_tier(monkeypatch):
    rec = _rec(monkeypatch, "gpu-80gb.json", max_latency_ms=10_000_000)
    t = rec.primary
    assert t.pick is not None and t.pick.tier == "large", t.verdict
    assert t.large is t.pick or t.large.key == t.pick.key
    assert t.pick.model in t.verdict


def test_tight_latency_budget_picks_the_small_tier_and_names_the_constraint(monkeypatch):
    loose = _rec(monkeypatch, "gpu-80gb.json", max_latency_ms=10_000_000)
    fastest_large = min(c.e2e_p95_ms for c in loose.candidates if c.tier == "large" and c.passed)
    faster_small = [c.e2e_p95_ms for c in loose.candidates
                    if c.tier == "small" and c.passed and c.e2e_p95_ms < fastest_large]
    assert faster_small, "some small model must be faster than every large one"
    budget = (fastest_large + max(faster_small)) / 2  # between them: only small models make it
    rec = _rec(monkeypatch, "gpu-80gb.json", max_latency_ms=budget)
    t = rec.primary
    assert t.pick is not None and t.pick.tier == "small", t.verdict
    large = [c for c in rec.candidates if c.tier == "large" and c.verdict == "fits"]
    assert large and all("max_latency_ms" in c.binding for c in large)
    assert "budget" in t.verdict


def test_cpu_only_machine_gets_a_cpu_recommendation(monkeypatch):
    rec = _rec(monkeypatch, "cpu-16gb.json", max_latency_ms=10_000_000)
    t = rec.primary
    assert t.pick is not None
    assert t.pick.memory_bytes <= t.pick.memory_limit_bytes
    assert t.pick.memory_limit_bytes <= 16 * 2**30
    assert "CPU" in t.device_summary


def test_two_24gb_gpus_hold_more_than_one(monkeypatch):
    one = _rec(monkeypatch, "gpu-24gb.json", max_latency_ms=10_000_000)
    two = _rec(monkeypatch, "gpu-2x24gb.json", max_latency_ms=10_000_000)
    fits_one = {c.key.split("@")[0] for c in one.candidates if c.verdict == "fits" and "memory" not in c.binding}
    fits_two = {c.key.split("@")[0] for c in two.candidates if c.verdict == "fits" and "memory" not in c.binding}
    assert fits_one < fits_two  # tensor parallel over two cards admits strictly more combinations


def test_no_model_passes_gives_closest_misses_and_what_to_relax(monkeypatch):
    rec = _rec(monkeypatch, "gpu-24gb.json", max_latency_ms=1)
    t = rec.primary
    assert t.status == "no-candidate" and t.pick is None
    assert t.closest_misses and all("max_latency_ms" in c.binding for c in t.closest_misses)
    assert any("--max-latency-ms" in r for r in t.to_relax)


def test_licence_and_quality_filters_give_reasons_with_numbers(monkeypatch):
    rec = _rec(monkeypatch, "gpu-80gb.json", max_latency_ms=10_000_000, license=["apache-2.0"], min_quality=60)
    for c in rec.candidates:
        if "request" in c.binding:  # e.g. a 1k-context model cannot take the task's request at all
            assert c.reasons and not c.passed
            continue
        if c.license != "apache-2.0":
            assert "license" in c.binding and any(c.license in r for r in c.reasons)
        if c.quality_proxy is not None and c.quality_proxy < 60:
            assert "min_quality" in c.binding and any(f"{c.quality_proxy:.1f}" in r for r in c.reasons)
        if c.quality_proxy is None:
            assert "min_quality" in c.binding
    assert all(c.license == "apache-2.0" and c.quality_proxy >= 60 for c in rec.candidates if c.passed)


def test_pareto_frontier_has_no_dominated_member(monkeypatch):
    rec = _rec(monkeypatch, "gpu-80gb.json", max_latency_ms=10_000_000)
    front = [c for c in rec.candidates if c.on_frontier]
    assert front
    from advisor.recommend.pareto import dominates

    passed = [c for c in rec.candidates if c.passed]
    for f in front:
        assert not any(dominates(o, f) for o in passed if o.key != f.key)
    for c in passed:
        if not c.on_frontier:
            assert any(dominates(f, c) for f in passed if f.key != c.key)


def test_deterministic_for_the_same_inputs(monkeypatch):
    a = _rec(monkeypatch, "gpu-24gb.json")
    b = _rec(monkeypatch, "gpu-24gb.json")
    strip = lambda r: r.model_dump(exclude={"report_id", "created_at"})  # noqa: E731
    assert strip(a) == strip(b)


def test_named_targets_several_at_once_and_cost():
    rec = recommend("chat", targets=["a10g-24gb", "h100-sxm-80gb"], probe=False, gpu_hour_cost=2.0)
    assert [t.target for t in rec.targets] == ["a10g-24gb", "h100-sxm-80gb"]
    for c in rec.candidates:
        assert c.latency_basis == "spec" and c.memory_basis == "spec"
        if c.tokens_per_s > 0:
            assert c.cost_per_mtok_usd == pytest.approx(2.0 / (c.tokens_per_s * 3600) * 1e6)


def test_quality_proxy_uses_format_delta_and_lists_benchmarks():
    from advisor.catalog.loader import get_catalog
    from advisor.recommend.quality import quality_score

    cat = get_catalog()
    task = cat.task("summarization")
    scored = [m for m in cat.models.values() if quality_score(m, task, "bf16", cat).score is not None]
    assert scored
    m = scored[0]
    bf16 = quality_score(m, task, "bf16", cat)
    int4 = quality_score(m, task, "int4", cat)
    assert bf16.used and bf16.coverage >= task.quality_proxy.min_coverage
    assert int4.score == pytest.approx(bf16.score + cat.formats["int4"].quality_delta_points
                                       * task.quality_proxy.format_delta_scale)


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_json_markdown_plot(tmp_path):
    md, png = tmp_path / "r.md", tmp_path / "p.png"
    r = run_advisor("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe", "--no-mlflow",
                    "--json", "--markdown", str(md), "--plot", str(png))
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["targets"][0]["verdict"]
    assert {"candidates", "generation", "shape", "constraints"} <= set(doc)
    assert md.read_text().startswith("# model-advisor: summarization")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_no_candidate_exits_1_and_bad_args_exit_2():
    r = run_advisor("recommend", "--task", "summarization", "--target", "t4-16gb", "--no-probe", "--no-mlflow",
                    "--max-latency-ms", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "Closest misses" in r.stdout
    for args, needle in ((("--task", "sumarization"), "did you mean"),
                         (("--task", "chat", "--target", "a10"), "unknown target"),
                         (("--task", "chat", "--max-params", "lots"), "--max-params"),
                         (("--task", "chat", "--max-latency-ms", "-1"), "max-latency-ms")):
        r = run_advisor("recommend", *args, "--no-probe", "--no-mlflow")
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr


def test_cli_config_file_with_line_numbers(tmp_path):
    cfg = tmp_path / "advisor.yaml"
    cfg.write_text("task: chat\ntargets: [a10g-24gb]\nmax_latency_ms: -5\n")
    r = run_advisor("recommend", "--config", str(cfg), "--no-probe", "--no-mlflow")
    assert r.returncode == 2 and "advisor.yaml:3" in r.stderr and "max_latency_ms" in r.stderr
    cfg.write_text("task: chat\ntargets: [a10g-24gb]\nmax_latency_ms: 60000\nlicense: [apache-2.0]\n")
    r = run_advisor("recommend", "--config", str(cfg), "--no-probe", "--no-mlflow", "--json")
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["constraints"]["license"] == ["apache-2.0"] and doc["task"] == "chat"


def test_cli_user_catalog_only():
    r = run_advisor("recommend", "--task", "test-task", "--catalog", str(FIXTURES / "catalog" / "good.yaml"),
                    "--user-models-only", "--target", "a10g-24gb", "--no-probe", "--no-mlflow", "--json")
    assert r.returncode in (0, 1), r.stderr
    models = {c["model"] for c in json.loads(r.stdout)["candidates"]}
    assert models == {"tiny-llama-test", "gpt2-test"}


def test_deeply_nested_config_is_a_clean_error(tmp_path):
    """Same failure the fuzzer found in policy files: rendering the validation error recursed."""
    from advisor.errors import CatalogError
    from advisor.recommend.config import load_config

    deep = "[" * 900 + "x" + "]" * 900
    (tmp_path / "c.yaml").write_text(f"task: chat\nlicense: {deep}\n")
    with pytest.raises(CatalogError, match="nested too deeply"):
        load_config(tmp_path / "c.yaml")


def test_report_saved_without_mlflow_gets_its_plot_when_logged_later(tmp_path):
    """--no-mlflow skips rendering the plot (a second of start-up); `advisor log` renders it before sending."""
    reports = tmp_path / "reports"
    env = {"ADVISOR_REPORTS_DIR": str(reports)}
    r = run_advisor("recommend", "--task", "chat", "--target", "a10g-24gb", "--no-probe", "--no-mlflow", env=env)
    assert r.returncode in (0, 1), r.stderr
    [folder] = [p for p in reports.iterdir() if p.is_dir()]
    assert not (folder / "pareto.png").exists()
    uri = f"sqlite:///{tmp_path / 'later.db'}"
    r = run_advisor("log", str(folder), "--tracking-uri", uri, env=env)
    assert r.returncode == 0, r.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("model-advisor").experiment_id])
    assert "pareto.png" in {a.path for a in client.list_artifacts(run.info.run_id)}

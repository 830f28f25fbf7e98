"""Issue 18, MLflow: a recommendation run that explains itself, read back with MlflowClient from a
real sqlite store. The recommendations are real ones (named targets, spec figures, no probes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from advisor.recommend.schema import Recommendation

NAMED = ["a10g-24gb", "l4-24gb"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating MLflow's tables costs seconds)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'presentation.db'}"
    return uri, MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def logged(store, tmp_path_factory):
    """A real two-target recommendation (named targets), logged as one run."""
    from advisor.recommend.engine import recommend
    from advisor.tracking.api import record

    uri, client = store
    with pytest.MonkeyPatch.context() as mp:   # module scope runs before conftest's per-test isolation
        mp.setenv("ADVISOR_REPORTS_DIR", str(tmp_path_factory.mktemp("reports")))
        mp.setenv("ADVISOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("ADVISOR_RUN_CONTEXT", "0")
        rec = recommend("summarization", targets=NAMED, probe=False)
        res = record("recommendation", rec, send=True, tracking_uri=uri, experiment="presentation")
    assert res.ok, res.message()
    return rec, client.get_run(res.run_id), res


def test_the_run_says_where_its_numbers_come_from(logged):
    rec, run, _ = logged
    tags, params, pick = run.data.tags, run.data.params, rec.primary.pick
    assert tags["advisor.pick.latency_basis"] == pick.latency_basis == "spec"
    assert tags["advisor.pick.memory_basis"] == pick.memory_basis == "spec"
    assert tags["advisor.runtime"] == params["runtime"] == rec.runtime == rec.primary.runtime == "vllm"
    assert tags["advisor.probing"] == params["probing"] and "named target" in params["probing"]
    assert tags["advisor.catalog_version"] == params["catalog_version"] == rec.catalog_version
    note = tags["mlflow.note.content"]          # the run page's description
    assert rec.primary.verdict in note and "**spec**: datasheet peaks" in note
    assert "runtime modelled: vllm" in note and f"catalog {rec.catalog_version}" in note
    from advisor.rules.table import gb, secs  # the figures as the terminal table and the verdict write them

    assert f"**{pick.model}:{pick.format}**, p95 {secs(pick.e2e_p95_ms)} (spec), {gb(pick.memory_bytes)} (spec)" in note


def test_the_run_name_is_short_and_starts_with_the_pick(logged, store):
    rec, run, _ = logged
    pick = rec.primary.pick
    assert run.info.run_name == f"{pick.model} {pick.format} (summarization, a10g-24gb +1)"
    assert "@" not in run.info.run_name and len(run.info.run_name) <= 60
    exp = store[1].get_experiment(run.info.experiment_id)
    assert "one run per `advisor recommend`" in exp.tags["mlflow.note.content"]   # the experiment's description


def test_metrics_are_rounded_named_as_proxies_and_spec_has_no_fake_spread(logged):
    rec, run, _ = logged
    m, pick = run.data.metrics, rec.primary.pick
    assert m["e2e_p95_ms"] == round(pick.e2e_p95_ms, 1) and m["ttft_ms"] == round(pick.ttft_ms, 1)
    assert m["memory_gb"] == round(pick.memory_bytes / 1e9, 2) and m["tokens_per_s"] == round(pick.tokens_per_s, 2)
    for name, value in m.items():
        assert value == float(f"{value:.6g}"), (name, value)      # no 18114.740933307316
    assert m["quality_proxy"] == round(pick.quality_proxy, 1) and "quality" not in m
    assert m["quality_proxy_upper"] == round(pick.quality_proxy_upper, 1) and "quality_band_points" in m
    # a spec figure is one estimate: logged once, and the run says there is no spread
    assert "e2e_p50_ms" not in m and "a10g-24gb/e2e_p50_ms" not in m
    assert "no p50/p95 spread" in run.data.tags["advisor.pick.latency_spread"]


def test_every_target_names_its_pick(logged):
    rec, run, _ = logged
    tags, m = run.data.tags, run.data.metrics
    for t in rec.targets:
        assert tags[f"advisor.{t.target}.pick"] == f"{t.pick.model}:{t.pick.format}"
        assert tags[f"advisor.{t.target}.status"] == "ok" and tags[f"advisor.{t.target}.devices"] == t.device_summary
        assert m[f"{t.target}/e2e_p95_ms"] == round(t.pick.e2e_p95_ms, 1)


def test_named_target_run_keeps_the_host_and_the_target_apart(logged):
    rec, run, _ = logged
    from advisor.hardware.profile import detect_profile

    tags, here = run.data.tags, detect_profile(include_torch=False)
    assert tags["advisor.gpu.count"] == str(here.gpu_count)          # the machine the advisor ran on
    assert tags["advisor.target.kind"] == "named target (catalog datasheet figures)"
    assert tags["advisor.target.devices"] == "1 x NVIDIA A10G (24 GB)"
    scope = tags["advisor.hardware.scope"]
    assert "machine the advisor ran on, not the named target" in scope and "1 x NVIDIA L4 (24 GB)" in scope


def test_candidates_table_has_status_reason_pick_and_rank_order(logged, store, tmp_path):
    rec, run, _ = logged
    from advisor.recommend.select import table_key

    client = store[1]
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "candidates.json", str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert len(rows) == len(rec.candidates)
    for target in NAMED:
        mine = [r for r in rows if r["target"] == target]
        assert [r["rank"] for r in mine] == list(range(1, len(mine) + 1))
        want = sorted((c for c in rec.candidates if c.target == target), key=table_key)
        assert [r["key"] for r in mine] == [c.key for c in want]
        assert mine[0]["pick"].startswith("pick") and mine[0]["key"] == next(
            t.pick.key for t in rec.targets if t.target == target)
    never = [r for r in rows if r["status"] == "not-estimated"]
    assert never, "summarization's 1152 tokens exceed gpt2's context: some rows are never estimated"
    for r in never:   # empty, not 0: sorting by latency must not put them first at 0 ms
        assert r["memory_gb"] is None and r["e2e_p95_ms"] is None and r["ttft_ms"] is None
        assert "context" in r["reason"] and r["rank"] > max(x["rank"] for x in rows
                                                             if x["target"] == r["target"]
                                                             and x["status"] != "not-estimated")
    assert {r["status"] for r in rows} == {"pass", "rejected", "not-estimated"}
    rejected = next(r for r in rows if r["status"] == "rejected")
    assert rejected["reason"] and rejected["e2e_p95_ms"] is not None

    # recommendation.json: the same order, status and pick labels
    doc = json.loads(Path(client.download_artifacts(run.info.run_id, "recommendation.json", str(tmp_path))).read_text())
    assert [c["key"] for c in doc["candidates"]] == [r["key"] for r in rows]
    assert [c["status"] for c in doc["candidates"]] == [r["status"] for r in rows]
    first = doc["candidates"][0]
    assert first["rank"] == 1 and first["role"].startswith("pick")
    assert doc["targets"][0]["pick"]["role"] == first["role"] and doc["targets"][0]["pick"]["rank"] == 1
    assert all(c["memory_bytes"] is None for c in doc["candidates"] if c["status"] == "not-estimated")


def test_a_measured_pick_logs_its_spread(store, tmp_path, monkeypatch):
    """What is known is logged: a measured figure has a p50 and a p95, and both are logged."""
    from advisor.recommend.engine import recommend
    from advisor.tracking.api import record

    rec = recommend("summarization", targets=["a10g-24gb"], probe=False)
    pick = rec.primary.pick.model_copy(update={"latency_basis": "measured", "e2e_p50_ms": 12000.04,
                                               "e2e_p95_ms": 13500.06})
    rec = rec.model_copy(update={"targets": [rec.primary.model_copy(update={"pick": pick})]})
    res = record("recommendation", rec, send=True, tracking_uri=store[0], experiment="presentation-measured")
    run = store[1].get_run(res.run_id)
    assert run.data.metrics["e2e_p50_ms"] == 12000.0 and run.data.metrics["e2e_p95_ms"] == 13500.1
    assert run.data.tags["advisor.pick.latency_spread"] == "measured: p50 12000 ms, p95 13500.1 ms"


def test_the_fingerprint_is_the_same_with_and_without_torch(monkeypatch):
    """One machine, two venvs (with torch and without): one fingerprint, so `compare` shows one box."""
    from advisor.hardware import profile, torch_info

    profile.clear_cache()
    with_torch = profile.detect_profile(include_torch=False)
    monkeypatch.setattr(torch_info, "torch_installed", lambda: False)
    profile.clear_cache()
    without = profile.detect_profile(include_torch=False)
    profile.clear_cache()
    assert without.torch is not None and not without.torch.installed and with_torch.torch.installed
    assert without.fingerprint == with_torch.fingerprint


# --- the Pareto plot ---------------------------------------------------------------------------


def _pareto_axes(rec: Recommendation, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advisor.recommend import plot

    made = []
    real_savefig = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        made.append(fig)
        return real_savefig(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", keep)
        mp.setattr(plt, "close", lambda *a, **k: None)
        png = plot.pareto_png(rec, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [fig] = made
    return fig.axes


def _pick_points(ax):
    """(label, x, y) of the pick's star in one panel."""
    out = []
    for coll in ax.collections:
        if str(coll.get_label()).startswith("pick:"):
            (x, y), = coll.get_offsets()
            out.append((coll.get_label(), float(x), float(y)))
    return out


def test_the_plot_has_one_panel_per_target_each_with_its_pick(logged, tmp_path):
    rec, _, _ = logged
    axes = _pareto_axes(rec, tmp_path)
    assert [ax.get_title().split("\n")[0] for ax in axes] == [f"summarization on {t.target_name} ({t.device_summary})"
                                                             for t in rec.targets]
    for ax, t in zip(axes, rec.targets):
        [(label, x, y)] = _pick_points(ax)
        assert label == f"pick: {t.pick.model} ({t.pick.format})"
        assert math.isclose(x, t.pick.e2e_p95_ms / 1000) and math.isclose(y, t.pick.quality_proxy)


def test_an_unscored_pick_is_drawn_on_the_unscored_strip(tmp_path):
    from advisor.recommend.engine import recommend

    rec = recommend("summarization", targets=["a10g-24gb"], probe=False, allow_unscored=True,
                    formats=["bf16"], max_params=4e8)    # smollm2-135m/360m: no published scores
    pick = rec.primary.pick
    assert pick is not None and pick.quality_proxy is None, "the fixture needs an unscored pick"
    [ax] = _pareto_axes(rec, tmp_path)
    [(label, x, y)] = _pick_points(ax)
    assert label == f"pick: {pick.model} ({pick.format}, unscored)" and math.isclose(x, pick.e2e_p95_ms / 1000)
    scored = [c.quality_proxy for c in rec.candidates if c.quality_proxy is not None and c.e2e_p95_ms]
    assert y < min(scored, default=50.0)                  # below every scored candidate
    assert "unscored" in [t.get_text() for t in ax.get_yticklabels()] and "unscored" in ax.get_title()

"""Verdict scenarios on a fixture catalog (tests/fixtures/recommend/verdicts.yaml): who may be picked, what
the verdict weighs the pick against, what 'to relax' proposes, and that quoted figures are the table's."""

from __future__ import annotations

import json

from advisor.recommend.engine import recommend
from tests.conftest import FIXTURES, run_advisor

CAT = str(FIXTURES / "recommend" / "verdicts.yaml")


def _rec(**kw):
    # bf16 only: the scenarios are about who is chosen, not about which community formats a runtime adds
    kw.setdefault("formats", ["bf16"])
    return recommend("v-task", targets=["v-gpu-24gb"], catalog_paths=[CAT], user_models_only=True, probe=False, **kw)


def _budget_between(rec, lo_model, hi_model):
    """A latency budget that lo_model's fastest format meets and hi_model's fastest does not."""
    fast = {m: min(c.e2e_p95_ms for c in rec.candidates if c.model == m) for m in (lo_model, hi_model)}
    assert fast[lo_model] < fast[hi_model]
    return (fast[lo_model] + fast[hi_model]) / 2


def test_licence_filter_any_spelling_and_the_closest_admissible_large():
    rec = _rec(license=["Apache-2.0"])
    t = rec.primary
    assert t.pick is not None and t.pick.license == "apache-2.0"
    assert all(c.license == "apache-2.0" for c in rec.candidates if c.passed)
    # the best large model overall is licensed out; the verdict weighs the pick against the admissible one
    assert t.closest_large is not None and t.closest_large.model == "v-large-slow"
    assert "v-large-licensed" not in t.verdict and "v-large-slow" in t.verdict
    row = next(c for c in rec.candidates if c.key == t.closest_large.key)
    assert "; ".join(row.reasons) in t.verdict            # the same figures as its table row


def test_an_unscored_model_is_never_the_pick_unless_allowed():
    loose = _rec()
    budget = _budget_between(loose, "v-unscored", "v-small")
    rec = _rec(max_latency_ms=budget)
    t = rec.primary
    assert [c.model for c in rec.candidates if c.passed] and \
        {c.model for c in rec.candidates if c.passed} == {"v-unscored"}
    assert t.pick is None and t.status == "no-candidate" and t.unscored_passing >= 1
    assert all(c.quality_proxy is not None for c in t.closest_misses)
    allowed = _rec(max_latency_ms=budget, allow_unscored=True)
    assert allowed.primary.pick is not None and allowed.primary.pick.model == "v-unscored"


def test_to_relax_never_undoes_a_filter_the_user_set():
    loose = _rec()
    fastest = min(c.e2e_p95_ms for c in loose.candidates)
    rec = _rec(license=["apache-2.0"], max_latency_ms=fastest / 2)
    t = rec.primary
    assert t.pick is None
    assert t.closest_misses and all(c.license == "apache-2.0" for c in t.closest_misses)
    assert t.to_relax and not any("licen" in tip for tip in t.to_relax)
    assert any("--max-latency-ms" in tip for tip in t.to_relax)


def test_suggested_max_new_tokens_is_the_length_the_latency_is_for():
    rec = _rec()
    assert rec.shape.new_tokens == 64
    assert rec.generation.max_new_tokens == 64 and "512" in rec.generation.rationale


def test_the_table_shows_the_row_the_verdict_quotes():
    r = run_advisor("recommend", "--task", "v-task", "--catalog", CAT, "--user-models-only", "--target", "v-gpu-24gb",
                    "--license", "apache 2.0", "--formats", "bf16", "--no-probe", "--no-mlflow", env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    table, verdict = r.stdout.split("verdict", 1)
    assert "v-large-slow" in verdict and "v-large-slow" in table
    j = run_advisor("recommend", "--task", "v-task", "--catalog", CAT, "--user-models-only", "--target", "v-gpu-24gb",
                    "--license", "apache 2.0", "--formats", "bf16", "--no-probe", "--no-mlflow", "--json")
    assert json.loads(j.stdout)["targets"][0]["closest_large"]["model"] == "v-large-slow"

"""The task quality proxy on hand-built catalogs: positions by hand, core benchmarks, no gain from a
missing score (a property test), variants never mixed, LLM-judged scores compared within one source."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.catalog.loader import Catalog
from advisor.catalog.schema import BenchmarkSpec, FormatSpec, ModelEntry, TaskProfile
from advisor.recommend.quality import quality_score

ARCH = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 100}
SRC = "https://example.org/report"


def model(mid, scores, variant="instruct", source=SRC):
    return ModelEntry(id=mid, name=mid, family="t", params_total=10**9, params_source=SRC, architecture=ARCH,
                      architecture_source=SRC, license="mit", license_source=SRC,
                      benchmarks=[{"name": n, "value": v, "variant": variant, "source": source,
                                   **({"scale": 10} if n == "judge" else {})} for n, v in scores.items()])


def task(weights, core=(), min_coverage=0.0):
    return TaskProfile(id="t", description="d", prompt_tokens=10, new_tokens=10, latency_budget_ms=1000,
                       quality_proxy={"description": "PROXY", "weights": weights, "core": list(core),
                                      "min_coverage": min_coverage},
                       generation={"temperature": 0, "top_p": 1, "max_new_tokens": 10, "rationale": "r"})


def catalog(models, formats=()):
    bench = {n: BenchmarkSpec(id=n, name=n, measures="m", source=SRC,
                              higher_is_better=n != "halluc", llm_judged=n == "judge", scale=10 if n == "judge" else 100)
             for n in ("a", "b", "c", "halluc", "judge")}
    fmts = {f.id: f for f in [FormatSpec(id="bf16", bytes_per_param=2),
                              FormatSpec(id="int4", bytes_per_param=0.5, quality_delta_points=-2.0), *formats]}
    return Catalog(models={m.id: m for m in models}, benchmarks=bench, formats=fmts)


def test_positions_by_hand():
    # a ranges 40..80, b 10..50: m2 sits at (60-40)/40 = 50 on a and (50-10)/40 = 100 on b
    ms = [model("m1", {"a": 40, "b": 10}), model("m2", {"a": 60, "b": 50}), model("m3", {"a": 80, "b": 30})]
    cat = catalog(ms)
    t = task({"a": 0.75, "b": 0.25})
    q = quality_score(ms[1], t, "bf16", cat)
    assert q.score == pytest.approx(0.75 * 50 + 0.25 * 100)       # 62.5
    assert q.upper == pytest.approx(q.score) and q.coverage == 1.0
    assert quality_score(ms[0], t, "bf16", cat).score == pytest.approx(0.0)
    assert quality_score(ms[2], t, "bf16", cat).score == pytest.approx(0.75 * 100 + 0.25 * 50)


def test_lower_is_better_is_turned_round():
    ms = [model("good", {"halluc": 2}), model("mid", {"halluc": 5}), model("bad", {"halluc": 8})]
    cat = catalog(ms)
    t = task({"halluc": 1.0})
    assert [quality_score(m, t, "bf16", cat).score for m in ms] == pytest.approx([100.0, 50.0, 0.0])


def test_a_missing_core_benchmark_unscores_the_model():
    ms = [model("m1", {"a": 40, "b": 10}), model("m2", {"a": 60}), model("m3", {"a": 80, "b": 30}),
          model("m4", {"a": 50, "b": 20})]
    cat = catalog(ms)
    q = quality_score(ms[1], task({"a": 0.5, "b": 0.5}, core=["b"]), "bf16", cat)
    assert q.score is None and "core benchmark(s) b" in q.reason


def test_a_missing_non_core_score_counts_as_the_lowest_and_widens_the_band():
    ms = [model("m1", {"a": 40, "b": 10}), model("m2", {"a": 80}), model("m3", {"a": 60, "b": 30}),
          model("m4", {"a": 50, "b": 20})]
    cat = catalog(ms)
    q = quality_score(ms[1], task({"a": 0.6, "b": 0.4}), "bf16", cat)
    assert q.score == pytest.approx(0.6 * 100)                # b imputed at position 0
    assert q.upper == pytest.approx(0.6 * 100 + 0.4 * 100)    # b at the best would add 40
    assert q.coverage == pytest.approx(0.6) and "b" in q.missing


def test_base_scores_never_stand_in_for_instruct():
    ms = [model("i1", {"a": 40}), model("i2", {"a": 60}), model("i3", {"a": 80}),
          model("base-only", {"a": 99}, variant="base")]
    cat = catalog(ms)
    q = quality_score(ms[3], task({"a": 1.0}, core=["a"]), "bf16", cat)
    assert q.score is None and "instruct" in q.reason


def test_llm_judged_scores_compare_only_within_one_source():
    other = "https://example.org/another-report"
    ms = [model("x1", {"judge": 6.0}), model("x2", {"judge": 7.0}), model("x3", {"judge": 8.0}),
          model("y1", {"judge": 9.5}, source=other)]          # alone in its source: no comparison set
    cat = catalog(ms)
    t = task({"judge": 1.0})
    assert quality_score(ms[1], t, "bf16", cat).score == pytest.approx(50.0)
    lone = quality_score(ms[3], t, "bf16", cat)
    assert lone.score is None and "fewer than 3 comparable" in lone.missing[0]


def test_format_loss_moves_the_proxy_by_its_scale():
    # int4 loses 2 benchmark points; the task converts at 2.5 position points per point -> -5
    ms = [model("m1", {"a": 40}), model("m2", {"a": 60}), model("m3", {"a": 80})]
    cat = catalog(ms)
    t = task({"a": 1.0})
    assert quality_score(ms[1], t, "int4", cat).score == pytest.approx(50.0 - 5.0)
    assert quality_score(ms[1], t, "int4", cat).base_score == pytest.approx(50.0)


scores = st.floats(min_value=0, max_value=100, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(peers=st.lists(st.tuples(scores, scores), min_size=3, max_size=6), mine=scores, added=scores,
       wa=st.floats(0.1, 1.0), wb=st.floats(0.1, 1.0), core_b=st.booleans(), fmt=st.sampled_from(["bf16", "int4"]))
def test_a_model_never_gains_by_lacking_a_score(peers, mine, added, wa, wb, core_b, fmt):
    """Adding any score for a benchmark the model lacks never makes it better off than lacking it."""
    others = [model(f"p{i}", {"a": a, "b": b}) for i, (a, b) in enumerate(peers)]
    lacking = model("m", {"a": mine})
    having = model("m", {"a": mine, "b": added})
    t = task({"a": wa, "b": wb}, core=["b"] if core_b else [])
    without = quality_score(lacking, t, fmt, catalog(others + [lacking]))
    with_it = quality_score(having, t, fmt, catalog(others + [having]))
    assert with_it.score is not None
    if core_b:
        assert without.score is None          # unscored: never picked, never promoted
    else:
        assert with_it.score >= without.score - 1e-9

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
                              higher_is_better=n != "halluc", llm_judged=n == "judge",
                              scale=10 if n == "judge" else 100)
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


# --- the arithmetic and the labels, pinned (what a mutation of quality.py would change) ----------

from advisor.recommend.quality import MIN_JUDGED_PEERS, MIN_PEERS, Peers, chosen_score  # noqa: E402


def test_weights_that_do_not_sum_to_one_are_normalised_by_their_total():
    ms = [model("m1", {"a": 40, "b": 10}), model("m2", {"a": 60, "b": 50}), model("m3", {"a": 80, "b": 30})]
    cat = catalog(ms)
    t = task({"a": 3.0, "b": 1.0})                         # total 4
    q = quality_score(ms[1], t, "bf16", cat)
    assert q.score == pytest.approx((3 * 50 + 1 * 100) / 4)
    assert q.base_score == pytest.approx(q.score) and q.format_delta == 0.0
    q4 = quality_score(ms[1], t, "int4", cat)               # -2 points x 2.5 per point, whatever the total
    assert q4.score == pytest.approx(q.score - 5.0) and q4.upper == pytest.approx(q.score - 5.0)
    assert q4.base_score == pytest.approx(q.score) and q4.format_delta == -2.0
    unknown_fmt = quality_score(ms[1], t, "q9_z", cat)       # a format the catalog does not list: no delta
    assert unknown_fmt.score == pytest.approx(q.score) and unknown_fmt.format_delta == 0.0


def test_two_models_make_a_comparison_set_and_three_an_llm_judged_one():
    assert (MIN_PEERS, MIN_JUDGED_PEERS) == (2, 3)
    two = [model("lo", {"a": 40}), model("hi", {"a": 80})]
    assert quality_score(two[1], task({"a": 1.0}), "bf16", catalog(two)).score == pytest.approx(100.0)
    judged = [model("x1", {"judge": 6.0}), model("x2", {"judge": 8.0})]
    lone = quality_score(judged[1], task({"judge": 1.0}), "bf16", catalog(judged))
    assert lone.score is None and lone.missing == ["judge (fewer than 3 comparable scores)"]


def test_equal_scores_sit_in_the_middle_and_the_span_is_the_range():
    assert Peers(70.0, 70.0, 3).position(70.0, True) == 50.0
    assert Peers(70.0, 70.0, 3).position(70.0, False) == 50.0
    assert Peers(40.0, 80.0, 3).span == 40.0
    assert Peers(40.0, 80.0, 3).position(50.0, True) == pytest.approx(25.0)
    assert Peers(40.0, 80.0, 3).position(50.0, False) == pytest.approx(75.0)


def test_the_developers_own_score_comes_before_a_third_partys():
    m = ModelEntry(id="m", name="m", family="t", params_total=10**9, params_source=SRC, architecture=ARCH,
                   architecture_source=SRC, license="mit", license_source=SRC, benchmarks=[
                       {"name": "a", "value": 10, "variant": "instruct", "evaluator": "someone-else", "source": SRC},
                       {"name": "a", "value": 20, "variant": "instruct", "source": SRC},
                       {"name": "a", "value": 30, "variant": "base", "source": SRC}])
    assert chosen_score(m, "a", "instruct").value == 20
    assert chosen_score(m, "a", "base").value == 30
    assert chosen_score(m, "b", "instruct") is None
    third_only = m.model_copy(update={"benchmarks": m.benchmarks[:1]})
    assert chosen_score(third_only, "a", "instruct").value == 10


def test_the_scores_used_are_listed_with_shots_evaluator_scale_and_position():
    ms = [model("m1", {"a": 40, "judge": 6.0}), model("m2", {"a": 60, "judge": 7.0}),
          model("m3", {"a": 80, "judge": 8.0})]
    third = ms[1].model_copy(update={"benchmarks": [
        ms[1].benchmarks[0].model_copy(update={"shots": 5, "evaluator": "qwen3-report"}), ms[1].benchmarks[1]]})
    cat = catalog([ms[0], third, ms[2]])
    q = quality_score(third, task({"a": 1.0, "judge": 1.0}), "bf16", cat)
    assert q.used == ["a=60 (instruct, 5-shot, by qwen3-report; position 50)", "judge=7/10 (instruct; position 50)"]
    assert q.label == "50.0" and q.variant == "instruct" and q.proxy
    assert quality_score(model("alone", {}), task({"a": 1.0}), "bf16", cat).label == "unscored"


def test_coverage_at_the_minimum_is_enough_and_just_below_is_not():
    ms = [model("m1", {"a": 40, "b": 10}), model("m2", {"a": 60}), model("m3", {"a": 80, "b": 30})]
    cat = catalog(ms)
    at = quality_score(ms[1], task({"a": 1.0, "b": 1.0}, min_coverage=0.5), "bf16", cat)
    assert at.score == pytest.approx(25.0) and at.coverage == pytest.approx(0.5)
    below = quality_score(ms[1], task({"a": 1.0, "b": 1.0001}, min_coverage=0.5), "bf16", cat)
    assert below.score is None and "cover 50% of the task's weight (minimum 50%)" in below.reason
    none = quality_score(model("x", {"c": 1}), task({"a": 1.0}, min_coverage=0.0), "bf16", cat)
    assert none.score is None                                # no real score at all is never scored


def test_a_core_benchmark_without_a_comparison_set_unscores_the_model():
    judged = [model("x1", {"judge": 6.0, "a": 40}), model("x2", {"judge": 8.0, "a": 80})]
    q = quality_score(judged[1], task({"judge": 1.0, "a": 1.0}, core=["judge"]), "bf16", catalog(judged))
    assert q.score is None and q.reason == "no comparable instruct score for core benchmark(s) judge"
    # a non-core benchmark of the same name prefix is not mistaken for the core one
    near = quality_score(judged[1], task({"judge": 1.0, "a": 1.0}, core=["a"]), "bf16", catalog(judged))
    assert near.score == pytest.approx(50.0)


def test_without_a_catalog_there_is_nothing_to_compare_with():
    m = model("m", {"a": 60})
    q = quality_score(m, task({"a": 1.0}), "bf16")
    assert q.score is None and q.missing == ["a (fewer than 2 comparable scores)"]


def test_a_benchmark_outside_the_vocabulary_counts_higher_as_better():
    ms = [model("m1", {"zz": 40}), model("m2", {"zz": 80})]
    cat = catalog(ms)
    assert quality_score(ms[1], task({"zz": 1.0}), "bf16", cat).score == pytest.approx(100.0)


def test_a_format_loss_never_takes_the_proxy_below_zero():
    ms = [model("m1", {"a": 40}), model("m2", {"a": 60}), model("m3", {"a": 80})]
    cat = catalog(ms)
    assert quality_score(ms[0], task({"a": 1.0}), "bf16", cat).score == 0.0
    lowest_int4 = quality_score(ms[0], task({"a": 1.0}), "int4", cat)
    assert lowest_int4.score == 0.0 and lowest_int4.upper == 0.0                   # not -5, either of them
    assert quality_score(ms[1], task({"a": 1.0}), "int4", cat).score == pytest.approx(45.0)

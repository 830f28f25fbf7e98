"""The capacity search and plan (advisor/capacity/search.py, plan.py, vllm_cmd.py) and its properties on
real catalog models: doubling the rate never lowers a replica count, a 70B never needs fewer GPUs than
an 8B of the same format."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.capacity.plan import Load, Pricing, _cost, plan_candidate
from advisor.capacity.search import SLO, max_clients, max_rate
from advisor.capacity.simulate import Replica
from advisor.capacity.vllm_cmd import layout_text, model_argument, replica_commands


def toy(step=10.0, **kw) -> Replica:
    args = dict(prompt=100, new=10, max_seqs=64, prefill="mixed")
    args.update(kw)
    return Replica(lambda n, ctx: step + 0.5 * n, lambda k, p: 20.0 + 30.0 * k, lambda p: 30.0, **args)


# --- the search ---------------------------------------------------------------------------------------------

def test_an_slo_one_request_alone_breaks_means_no_load_at_all():
    # a lone request's TPOT is 10.5 ms (10 + 0.5 x 1): a 10 ms limit admits no load
    lim = max_rate(toy(), SLO(tpot_ms=10.0))
    assert lim.load == 0 and lim.bound == "slo-tpot" and "one request alone" in lim.detail


def test_without_a_binding_slo_the_replica_is_full_at_its_saturation_rate():
    # the KV pool holds 4 requests of 110 tokens, below max_seqs 64: full at its saturation throughput
    lim = max_rate(toy(kv_tokens=4 * 110), SLO(e2e_ms=1e9))
    assert lim.bound == "kv-pool" and lim.load == pytest.approx(lim.saturation_rps)
    assert lim.at_load is not None and lim.at_load.mean_running <= 4 + 1e-9


def test_the_highest_rate_meets_the_slo_and_a_little_more_breaks_it():
    slo = SLO(tpot_ms=25.0)
    lim = max_rate(toy(), slo)
    assert lim.bound == "slo-tpot" and 0 < lim.load < lim.saturation_rps
    assert slo.met(lim.at_load) and not slo.met(lim.above)
    assert lim.at_load.tpot_ms.p95 <= 25.0 < lim.above.tpot_ms.p95
    assert lim.above is not None


def test_closed_loop_clients_stop_where_the_slo_breaks():
    slo = SLO(tpot_ms=25.0)
    lim = max_clients(toy(), slo)
    assert lim.kind == "clients" and lim.load >= 1
    assert slo.met(lim.at_load) and not slo.met(lim.above)


# --- the plan -----------------------------------------------------------------------------------------------

class Spec:  # what plan_candidate needs of a ReplicaSpec
    def __init__(self, rep, fits=True):
        self.replica, self.fits, self.reason = rep, fits, "" if fits else "does not fit"
        self.model = None

    memory_per_device = 1
    memory_available = 2


def test_replicas_gpus_and_cost_follow_from_the_rate(monkeypatch):
    import advisor.capacity.plan as plan

    monkeypatch.setattr(plan, "step_bound", lambda spec, n: "memory-bandwidth")
    rep = toy()
    slo = SLO(tpot_ms=25.0)
    per = max_rate(rep, slo).load
    cp = plan_candidate(lambda tp: Spec(rep), [1], Load(rps=3.5 * per), slo, Pricing(2.0))
    ch = cp.chosen
    assert ch.replicas == 4 and ch.gpus_total == 4 and ch.cost_per_hour_usd == pytest.approx(8.0)
    # USD per million generated tokens: 8 USD/h over 3.5 x per x 10 tokens/s
    assert ch.cost_per_mtok_usd == pytest.approx(8.0 / (3.5 * per * 10 * 3600) * 1e6)
    assert ch.at_load.tpot_ms.p95 <= 25.0


def test_a_layout_that_does_not_fit_is_kept_with_its_reason_and_an_unpriced_target_is_ranked_by_gpus(monkeypatch):
    import advisor.capacity.plan as plan

    monkeypatch.setattr(plan, "step_bound", lambda spec, n: "compute")
    cp = plan_candidate(lambda tp: Spec(toy(), fits=tp > 1), [1, 2], Load(rps=1.0), SLO(e2e_ms=5000), Pricing(None))
    assert [lp.tensor_parallel for lp in cp.layouts] == [1, 2]
    assert not cp.layouts[0].fits and cp.layouts[0].reason == "does not fit"
    assert cp.chosen.tensor_parallel == 2 and cp.chosen.cost_per_hour_usd is None and not cp.priced
    assert "no price" in cp.note


def test_instance_targets_are_paid_for_whole_instances():
    # 8-GPU instance at 55.04 USD/h: 3 replicas of TP 2 fit one instance (4 slots); 5 of TP 2 need two
    p = Pricing(6.88, instance_gpus=8, instance_per_hour=55.04)
    assert _cost(p, 3, 2) == (pytest.approx(55.04), 8, 1)
    assert _cost(p, 5, 2) == (pytest.approx(110.08), 16, 2)
    assert _cost(Pricing(1.861), 3, 2) == (pytest.approx(6 * 1.861), 6, None)


def test_load_needs_a_rate_or_clients():
    with pytest.raises(ValueError):
        Load()
    with pytest.raises(ValueError):
        Load(rps=1.0, concurrency=2)


# --- the vLLM command ---------------------------------------------------------------------------------------

def test_one_command_per_replica_on_its_own_gpus_and_port(catalog):
    entry = catalog.model("qwen2.5-14b")
    lines = replica_commands(entry, "fp8", tensor_parallel=2, replicas=5, gpus_per_node=8, max_model_len=768,
                             max_num_seqs=256)
    assert len(lines) == 5
    assert lines[0].startswith("# node 1: CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/Qwen2.5-14B-Instruct ")
    assert "CUDA_VISIBLE_DEVICES=6,7" in lines[3] and "--port 8003" in lines[3]
    assert lines[4].startswith("# node 2: CUDA_VISIBLE_DEVICES=0,1") and "--port 8000" in lines[4]
    assert "--tensor-parallel-size 2" in lines[0] and "--quantization fp8" in lines[0]
    assert "--max-model-len 768" in lines[0] and "--max-num-seqs 256" in lines[0]


def test_pre_quantised_formats_name_a_placeholder_not_an_invented_repo(catalog):
    model, flags, note = model_argument(catalog.model("qwen2.5-14b"), "awq")
    assert model == "<AWQ checkpoint of Qwen/Qwen2.5-14B-Instruct>" and flags == [] and "replace" in note
    assert model_argument(catalog.model("qwen2.5-14b"), "bf16")[1] == ["--dtype", "bfloat16"]
    assert layout_text("vllm", tensor_parallel=2, replicas=3, gpus_per_node=8, device_name="NVIDIA L40S") == \
        "vLLM with TP 2, 3 replicas behind a load balancer (6 x NVIDIA L40S on 1 node)"


@pytest.fixture(scope="module")
def catalog():
    from advisor.catalog.loader import get_catalog

    return get_catalog()


# --- properties on real models ------------------------------------------------------------------------------

def real_plan(catalog, model: str, fmt: str, target: str, rps: float, slo: SLO):
    from advisor.capacity.deploy import layouts_builder, pricing_for
    from advisor.estimate import device as devmod
    from advisor.estimate.parallel import valid_degrees

    hw = catalog.target(target)
    rt = catalog.runtimes["vllm"]
    entry = catalog.model(model)
    build = layouts_builder(entry, catalog.format(fmt), rt, devmod.from_target(hw), prompt=512, new=256,
                            headroom=0.10)
    return plan_candidate(build, valid_degrees(entry.arch, rt, hw.max_gpus), Load(rps=rps), slo,
                          pricing_for(hw, None))


SLOS = st.builds(SLO, ttft_ms=st.sampled_from([None, 1000.0, 3000.0]), tpot_ms=st.sampled_from([None, 40.0, 80.0]),
                 e2e_ms=st.sampled_from([10_000.0, 20_000.0, 40_000.0]))
TARGETS = st.sampled_from(["h100-sxm-80gb", "l40s-48gb", "a100-80gb"])
FORMATS = st.sampled_from(["bf16", "fp8", "awq"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rps=st.floats(0.5, 40.0), slo=SLOS, target=TARGETS, fmt=FORMATS)
def test_doubling_the_rate_never_lowers_the_replica_count(catalog, rps, slo, target, fmt):
    one = real_plan(catalog, "llama-3.1-8b", fmt, target, rps, slo)
    two = real_plan(catalog, "llama-3.1-8b", fmt, target, 2 * rps, slo)
    by_tp = {lp.tensor_parallel: lp for lp in two.layouts}
    for lp in one.layouts:
        other = by_tp.get(lp.tensor_parallel)
        if lp.replicas and other is not None and other.replicas:
            assert other.replicas >= lp.replicas
    if one.chosen is None:
        assert two.chosen is None           # what cannot serve R cannot serve 2R
    elif two.chosen is not None:
        assert two.chosen.gpus_total >= one.chosen.gpus_total
        assert two.chosen.cost_per_hour_usd >= one.chosen.cost_per_hour_usd


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rps=st.floats(0.5, 30.0), slo=SLOS, target=TARGETS, fmt=FORMATS)
def test_a_70b_never_needs_fewer_gpus_than_an_8b_of_the_same_format(catalog, rps, slo, target, fmt):
    small = real_plan(catalog, "llama-3.1-8b", fmt, target, rps, slo)
    large = real_plan(catalog, "llama-3.1-70b", fmt, target, rps, slo)
    if large.chosen is not None:
        assert small.chosen is not None, "the 8B must serve whatever the 70B serves"
        assert large.chosen.gpus_total >= small.chosen.gpus_total
        assert large.chosen.cost_per_hour_usd >= small.chosen.cost_per_hour_usd

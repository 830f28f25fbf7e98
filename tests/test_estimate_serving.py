"""Serving terms: scheduling under concurrency, tensor/layer parallel splits and their communication, engine
GEMMs and low-precision compute, each pinned on hand-derived numbers (round-number fixture runtimes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.catalog.loader import load_catalog
from advisor.errors import UsageError
from advisor.estimate import serving
from advisor.estimate.device import DeviceSpec, from_target
from advisor.estimate.latency import Model, latency_estimate, spec_rates, streamed_weight_bytes
from advisor.estimate.parallel import (
    Link,
    Split,
    allreduce_ms,
    communication_ms,
    kv_share,
    split_for,
    tensor_degree_ok,
    valid_degrees,
)
from tests.archs import big, tiny

FIX = Path(__file__).parent / "fixtures" / "estimate"


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX], include_builtin=False, include_env=False)
    assert not problems
    return catalog


# ---- scheduling (serving.py) with stand-in step and prefill functions ----

def step(batch, context):           # ms per decode step: 10 ms + 1 ms per sequence
    return 10.0 + batch


def prefill(batch, prompt):         # 100 ms per sequence's prefill
    return 100.0 * batch


def extra(prompt):                  # what a prefill adds to a running step (its compute)
    return 20.0


def test_static_batch_prefills_everything_first():
    s = serving.static(step, prefill, serving.Workload(batch=4, prompt=10, new=5), ttft_floor_ms=3)
    assert s.prefill_ms == 400 and s.step_ms == 14
    assert s.ttft_ms == 3 + 400
    assert s.e2e_ms == 403 + 4 * 14                       # four more steps after the first token
    assert s.tokens_per_s == pytest.approx(4 * 5 / (459 / 1e3))


def test_continuous_batching_adds_the_other_requests_prefills():
    w = serving.Workload(batch=4, prompt=10, new=5, mode="continuous")
    s = serving.continuous(step, prefill, w, ttft_floor_ms=3, extra=extra)
    # three other streams each need one prefill per 5 output tokens: 3 x 20 / 5 = 12 ms per token
    assert (s.step_ms, s.interference_ms, s.tpot_ms) == (14, 12, 26)
    assert s.ttft_ms == 3 + 0.5 * 14 + 100                # floor + half a step of waiting + its own prefill
    assert s.e2e_ms == s.ttft_ms + 4 * 26
    assert s.tokens_per_s == pytest.approx(4 * 5 / (s.e2e_ms / 1e3))
    # without an `extra` function the whole prefill interferes
    assert serving.continuous(step, prefill, w, ttft_floor_ms=3).interference_ms == 3 * 100 / 5


def test_one_stream_has_no_interference_or_wait():
    s = serving.continuous(step, prefill, serving.Workload(batch=1, prompt=10, new=5), ttft_floor_ms=0, extra=extra)
    assert (s.interference_ms, s.ttft_ms, s.tpot_ms) == (0, 100, 11)


def test_multi_step_scheduling_delays_the_first_token():
    w = serving.Workload(batch=4, prompt=10, new=5, mode="continuous", scheduler_steps=10)
    s = serving.continuous(step, prefill, w, ttft_floor_ms=0, extra=extra)
    assert s.ttft_ms == 0.5 * 14 + 4.5 * 14 + 100         # admitted every 10 steps: 4.5 steps on average


def test_open_loop_concurrency_follows_littles_law():
    # 2 requests/s; e2e(N) = 100 + 49 x (10 + N + (N - 1) x 20 / 50) ms plus the wait: N = 2/s x e2e(N)
    w = serving.Workload(batch=1, prompt=10, new=50, mode="open-loop", request_rate=2.0)
    s = serving.serve(step, prefill, w, ttft_floor_ms=0, max_concurrency=1e9, extra=extra)
    assert s.concurrency == pytest.approx(2.0 * s.e2e_ms / 1e3, rel=1e-3)
    assert 1.3 < s.concurrency < 1.5
    capped = serving.serve(step, prefill, w, ttft_floor_ms=0, max_concurrency=1.2, extra=extra)
    assert capped.concurrency == pytest.approx(1.2)              # the engine admits no more


def test_saturated_runs_at_the_engine_cap():
    w = serving.Workload(batch=1, prompt=10, new=5, mode="saturated")
    assert serving.serve(step, prefill, w, 0, max_concurrency=64, extra=extra).concurrency == 64


# ---- parallel splits ----

def test_tensor_degrees_divide_the_heads(cat):
    vllm, lcpp = cat.runtimes["vllm"], cat.runtimes["llama.cpp"]
    assert [n for n in range(1, 9) if tensor_degree_ok(tiny(), n)] == [1, 2, 4]   # 4 heads, 2 KV heads
    assert valid_degrees(big(), vllm, 8) == [1, 2, 4, 8]
    assert valid_degrees(big(), vllm, 6) == [1, 2, 4]
    assert valid_degrees(tiny(), lcpp, 8) == [1, 2]                # a layer split: at most one GPU per layer
    with pytest.raises(UsageError, match="divides its 4 attention heads") as err:
        split_for(tiny(), vllm, 3, max_gpus=8)
    assert "valid --gpus: 2, 4" in err.value.hint
    with pytest.raises(UsageError, match="exceeds the 4 GPU"):
        split_for(big(), vllm, 8, max_gpus=4)
    assert split_for(big(), vllm, 4, 8) == Split(4, "tensor")
    assert split_for(big(), lcpp, 3, 8) == Split(3, "layer")


def test_kv_heads_split_then_replicate():
    assert kv_share(big(), Split(4, "tensor")) == 4
    assert kv_share(big(), Split(16, "tensor")) == 8              # 8 KV heads: replicated beyond 8 ranks
    assert kv_share(big(), Split(2, "layer")) == 2


def test_allreduce_is_latency_plus_ring_traffic(cat):
    vllm = cat.runtimes["vllm"]
    nv = Link("nvlink", 400.0)                                    # 200 GB/s one way x link efficiency 0.5
    # 10 us + 2 x (2-1)/2 x 1 MB / 100 GB/s = 0.01 + 0.01 ms
    assert allreduce_ms(vllm, nv, 1e6, 2) == pytest.approx(0.02)
    assert allreduce_ms(vllm, nv, 1e6, 1) == 0
    assert allreduce_ms(vllm, Link("pcie", 64.0), 0, 4) == pytest.approx(0.05)   # the PCIe latency
    # per forward: 2 layers x 2 all-reduces of tokens x hidden x 2 bytes
    one = allreduce_ms(vllm, nv, 10 * 64 * 2, 2)
    assert communication_ms(tiny(), vllm, Split(2, "tensor"), nv, tokens=10) == pytest.approx(4 * one)


def test_layer_split_hands_the_hidden_state_on(cat):
    lcpp = cat.runtimes["llama.cpp"]
    link = Link("pcie", 64.0)                                     # 32 GB/s one way x 0.5 = 16 GB/s
    # two boundaries for 3 GPUs: each 100 us + 1 token x 64 x 2 bytes / 16 GB/s
    assert communication_ms(tiny(), lcpp, Split(3, "layer"), link, tokens=1) == pytest.approx(
        2 * (0.1 + 1e3 * 128 / 16e9))


# ---- engine GEMMs, low-precision compute, splits in the step ----

NODE = DeviceSpec(id="fx-node-80gb", name="fx node", kind="gpu", memory_bytes=80 * 10**9, count=8,
                  bandwidth_gbs=2000, peak_tflops={"fp32": 50, "bf16": 400, "fp16": 400, "fp8": 800},
                  link_kind="nvlink", link_gbs=400)


def test_fp8_runs_at_the_fp8_rate_only_where_the_gpu_has_it(cat):
    vllm, f = cat.runtimes["vllm"], cat.formats
    assert spec_rates(NODE, f["fp8"], vllm).tflops == pytest.approx(800 * 0.5)      # fp8 peak x fp8 efficiency
    assert spec_rates(NODE, f["bf16"], vllm).tflops == pytest.approx(400 * 0.25)
    ampere = DeviceSpec(id="a", name="a", kind="gpu", memory_bytes=10**10, count=1, bandwidth_gbs=1000,
                        peak_tflops={"fp16": 300, "bf16": 300})
    r = spec_rates(ampere, f["fp8"], vllm)
    assert (r.dtype, r.tflops) == ("fp16", pytest.approx(300 * 0.5))                # weight-only at 16 bit
    assert spec_rates(NODE, f["int4"], vllm).bandwidth_gbs == pytest.approx(2000 * 0.25)   # int4 kernel key


def test_engine_decode_adds_weight_streaming_and_math(cat):
    vllm, f = cat.runtimes["vllm"], cat.formats
    rates = spec_rates(NODE, f["bf16"], vllm)                     # 100 TFLOPS, 1000 GB/s, 1 ms per step
    m = Model(tiny(), f["bf16"], 276_096, 2, vllm, rates)
    t = m.decode_terms(8, 100)
    assert t["weights_ms"] == pytest.approx(1e3 * 276_096 / 1e12)
    assert t["kv_ms"] == pytest.approx(1e3 * 8 * 256 * 100 / 1e12)
    assert t["total_ms"] == pytest.approx(t["weights_ms"] + t["compute_ms"] + t["kv_ms"] + 1.0)


def test_tensor_parallel_step_divides_weights_and_adds_all_reduces(cat):
    vllm, f = cat.runtimes["vllm"], cat.formats
    rates = spec_rates(NODE, f["bf16"], vllm)
    w = 70_553_706_496 * 2
    one = Model(big(), f["bf16"], w, 2, vllm, rates).decode_terms(1, 1000)
    four = Model(big(), f["bf16"], w, 2, vllm, rates, Split(4, "tensor"), NODE.link).decode_terms(1, 1000)
    assert four["weights_ms"] == pytest.approx(one["weights_ms"] / 4)
    assert four["kv_ms"] == pytest.approx(one["kv_ms"] / 4)
    # 80 layers x 2 all-reduces of 8192 x 2 bytes over 4 ranks
    assert four["comm_ms"] == pytest.approx(160 * allreduce_ms(vllm, NODE.link, 8192 * 2, 4))


def test_layer_split_reads_every_layer_in_turn(cat):
    lcpp, f = cat.runtimes["llama.cpp"], cat.formats
    rates = spec_rates(NODE, f["fp16"], lcpp)
    one = Model(big(), f["fp16"], 10**11, 2, lcpp, rates).decode_terms(1, 100)
    two = Model(big(), f["fp16"], 10**11, 2, lcpp, rates, Split(2, "layer"), NODE.link).decode_terms(1, 100)
    assert two["weights_ms"] == one["weights_ms"] and two["kv_ms"] == one["kv_ms"]   # no speed-up per token
    assert two["comm_ms"] > 0


def test_transformers_rewrites_its_growing_cache(cat):
    tf, f = cat.runtimes["transformers"], cat.formats
    passes = tf.eager.kv_cache_passes.model_copy(update={"value": 3.0})
    cat3 = tf.model_copy(update={"eager": tf.eager.model_copy(update={"kv_cache_passes": passes})})
    rates = spec_rates(NODE, f["bf16"], tf)
    a = Model(tiny(), f["bf16"], 276_096, 2, tf, rates).decode_terms(4, 1000)
    b = Model(tiny(), f["bf16"], 276_096, 2, cat3, rates).decode_terms(4, 1000)
    assert b["kv_ms"] == pytest.approx(3 * a["kv_ms"])            # torch.cat reads and writes it, attention reads it


def test_moe_streams_only_the_experts_a_batch_touches(cat):
    f = cat.formats
    moe = tiny(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2)
    total = 64_000 + 2 * (12_288 + 4 * 24_576 + 256) + 320       # 286,016 parameters (tied head)
    full = 2 * total
    # one token touches 2 of 4 experts: the MLP share (2 x (4 x 24,576 + 256) = 197,120 params) is halved
    frac = 2 * (4 * 24_576 + 256) / total
    assert streamed_weight_bytes(moe, f["bf16"], full, 1) == pytest.approx(full * (1 - frac + frac * 0.5))


def test_engine_latency_at_concurrency(cat):
    vllm, f = cat.runtimes["vllm"], cat.formats
    rates = spec_rates(NODE, f["bf16"], vllm)
    lat = latency_estimate(tiny(), fmt=f["bf16"], weights_bytes=276_096, kv_element_bytes=2, batch=4, prompt=10,
                           new=5, runtime=vllm, rates=rates)
    m = Model(tiny(), f["bf16"], 276_096, 2, vllm, rates)
    s = serving.continuous(m.step_ms, m.prefill_ms, serving.Workload(batch=4, prompt=10, new=5), 10.0,
                           extra=m.prefill_extra_ms)
    assert lat.scheduling == "continuous" and lat.concurrency == 4
    assert (lat.ttft_ms, lat.decode_ms_per_token, lat.e2e_ms) == (s.ttft_ms, s.tpot_ms, s.e2e_ms)
    assert lat.tokens_per_s == pytest.approx(4 * 5 / (s.e2e_ms / 1e3))
    assert lat.ttft_ms >= 10.0                                     # the fixture's request floor


def test_target_devices_carry_node_and_driver_memory(cat):
    node = from_target(cat.target("fx-node-80gb"))
    assert (node.count, node.link_kind, node.link_gbs, node.memory_bytes) == (8, "nvlink", 400, 80_000_000_000)
    lone = from_target(cat.target("fx-gpu-80gb"))
    assert (lone.count, lone.link, lone.node_known) == (1, None, False)

"""The replica simulation (advisor/capacity/simulate.py) on cases small enough to work out by hand.

Every case uses made-up step times: a decode step of 10 ms whatever the batch and context, a prompt
whose prefill costs 30 ms of compute, and 20 ms of fixed forward cost (weights, host) when a forward
carries prompts only. So a lone prompt on an idle replica takes 20 + 30 = 50 ms, and a prompt that rides
in a decode step adds 30 ms to it. Requests have 10 new tokens: a first token from the prefill, then
9 decode steps.
"""

from __future__ import annotations

import math

import pytest

from advisor.capacity.simulate import Arrivals, Replica, _arrival_times, simulate

STEP, COMPUTE, BASE, NEW = 10.0, 30.0, 20.0, 10


def replica(**kw) -> Replica:
    args = dict(prompt=100, new=NEW, ttft_floor_ms=0.0, max_seqs=8, prefill="mixed")
    args.update(kw)
    return Replica(lambda n, ctx: STEP, lambda k, p: BASE + k * COMPUTE, lambda p: COMPUTE, **args)


def test_one_request_at_a_time_has_no_queueing():
    # One arrival a second, each served alone: prefill 50 ms (first token), 9 steps of 10 ms.
    # TTFT = 50 + floor 5 = 55 ms; end to end = 50 + 90 + 5 = 145 ms; TPOT = 90 / 9 = 10 ms.
    res = simulate(replica(ttft_floor_ms=5.0), Arrivals("deterministic", rate=1.0, requests=20, warmup=0))
    assert res.ttft_ms.p50 == pytest.approx(55.0) and res.ttft_ms.max == pytest.approx(55.0)
    assert res.e2e_ms.p95 == pytest.approx(145.0)
    assert res.tpot_ms.mean == pytest.approx(10.0)
    assert res.kv_waits == 0 and res.seq_waits == 0


def test_a_prompt_arriving_mid_decode_rides_in_a_step_and_slows_the_other_stream():
    # r0 at 0 ms, r1 at 25 ms (40 req/s). t=0: r0 prefills alone, 50 ms -> first token at 50.
    # t=50: r1 admitted; one step decodes r0 and carries r1's prompt: 10 + 30 = 40 ms -> t=90
    # (r0's second token, r1's first). Then steps of 10 ms with both: r0 needs 8 more -> done at 170;
    # r1 one more alone -> done at 180.
    # r0: TTFT 50, e2e 170, TPOT (170-50)/9 = 13.33 (r1's 30 ms of compute spread over its 9 tokens)
    # r1: TTFT 90-25 = 65, e2e 180-25 = 155, TPOT (180-90)/9 = 10
    res = simulate(replica(), Arrivals("deterministic", rate=40.0, requests=2, warmup=0))
    assert (res.ttft_ms.mean, res.ttft_ms.max) == pytest.approx((57.5, 65.0))
    assert (res.e2e_ms.mean, res.e2e_ms.max) == pytest.approx((162.5, 170.0))
    assert res.tpot_ms.max == pytest.approx(120 / 9)
    assert res.tpot_ms.mean == pytest.approx((120 / 9 + 10) / 2)
    assert res.steps == 1 + 1 + 8 + 1


def test_a_separate_prefill_step_pauses_the_decoding_stream():
    # Same arrivals, prefills in steps of their own (TGI 1.x): t=50 r1's prefill runs alone, 50 ms,
    # while r0 waits -> t=100, r1's first token. Both then decode together: r0 has 9 tokens to go
    # (none came during the pause), r1 9: 9 steps -> both done at 190.
    # r0: TTFT 50, e2e 190, TPOT 140/9; r1: TTFT 75, e2e 165, TPOT 10.
    res = simulate(replica(prefill="separate"), Arrivals("deterministic", rate=40.0, requests=2, warmup=0))
    assert (res.ttft_ms.mean, res.ttft_ms.max) == pytest.approx((62.5, 75.0))
    assert (res.e2e_ms.mean, res.e2e_ms.max) == pytest.approx((177.5, 190.0))
    assert res.tpot_ms.max == pytest.approx(140 / 9)


def test_prompts_admitted_together_share_one_forward():
    # Two requests at t=0, continuous batching: one forward carries both prompts, 20 + 2 x 30 = 80 ms,
    # then 9 decode steps of 10 ms: both done at 170.
    res = simulate(replica(), Arrivals("burst", requests=2, warmup=0))
    assert res.ttft_ms.max == pytest.approx(80.0) and res.e2e_ms.max == pytest.approx(170.0)


def test_a_full_kv_pool_makes_requests_wait_in_order():
    # The pool holds one request (100 + 10 tokens), so three requests at t=0 are served one after the
    # other, S = 50 + 90 = 140 ms each: request i starts at 140 i, its TTFT is 140 i + 50 and its end
    # to end 140 (i + 1). The two behind the first waited for the pool. Throughput 3 / 420 ms.
    res = simulate(replica(kv_tokens=110), Arrivals("burst", requests=3, warmup=0))
    assert sorted([res.ttft_ms.p50, res.ttft_ms.max, res.ttft_ms.mean]) == pytest.approx([190.0, 190.0, 330.0])
    assert res.e2e_ms.max == pytest.approx(420.0) and res.e2e_ms.mean == pytest.approx(280.0)
    assert res.kv_waits == 2 and res.seq_waits == 0
    assert res.requests_per_s == pytest.approx(3 / 0.420)


def test_arrivals_faster_than_service_queue_up_by_the_difference():
    # One sequence at a time (max_seqs 1), a request every 100 ms, each takes S = 140 ms: request i
    # starts at 140 i and waited 40 i ms, so TTFT_i = 40 i + 50. For i = 0..10: mean 250, median 250,
    # worst 450. The scheduler cap, not the pool, made them wait (10 requests).
    res = simulate(replica(max_seqs=1), Arrivals("deterministic", rate=10.0, requests=11, warmup=0))
    assert (res.ttft_ms.mean, res.ttft_ms.p50, res.ttft_ms.max) == pytest.approx((250.0, 250.0, 450.0))
    assert res.seq_waits == 10 and res.kv_waits == 0


def test_static_batching_waits_for_the_whole_batch():
    # Static (transformers generate), batches of 2: r0 and r1 at t=0 go together (prefill of 2 prompts:
    # 20 + 2 x 30 = 80 ms, then 9 steps -> 170); r2 at t=0 waits for the batch to finish, then runs alone:
    # 50 + 90 -> 310. TTFTs 80, 80, 220.
    res = simulate(replica(prefill="static", max_seqs=2), Arrivals("burst", requests=3, warmup=0))
    assert sorted([res.ttft_ms.p50, res.ttft_ms.max]) == pytest.approx([80.0, 220.0])
    assert res.e2e_ms.max == pytest.approx(310.0)


def test_the_token_budget_chunks_a_long_prompt():
    # A 100-token prompt with a 40-token step budget on an idle replica: chunks of 40, 40, 20 tokens in
    # three forwards of 20 + 30 x 40/100 = 32, 32 and 20 + 6 = 26 ms: first token at 90 ms.
    res = simulate(replica(token_budget=40), Arrivals("burst", requests=1, warmup=0))
    assert res.ttft_ms.p50 == pytest.approx(90.0)
    assert res.steps == 3 + 9


def test_closed_loop_clients_follow_littles_law():
    # Two clients starting together, each sending again as its answer completes: every cycle is the
    # burst case above, 170 ms, so each client does 1 / 0.170 s requests: 2 / 0.170 = 11.76 req/s.
    res = simulate(replica(), Arrivals("closed", clients=2, requests=40, warmup=4))
    assert res.e2e_ms.p50 == pytest.approx(170.0)
    assert res.requests_per_s == pytest.approx(2 / 0.170)
    assert res.output_tokens_per_s == pytest.approx(2 / 0.170 * NEW)


def test_multi_step_scheduling_admits_only_every_k_steps():
    # --num-scheduler-steps 4: r1 arrives at 25 ms while r0 decodes (its steps end at 60, 70, 80, ...);
    # admission waits for step 4's boundary. Steps: prefill (0-50, step 0), decode 50-60 (1), 60-70 (2),
    # 70-80 (3): at 80 ms (step 4) r1 is admitted and rides in the next step, 10 + 30 -> first token 120.
    res = simulate(replica(scheduler_steps=4), Arrivals("deterministic", rate=40.0, requests=2, warmup=0))
    assert res.ttft_ms.max == pytest.approx(120.0 - 25.0)


def test_a_request_larger_than_the_pool_is_infeasible():
    res = simulate(replica(kv_tokens=50), Arrivals("burst", requests=3, warmup=0))
    assert not res.feasible and "does not fit the KV pool" in res.reason


def test_poisson_arrivals_are_seeded_and_scale_with_the_rate():
    def times(rate, seed):
        return _arrival_times(Arrivals("poisson", rate=rate, requests=50, warmup=0, seed=seed))

    a, b = times(5.0, 7), times(10.0, 7)
    assert a == times(5.0, 7)
    assert b == pytest.approx([x / 2 for x in a])          # the same pattern, twice as dense
    assert a != times(5.0, 8)
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert 100 < sum(gaps) / len(gaps) < 300               # about 1 / 5 s apart


def test_mean_tpot_agrees_with_the_closed_form_at_moderate_load():
    # The closed form: each output token waits for a 10 ms step plus the compute of the prompts that
    # arrive meanwhile: TPOT = 10 / (1 - rate x 30 ms) = 10 / 0.85 = 11.76 ms at 5 req/s. The simulation
    # comes out a little higher (a long step collects more arrivals, so prefills cluster): within 10%.
    from advisor.capacity.search import mean_value

    rep = replica(max_seqs=256)
    res = simulate(rep, Arrivals("poisson", rate=5.0, requests=3000, warmup=100, seed=3))
    tpot, _, _ = mean_value(rep, 5.0)
    assert tpot == pytest.approx(10 / 0.85)
    assert tpot <= res.tpot_ms.mean <= 1.10 * tpot


def test_step_times_between_evaluated_batch_sizes_are_exact_when_affine():
    # A dense model's step is affine in the batch: the interpolated sizes equal a direct evaluation.
    calls = []

    def step(n, ctx):
        calls.append(n)
        return 5.0 + 0.1 * n + 0.001 * n * ctx

    rep = Replica(step, lambda k, p: 10.0, lambda p: 5.0, prompt=500, new=100, max_seqs=1024)
    for n in (1, 17, 100, 333, 1000):
        assert rep.step_ms(n, 550.0) == pytest.approx(step(n, 550.0))
    assert len(set(calls)) < 60          # only a grid of sizes was evaluated


def test_warmup_must_leave_requests_to_measure():
    with pytest.raises(ValueError):
        Arrivals("poisson", rate=1.0, requests=10, warmup=10)
    with pytest.raises(ValueError):
        Arrivals("closed", requests=10)
    assert math.isnan(simulate(replica(kv_tokens=50), Arrivals("burst", requests=1, warmup=0)).e2e_ms.p50)

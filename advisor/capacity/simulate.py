"""A discrete-event simulation of one serving replica under load (pure; no catalog, no clock).

The engine runs iterations ("steps"). At every step boundary the scheduler admits waiting requests in
arrival order while fewer than `max_seqs` run and the KV pool can reserve the request's prompt + new
tokens (a request that does not fit waits: FCFS, no overtaking). A step then does one of:

  mixed     (vLLM V1, SGLang, TensorRT-LLM in-flight batching) every decoding sequence produces a
            token, and admitted prompts are prefilled in chunks within the step's token budget
            (max_num_batched_tokens, decode tokens counted first). The step costs the decode step at
            that batch size and mean context, plus the compute of the prompt chunks it carries (their
            weights ride with the decode step's): prefill/decode interference.
  separate  (TGI 1.x, vLLM V0 without chunked prefill) a step with prompts to prefill runs only them;
            the decoding sequences wait for it.
  static    (transformers generate, gpt-fast) a batch is admitted only when the engine is empty, one
            prefill of the whole batch, then decode steps until all of it is done.

A prompt's first token comes at the end of the step that finishes its prefill; the request then
produces one token per decode step. TTFT = first token - arrival + the runtime's request floor,
end-to-end = last token - arrival + floor, TPOT = (last - first token) / (new - 1).

Speed: between events (an arrival, a finish, a prefill) every decode step has the same batch and a
mean context that grows by one token per step. The decode step time is affine in the context for a
given batch size (weights + KV reads x context), so k such steps take a closed-form time and are
taken at once: the cost is per request, not per step.

Arrivals: "poisson" (exponential gaps from a seeded RNG, unit gaps drawn once and divided by the rate,
so two rates see the same arrival pattern), "deterministic" (one every 1/rate), "burst" (all at t=0)
and "closed" (`clients` users, each sending its next request when the previous answer is complete;
their first requests together, or spread over `stagger_ms`: with fixed lengths, clients that start
together stay in step for ever, which real clients, whose lengths vary, do not).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

StepFn = Callable[[int, float], float]        # (sequences decoding, mean context tokens) -> ms
PrefillFn = Callable[[int, int], float]       # (sequences, prompt tokens) -> ms of a prefill-only forward
ExtraFn = Callable[[int], float]              # (prompt tokens) -> compute ms the prompt adds to a step
Prefill = Literal["mixed", "separate", "static"]
ArrivalKind = Literal["poisson", "deterministic", "burst", "closed"]


EXACT_BATCH = 16     # batch sizes whose step time is evaluated exactly
GRID_RATIO = 1.25    # above it, a geometric grid of evaluated sizes, interpolated between


class Replica:
    """One engine replica for one request shape, with its step times cached.

    step_ms(n, ctx) is evaluated at the shape's shortest and longest context for each batch size
    seen and interpolated linearly in between (exact for dense attention; within the window's
    kink for sliding layers).
    """

    def __init__(self, step_ms: StepFn, prefill_ms: PrefillFn, prefill_extra_ms: ExtraFn, *, prompt: int, new: int,
                 ttft_floor_ms: float = 0.0, max_seqs: int = 256, kv_tokens: float = math.inf,
                 block_tokens: int = 1, token_budget: int | None = None, prefill: Prefill = "mixed",
                 scheduler_steps: int = 1):
        if prompt < 1 or new < 1:
            raise ValueError("prompt and new tokens must be positive")
        if max_seqs < 1:
            raise ValueError("max_seqs must be positive")
        self.prompt, self.new = int(prompt), int(new)
        self.ttft_floor_ms = float(ttft_floor_ms)
        self.max_seqs = int(max_seqs)
        self.block_tokens = max(1, int(block_tokens))
        self.kv_need = self.block_tokens * math.ceil((self.prompt + self.new) / self.block_tokens)
        self.kv_tokens = float(kv_tokens)
        self.token_budget = int(token_budget) if token_budget else None
        self.prefill = prefill
        self.scheduler_steps = max(1, int(scheduler_steps))
        self._step = step_ms
        self._prefill = prefill_ms
        self._coef: dict[int, tuple[float, float]] = {}      # every batch size looked up
        self._evaluated: dict[int, tuple[float, float]] = {}  # the ones evaluated exactly
        self._batch_prefill: dict[int, float] = {}
        self.prefill_alone_ms = float(prefill_ms(1, self.prompt))        # a lone prompt on an idle engine
        self.prefill_compute_ms = float(prefill_extra_ms(self.prompt))   # what it adds riding in a step
        # the fixed part of a forward that carries prompts only (weight read, host): prefill_alone - compute
        self.forward_base_ms = max(0.0, self.prefill_alone_ms - self.prefill_compute_ms)

    @property
    def max_concurrency(self) -> int:
        """Sequences the replica can hold at once: the scheduler's cap or the KV pool's, the smaller."""
        if math.isinf(self.kv_tokens):
            return self.max_seqs
        return max(0, min(self.max_seqs, int(self.kv_tokens // self.kv_need)))

    def _exact(self, n: int) -> tuple[float, float]:
        got = self._evaluated.get(n)
        if got is None:
            c0, c1 = float(self.prompt), float(self.prompt + self.new)
            s0, s1 = self._step(n, c0), self._step(n, c1)
            b = max(0.0, (s1 - s0) / (c1 - c0))
            got = (s0 - b * c0, b)
            self._evaluated[n] = got
        return got

    def coef(self, n: int) -> tuple[float, float]:
        """(a, b) with step_ms(n, ctx) = a + b * ctx over the shape's context range. Batch sizes up to
        EXACT_BATCH are evaluated; larger ones are interpolated between a geometric grid of evaluated
        sizes (ratio 1.25): exact for dense models, whose step time is affine in the batch (weights once,
        FLOPs, KV reads and all-reduce bytes per sequence); a chord of the MoE experts-touched curve."""
        got = self._coef.get(n)
        if got is not None:
            return got
        if n <= EXACT_BATCH:
            got = self._coef[n] = self._exact(n)
            return got
        lo = EXACT_BATCH
        while True:
            hi = max(lo + 1, int(lo * GRID_RATIO))
            if n <= hi:
                break
            lo = hi
        if n == hi:
            got = self._coef[n] = self._exact(hi)
            return got
        (a0, b0), (a1, b1) = self._exact(lo), self._exact(hi)
        w = (n - lo) / (hi - lo)
        got = self._coef[n] = (a0 + w * (a1 - a0), b0 + w * (b1 - b0))
        return got

    def step_ms(self, n: int, ctx: float) -> float:
        a, b = self.coef(n)
        return a + b * ctx

    def batch_prefill_ms(self, k: int) -> float:
        got = self._batch_prefill.get(k)
        if got is None:
            got = self._batch_prefill[k] = float(self._prefill(k, self.prompt))
        return got


@dataclass(frozen=True)
class Arrivals:
    kind: ArrivalKind = "poisson"
    rate: float | None = None         # requests per second (poisson, deterministic)
    clients: int | None = None        # closed loop
    requests: int = 600               # simulated requests
    warmup: int = 50                  # the first ones (by arrival) are left out of the statistics
    seed: int = 0
    stagger_ms: float = 0.0           # closed loop: each client's first request at a uniform random time in
                                      # [0, stagger_ms) (0: all together, and fixed lengths keep them in step)

    def __post_init__(self):
        if self.kind in ("poisson", "deterministic") and not (self.rate and self.rate > 0):
            raise ValueError(f"{self.kind} arrivals need a positive rate")
        if self.kind == "closed" and not (self.clients and self.clients >= 1):
            raise ValueError("closed-loop arrivals need clients >= 1")
        if self.requests < 1 or not 0 <= self.warmup < self.requests:
            raise ValueError("need requests >= 1 and 0 <= warmup < requests")


@dataclass(frozen=True)
class Percentiles:
    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        vals = sorted(v for v in values if not math.isnan(v))
        if not vals:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)

        def q(p: float) -> float:
            k = (len(vals) - 1) * p
            lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
            return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)

        return cls(len(vals), sum(vals) / len(vals), q(0.5), q(0.95), q(0.99), vals[-1])


@dataclass(frozen=True)
class SimResult:
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    e2e_ms: Percentiles
    output_tokens_per_s: float        # generated tokens per second over the measured window
    requests_per_s: float             # completions per second (closed loop: clients / mean end-to-end)
    mean_running: float               # time-averaged sequences in the engine (prefilling or decoding)
    kv_waits: int                     # measured requests that waited for room in the KV pool
    seq_waits: int                    # measured requests that waited for the max_seqs cap
    steps: int                        # engine steps simulated
    events: int                       # loop iterations (the cost of the simulation)
    makespan_ms: float
    feasible: bool = True             # False: one request alone does not fit the KV pool
    reason: str = ""


def _arrival_times(a: Arrivals) -> list[float]:
    """Open-loop arrival times in ms (closed loop: none up front)."""
    if a.kind == "burst":
        return [0.0] * a.requests
    if a.kind == "deterministic":
        gap = 1e3 / a.rate
        return [i * gap for i in range(a.requests)]
    if a.kind == "poisson":
        rng = random.Random(a.seed)
        t, out = 0.0, []
        for _ in range(a.requests):
            out.append(t)
            t += rng.expovariate(1.0) * 1e3 / a.rate
        return out
    return []


def _steps_until(a: float, b: float, c0: float, delta: float) -> int:
    """Smallest k >= 1 with sum_{j<k} (a + b (c0 + j)) >= delta: k decode steps of a growing context."""
    first = a + b * c0
    if delta <= first:
        return 1
    if b <= 1e-15:
        k = math.ceil(delta / first)
    else:
        # (b/2) k^2 + (first - b/2) k - delta = 0
        lin = first - b / 2
        k = math.ceil((-lin + math.sqrt(lin * lin + 2 * b * delta)) / b)
    k = max(1, k)
    total = lambda m: m * first + b * m * (m - 1) / 2  # noqa: E731
    while k > 1 and total(k - 1) >= delta:
        k -= 1
    while total(k) < delta:
        k += 1
    return k


def simulate(rep: Replica, load: Arrivals) -> SimResult:
    """Simulate `load` on one replica; figures over the requests after the warm-up."""
    P, N = rep.prompt, rep.new
    nan = float("nan")
    if rep.kv_need > rep.kv_tokens:
        empty = Percentiles.of([])
        return SimResult(empty, empty, empty, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, feasible=False,
                         reason=f"one request ({P} + {N} tokens) does not fit the KV pool "
                                f"({rep.kv_tokens:.0f} tokens)")
    total = load.requests
    arrive = [nan] * total
    first = [nan] * total
    done = [nan] * total
    kv_waited = [False] * total
    seq_waited = [False] * total
    closed = load.kind == "closed"
    opened = _arrival_times(load)
    pending: list[tuple[float, int]] = []      # closed loop: (send time, id)
    next_id = 0
    if closed:
        rng = random.Random(load.seed)
        for _ in range(min(load.clients, total)):
            heapq.heappush(pending, (rng.uniform(0.0, load.stagger_ms) if load.stagger_ms > 0 else 0.0, next_id))
            next_id += 1
    floor = rep.ttft_floor_ms
    static = rep.prefill == "static"
    mixed = rep.prefill == "mixed"
    budget = rep.token_budget
    sched = rep.scheduler_steps
    kv_need, kv_tokens, max_seqs = rep.kv_need, rep.kv_tokens, rep.max_seqs
    compute_per_token = rep.prefill_compute_ms / P
    base_ms = rep.forward_base_ms
    coef = rep.coef
    inf = math.inf

    waiting: deque[int] = deque()
    order: list[int] = []                      # every request that joined the queue, in order
    marked_kv = marked_seq = 0                 # how many of `order` are marked as having waited
    prefilling: deque[list] = deque()          # [id, prompt tokens left]
    decoding: deque[tuple[int, int]] = deque()  # (id, decode counter at its first token), in join order
    join_sum = 0                               # sum of those counters (mean context of the batch)
    t = 0.0
    D = 0                                      # decode steps so far (steps in which decoders advanced)
    s = 0                                      # engine steps so far
    kv_used = 0.0
    arr_i = 0                                  # next open-loop arrival
    finished = 0
    events = 0
    busy_integral = 0.0                        # sum of running sequences x step time

    def finish(rid: int, when: float) -> None:
        nonlocal finished, kv_used, next_id
        done[rid] = when
        finished += 1
        kv_used -= kv_need
        if closed and next_id < total:
            heapq.heappush(pending, (when + floor, next_id))   # the client sees the answer, sends the next
            next_id += 1

    while finished < total:
        events += 1
        # arrivals up to now join the queue
        if closed:
            while pending and pending[0][0] <= t:
                when, rid = heapq.heappop(pending)
                arrive[rid] = when
                waiting.append(rid)
                order.append(rid)
        else:
            while arr_i < total and opened[arr_i] <= t:
                arrive[arr_i] = opened[arr_i]
                waiting.append(arr_i)
                order.append(arr_i)
                arr_i += 1
        nd = len(decoding)
        # admission at this boundary (FCFS: the head waits for room, the rest wait behind it)
        idle = nd == 0 and not prefilling
        if waiting and (s % sched == 0 or idle) and (not static or idle):
            while waiting:
                if nd + len(prefilling) >= max_seqs:
                    for w in order[max(marked_seq, len(order) - len(waiting)):]:   # those waiting now
                        seq_waited[w] = True
                    marked_seq = len(order)
                    break
                if kv_used + kv_need > kv_tokens:
                    for w in order[max(marked_kv, len(order) - len(waiting)):]:
                        kv_waited[w] = True
                    marked_kv = len(order)
                    break
                kv_used += kv_need
                prefilling.append([waiting.popleft(), P])
        running = nd + len(prefilling)
        if running == 0:
            nxt = (pending[0][0] if pending else inf) if closed else (opened[arr_i] if arr_i < total else inf)
            if nxt == inf:
                break
            if nxt > t:
                t = nxt
            continue
        if prefilling:
            # one step that carries prompt work
            if static:
                dt = rep.batch_prefill_ms(len(prefilling))
                completed = [p[0] for p in prefilling]
                prefilling.clear()
                advance = False
            else:
                left = inf if budget is None else max(0, budget - (nd if mixed else 0))
                tokens = 0
                completed = []
                for item in prefilling:
                    if left <= 0:
                        break
                    take = item[1] if item[1] < left else left
                    item[1] -= take
                    left -= take
                    tokens += take
                    if item[1] == 0:
                        completed.append(item[0])
                for _ in completed:          # the completed prompts are the first ones (FCFS)
                    prefilling.popleft()
                advance = mixed and nd > 0
                if advance:
                    a, b = coef(nd)
                    dt = a + b * (P + 1 + D - join_sum / nd) + compute_per_token * tokens
                else:
                    dt = base_ms + compute_per_token * tokens
            busy_integral += running * dt
            t += dt
            s += 1
            if advance:
                D += 1
                while decoding and decoding[0][1] + N - 1 <= D:
                    rid, j = decoding.popleft()
                    join_sum -= j
                    finish(rid, t)
            for rid in completed:
                first[rid] = t
                if N == 1:
                    finish(rid, t)
                else:
                    decoding.append((rid, D))
                    join_sum += D
            continue
        # decode only, until the next event: k steps at once
        a, b = coef(nd)
        c0 = P + 1 + D - join_sum / nd
        k = decoding[0][1] + N - 1 - D                     # steps until the oldest finishes
        if waiting and sched > 1 and nd < max_seqs and kv_used + kv_need <= kv_tokens:
            k = min(k, sched - s % sched)                   # multi-step: the next admission boundary
        if not static:
            nxt = (pending[0][0] if pending else inf) if closed else (opened[arr_i] if arr_i < total else inf)
            if nxt != inf:
                step = a + b * c0
                if nxt - t <= step:
                    k = 1
                elif k > 1:
                    k = min(k, _steps_until(a, b, c0, nxt - t))
        if k < 1:
            k = 1
        dt = k * (a + b * c0) + b * k * (k - 1) / 2
        busy_integral += nd * dt
        t += dt
        s += k
        D += k
        while decoding and decoding[0][1] + N - 1 <= D:
            rid, j = decoding.popleft()
            join_sum -= j
            finish(rid, t)

    lo = load.warmup
    hi = total - (min(load.clients, total - lo - 1) if closed else 0)
    hi = max(hi, lo + 1)
    ids = range(lo, hi)
    ttft = [first[i] - arrive[i] + floor for i in ids]
    e2e = [done[i] - arrive[i] + floor for i in ids]
    tpot = [(done[i] - first[i]) / (N - 1) for i in ids] if N > 1 else []
    # throughput. Closed loop: Little's law, clients / mean cycle (end-to-end); fixed lengths keep the
    # clients' cohorts in step, so counting completions in a time window would hit or miss whole cohorts.
    # Burst: requests / makespan. Open loop: completions per unit time between the warm-up request's
    # arrival and the last arrival (below the offered rate when the queue grows).
    if closed:
        mean_e2e = sum(e2e) / len(e2e)
        rps = load.clients / mean_e2e * 1e3 if mean_e2e > 0 else math.inf
    elif load.kind == "burst":
        rps = total / t * 1e3 if t > 0 else math.inf
    else:
        t_a, t_b = opened[lo], opened[-1]
        if t_b > t_a:
            rps = sum(1 for x in done if t_a < x <= t_b) / (t_b - t_a) * 1e3
        else:
            rps = (total - lo) / (t - t_a) * 1e3 if t > t_a else math.inf
    return SimResult(ttft_ms=Percentiles.of(ttft), tpot_ms=Percentiles.of(tpot), e2e_ms=Percentiles.of(e2e),
                     output_tokens_per_s=rps * N, requests_per_s=rps, mean_running=busy_integral / t if t > 0 else 0.0,
                     kv_waits=sum(kv_waited[i] for i in ids), seq_waits=sum(seq_waited[i] for i in ids),
                     steps=s, events=events, makespan_ms=t)

"""How a serving engine turns one decode step and one prefill into request latency under load (pure functions).

Scheduling modes:
  static      the sequences start together: one prefill of all of them, then every step decodes all
              (transformers generate, benchmark_latency, TensorRT-LLM's gptSessionBenchmark, llama-bench)
  continuous  N requests in flight, each replaced as it finishes (continuous batching, closed loop): a step
              decodes N sequences, and each stream's output tokens also wait for the prefills of the
              N - 1 others, one per `new` tokens each (prefill interference). Those prefills ride in the
              same forwards as the decode steps (chunked prefill, batched prefills), so only their compute
              is added: the weights are streamed once per step anyway.
  open-loop   requests arrive at a rate; N follows from Little's law (N = rate x end-to-end latency)
  saturated   everything queued at once (offline throughput): N = the most the engine schedules / holds

Multi-step scheduling (vLLM --num-scheduler-steps k) admits new requests only every k steps: a new request
waits (k - 1) / 2 steps on average before its prefill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Mode = Literal["static", "continuous", "open-loop", "saturated"]

StepFn = Callable[[float, float], float]      # (sequences decoding, context tokens) -> ms per step
PrefillFn = Callable[[int, int], float]       # (sequences, prompt tokens) -> ms for their prefill
ExtraFn = Callable[[int], float]              # (prompt tokens) -> ms a prefill adds to a running decode step


@dataclass(frozen=True)
class Workload:
    batch: float                  # concurrent sequences (static batch size or continuous concurrency)
    prompt: int
    new: int
    mode: Mode = "static"
    request_rate: float | None = None     # open-loop arrivals per second
    scheduler_steps: int = 1


@dataclass(frozen=True)
class Served:
    ttft_ms: float
    tpot_ms: float                # per-stream time per output token after the first
    e2e_ms: float                 # one request, first byte in to last token out
    tokens_per_s: float           # generated tokens per second, all streams together
    concurrency: float            # sequences decoding together
    step_ms: float                # one decode step at that concurrency
    prefill_ms: float             # the prefill a request waits for (all of a static batch's)
    interference_ms: float        # other requests' prefills, per output token


def _avg_context(prompt: int, new: int) -> float:
    return prompt + max(new - 1, 0) / 2


def static(step: StepFn, prefill: PrefillFn, w: Workload, ttft_floor_ms: float) -> Served:
    b = max(1, int(round(w.batch)))
    pre = prefill(b, w.prompt)
    s = step(b, _avg_context(w.prompt, w.new))
    ttft = ttft_floor_ms + pre
    e2e = ttft + max(w.new - 1, 0) * s
    return Served(ttft, s, e2e, b * w.new / (e2e / 1e3) if e2e > 0 else 0.0, b, s, pre, 0.0)


def continuous(step: StepFn, prefill: PrefillFn, w: Workload, ttft_floor_ms: float,
               concurrency: float | None = None, extra: ExtraFn | None = None) -> Served:
    n = max(1.0, concurrency if concurrency is not None else w.batch)
    pre = prefill(1, w.prompt)
    s = step(n, _avg_context(w.prompt, w.new))
    interference = (n - 1) * (extra(w.prompt) if extra else pre) / max(w.new, 1)
    tpot = s + interference
    wait = (0.5 * s if n > 1 else 0.0) + max(w.scheduler_steps - 1, 0) / 2 * s
    ttft = ttft_floor_ms + wait + pre
    e2e = ttft + max(w.new - 1, 0) * tpot
    return Served(ttft, tpot, e2e, n * w.new / (e2e / 1e3) if e2e > 0 else 0.0, n, s, pre, interference)


def open_loop(step: StepFn, prefill: PrefillFn, w: Workload, ttft_floor_ms: float,
              max_concurrency: float, extra: ExtraFn | None = None) -> Served:
    """Fixed point of N = rate x e2e(N), capped where the engine stops admitting."""
    rate = (w.request_rate or 0.0) / 1e3        # per ms
    n = 1.0
    for _ in range(60):
        served = continuous(step, prefill, w, ttft_floor_ms, concurrency=n, extra=extra)
        target = min(max_concurrency, max(1.0, rate * served.e2e_ms))
        if abs(target - n) < 1e-6:
            break
        n = target if target >= max_concurrency else 0.5 * (n + target)   # damped: e2e grows with N
    return continuous(step, prefill, w, ttft_floor_ms, concurrency=n, extra=extra)


def serve(step: StepFn, prefill: PrefillFn, w: Workload, ttft_floor_ms: float,
          max_concurrency: float | None = None, extra: ExtraFn | None = None) -> Served:
    if w.mode == "static":
        return static(step, prefill, w, ttft_floor_ms)
    if w.mode == "open-loop":
        return open_loop(step, prefill, w, ttft_floor_ms, max_concurrency or 1e9, extra)
    if w.mode == "saturated":
        return continuous(step, prefill, w, ttft_floor_ms, concurrency=max_concurrency or w.batch, extra=extra)
    return continuous(step, prefill, w, ttft_floor_ms, extra=extra)

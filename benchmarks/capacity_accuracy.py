"""How close the load model (advisor/capacity: the discrete-event simulation of one replica) comes to
the published serving measurements that state a concurrency or a request rate.

Replays, from benchmarks/data/published-serving.json:
  - TGI 1.0.3 closed-loop k6 runs (1, 5 and 20 virtual users; A10G, 4 x A10G, 8 x A100-40GB): per-request
    latency / generated tokens (the source's "TPOT", which includes TTFT), total throughput, median latency;
  - SGLang 0.3.0 and vLLM 0.6.0 at 4 requests/s (Poisson, ShareGPT): median TTFT and TPOT; and their
    offline runs (5000 requests at once): total throughput;
  - static batches of 8 to 64 sequences (vLLM PR #3240 benchmark_latency, transformers generate,
    TensorRT-LLM gptSessionBenchmark): total throughput (and the transformers rows' per-token latency).
and prints predicted vs published with the median and worst |error|, on held-out rows and on all rows.

Fitting: the simulation fits nothing. It uses the runtime constants of catalog/runtimes.yaml, which
benchmarks/serving_accuracy.py fitted on its FIT rows (within each runtime, every third row in file
order is held out); each row below is labelled with that split. Goal: median |error| <= 20% on the
per-stream TPOT checks and on the total-throughput checks.

    python benchmarks/capacity_accuracy.py [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import serving_accuracy as sa  # noqa: E402  (its catalog, row mapping and split)

GOAL = 0.20
NO_LOAD = "states no concurrency or request rate"
KINDS = ("tpot", "throughput", "ttft", "e2e")

# Facts the rows do not carry, each with its source (the others come from serving_accuracy.py).
OFFLINE_REQUESTS = 5000          # the offline rows: "RPS inf, 5000 prompts" (where_in_source)
ONLINE_REQUESTS = 1200           # the 4 req/s rows: "RPS 4, 1200 prompts" (where_in_source)
V0_SCHEDULER_STEPS = 10          # the rows' vLLM 0.6.0 ran --num-scheduler-steps 10 (notes)
SGLANG_CHUNK = 8192              # ASSUMPTION: SGLang 0.3 chunked_prefill_size default (server_args.py)
MIXTRAL_MAX_LEN = 32768          # vLLM V0 benchmark_latency: max_num_batched_tokens = max(max_model_len, 2048);
                                 # Mixtral-8x7B's max_position_embeddings is 32768


@dataclass
class Check:
    row: str
    kind: str
    metric: str
    published: float
    predicted: float
    split: str

    @property
    def error(self) -> float:
        return (self.predicted - self.published) / self.published


@dataclass
class Scenario:
    row: dict
    runtime: str
    model: str
    target: str
    fmt: str
    gpus: int
    prompt: int
    new: int
    arrivals: object                      # advisor.capacity.simulate.Arrivals
    checks: list[tuple[str, str, float, Callable]]   # (kind, metric, published, result -> predicted)
    overrides: dict = field(default_factory=dict)    # bind_replica: prefill, scheduler_steps, token_budget, max_seqs
    kv_format: str = "fp16"
    assumptions: list[str] = field(default_factory=list)


def scenario(row: dict, cat) -> Scenario | str:
    """The simulation a row asks for, or why it is not replayed."""
    from advisor.capacity.simulate import Arrivals

    runtime = sa.RUNTIMES.get(row["runtime"], row["runtime"])
    model = sa._model_for(row)
    target, why = sa.HARDWARE.get(row["hardware"], (row["hardware"], ""))
    fmt = sa.FORMATS.get(row["format"])
    if model is None or model not in cat.models or target not in cat.targets or fmt is None:
        return "model, hardware or format not in the catalog"
    m, c = row["metrics"], row["concurrency"]
    gpus = max(1, row["gpus"])
    notes = [why] if why else []
    if runtime == "tgi":
        # k6 virtual users in a closed loop; prompt length not stated
        new = row["output_tokens"]
        checks = [("tpot", "tpot_ms (request latency / tokens)", m["tpot_ms"], lambda r: r.e2e_ms.p50 / new),
                  ("throughput", "output_tokens_per_s_total", m["output_tokens_per_s_total"],
                   lambda r: r.output_tokens_per_s),
                  ("e2e", "e2e_ms (median)", m["e2e_ms"], lambda r: r.e2e_ms.p50)]
        arrivals = Arrivals("closed", clients=c, requests=max(2 * c, 20) + 300, warmup=max(2 * c, 20))
        notes.append(f"prompt length not stated: ShareGPT mean {sa.SHAREGPT_INPUT} assumed; the users' first "
                     "requests spread over one request's latency")
        return Scenario(row, runtime, model, target, fmt, gpus, sa.SHAREGPT_INPUT, new, arrivals, checks,
                        assumptions=notes)
    if runtime in ("vllm", "sglang") and c is None:
        over = ({"prefill": "separate", "scheduler_steps": V0_SCHEDULER_STEPS, "token_budget": None}
                if runtime == "vllm" else {"prefill": "separate", "token_budget": SGLANG_CHUNK})
        notes.append(f"ShareGPT mean lengths: {sa.SHAREGPT_INPUT} in, {sa.SHAREGPT_OUTPUT} out (fixed per request)")
        notes.append("vLLM 0.6.0 (V0): prefills in steps of their own, --num-scheduler-steps 10" if runtime == "vllm"
                     else f"SGLang 0.3: prefill and decode batches apart, chunks of {SGLANG_CHUNK} tokens (assumed)")
        if m["ttft_ms"] is not None:     # open loop at 4 req/s
            arrivals = Arrivals("poisson", rate=4.0, requests=ONLINE_REQUESTS, warmup=50)
            checks = [("ttft", "ttft_ms (median)", m["ttft_ms"], lambda r: r.ttft_ms.p50),
                      ("tpot", "tpot_ms (median)", m["tpot_ms"], lambda r: r.tpot_ms.p50)]
        else:                            # offline: everything at once
            arrivals = Arrivals("burst", requests=OFFLINE_REQUESTS, warmup=0)
            checks = [("throughput", "output_tokens_per_s_total", m["output_tokens_per_s_total"],
                       lambda r: r.output_tokens_per_s)]
        return Scenario(row, runtime, model, target, fmt, gpus, sa.SHAREGPT_INPUT, sa.SHAREGPT_OUTPUT, arrivals,
                        checks, over, assumptions=notes)
    if c is not None and 8 <= c <= 64:
        # one static batch of c sequences, all at once
        p, n = row["input_tokens"], row["output_tokens"]
        arrivals = Arrivals("burst", requests=c, warmup=0)
        kv = "fp8" if fmt == "fp8" and "fp8_kv_cache" in row["notes"] else "fp16"
        if runtime == "vllm":             # benchmark_latency (V0): all prompts in one prefill step
            over = {"prefill": "separate", "token_budget": MIXTRAL_MAX_LEN, "max_seqs": c}
            e2e = m["e2e_ms"]
            checks = [("throughput", "c x new / e2e_ms (one static batch)", c * n / (e2e / 1e3),
                       lambda r: c * n / (r.e2e_ms.p50 / 1e3))]
            notes.append("V0 benchmark_latency: the batch's prompts prefill in one step (budget max_model_len)")
        elif runtime == "transformers":   # generate(): per-token latency = total time / new tokens
            over = {"prefill": "static", "max_seqs": c}
            checks = [("tpot", "tpot_ms (generate time / new tokens)", m["tpot_ms"], lambda r: r.e2e_ms.p50 / n),
                      ("throughput", "output_tokens_per_s_total", m["output_tokens_per_s_total"],
                       lambda r: c * n / (r.e2e_ms.p50 / 1e3))]
        elif runtime == "tensorrt-llm":   # gptSessionBenchmark: a static batch
            over = {"prefill": "static", "max_seqs": c}
            checks = [("throughput", "output_tokens_per_s_total", m["output_tokens_per_s_total"],
                       lambda r: c * n / (r.e2e_ms.p50 / 1e3))]
        else:
            return f"no static scenario for {runtime}"
        return Scenario(row, runtime, model, target, fmt, gpus, p, n, arrivals, checks, over, kv_format=kv,
                        assumptions=notes)
    if c is not None and c > 64:
        return f"static batch of {c}: outside the 8-64 range replayed here"
    return NO_LOAD


def replay(sc: Scenario, cat) -> tuple[list[float], object]:
    from advisor.capacity.replica import bind_replica
    from advisor.capacity.simulate import simulate
    from advisor.estimate import device as devmod
    from advisor.estimate.parallel import Split

    rt = cat.runtimes[sc.runtime]
    entry = cat.models[sc.model]
    fmt = cat.formats[sc.fmt]
    device = devmod.from_target(cat.targets[sc.target])
    kind = "tensor" if sc.row["tensor_parallel"] > 1 else ("layer" if sc.gpus > 1 else "none")
    split = Split(sc.gpus, kind) if sc.gpus > 1 else Split(1, "none")
    spec = bind_replica(entry, fmt, rt, device, split, prompt=sc.prompt, new=sc.new, kv_format=sc.kv_format,
                        **sc.overrides)
    arrivals = sc.arrivals
    if arrivals.kind == "closed":
        # the users' first requests spread over one request's latency: with fixed lengths, users that start
        # together stay in lockstep, which real ones (whose lengths vary) do not
        from dataclasses import replace

        from advisor.capacity.simulate import Arrivals

        alone = simulate(spec.replica, Arrivals("burst", requests=1, warmup=0))
        arrivals = replace(arrivals, stagger_ms=alone.e2e_ms.p50)
    res = simulate(spec.replica, arrivals)
    return [fn(res) for _, _, _, fn in sc.checks], res


def summary(checks: list[Check], kind: str, split: str | None) -> dict:
    errs = [abs(c.error) for c in checks if c.kind == kind and (split is None or c.split == split)]
    return {"n": len(errs), "median": statistics.median(errs) if errs else math.nan,
            "worst": max(errs) if errs else math.nan}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cat, notes = sa.load()
    data = json.loads(sa.PUBLISHED.read_text())
    splits = sa.split_rows(data["rows"])
    checks: list[Check] = []
    skipped: list[tuple[str, str]] = []
    used: list[tuple[str, str, list[str]]] = []
    t0 = time.perf_counter()
    for row in data["rows"]:
        sc = scenario(row, cat)
        if isinstance(sc, str):
            skipped.append((row["id"], sc))
            continue
        predicted, _ = replay(sc, cat)
        for (kind, metric, published, _), pred in zip(sc.checks, predicted):
            checks.append(Check(row["id"], kind, metric, published, pred, splits[row["id"]]))
        used.append((row["id"], splits[row["id"]], sc.assumptions))
    elapsed = time.perf_counter() - t0
    goal_kinds = ("tpot", "throughput")
    all_sum = {k: summary(checks, k, None) for k in KINDS}
    hold_sum = {k: summary(checks, k, "holdout") for k in KINDS}
    met = all(all_sum[k]["median"] <= GOAL for k in goal_kinds)
    if args.json:
        print(json.dumps({"checks": [{**vars(c), "error": c.error} for c in checks], "skipped": skipped,
                          "summary": {"all": all_sum, "holdout": hold_sum}, "goal_met": met,
                          "seconds": elapsed}, indent=1))
        return 0 if met else 1
    print(f"{'row':46} {'split':7} {'check':38} {'published':>10} {'predicted':>10} {'error':>8}")
    for c in checks:
        print(f"{c.row:46} {c.split:7} {c.metric:38} {c.published:10.2f} {c.predicted:10.2f} {100 * c.error:+7.1f}%")
    print(f"\n{'check':11} | {'all rows: n  median   worst':28} | {'held-out rows: n  median   worst':32}")
    for k in KINDS:
        a, h = all_sum[k], hold_sum[k]
        cell = lambda s: (f"{s['n']:>2} {100 * s['median']:6.1f}% {100 * s['worst']:6.1f}%" if s["n"]  # noqa: E731
                          else " 0      -       -")
        print(f"{k:11} | {'':10}{cell(a):18} | {'':14}{cell(h):18}")
    print(f"\nrows replayed: {len(used)} ({sum(1 for u in used if u[1] == 'holdout')} held out by "
          "serving_accuracy.py's split); the simulation fits nothing. The runtime constants it uses were fitted by "
          "benchmarks/serving_accuracy.py --fit on its FIT rows; of the rows above these are FIT rows: "
          + ", ".join(u[0] for u in used if u[1] == "fit"))
    print("assumptions per row:")
    for rid, _, assumptions in used:
        if assumptions:
            print(f"  {rid}: {'; '.join(assumptions)}")
    print("rows not replayed:")
    for rid, why in skipped:
        if why != NO_LOAD:
            print(f"  {rid}: {why}")
    print(f"  and {sum(1 for _, w in skipped if w == NO_LOAD)} rows that state no concurrency or request rate "
          "(single-stream latency rows: benchmarks/serving_accuracy.py checks them)")
    print(f"\nGOAL: median |error| <= {100 * GOAL:.0f}% on per-stream TPOT "
          f"({100 * all_sum['tpot']['median']:.1f}%) and "
          f"total throughput ({100 * all_sum['throughput']['median']:.1f}%), all replayed rows: "
          f"{'MET' if met else 'NOT MET'}")
    print(f"simulated {len(used)} rows in {elapsed:.2f} s")
    for n in notes:
        print(f"note: {n}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long capacity planning takes: a 40-candidate, 4-target plan (goal: under 10 s on the 2-core
development machine), and recommend --rps end to end over the whole catalog.

The 40 candidates per target are the 40 highest-quality model x format pairs of the chat task that the
planner plans (scored, passing the filters), on l4-24gb, l40s-48gb, h100-sxm-80gb and the
aws-p5.48xlarge instance, at 20 req/s with p95 TTFT <= 1 s, TPOT <= 50 ms and end-to-end <= 8 s. Every
candidate gets every tensor-parallel degree its target's node allows (the planner skips simulating a
degree whose optimistic bound cannot beat one already planned).

    python benchmarks/capacity_speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

TARGETS = ["l4-24gb", "l40s-48gb", "h100-sxm-80gb", "aws-p5.48xlarge"]
LIMITS = dict(min_rps=20.0, max_ttft_ms=1000.0, max_tpot_ms=50.0)
GOAL_S = 10.0
N = 40


def forty(plan, spec):
    from advisor.recommend.build import estimate_candidates
    from advisor.recommend.capacity import plannable
    from advisor.recommend.probing import LocalProbes

    probes = LocalProbes(enabled=False, budget_s=None, refresh=False, progress=None, catalog=plan.catalog,
                         catalog_paths=plan.catalog_paths)
    cands, _ = estimate_candidates(plan, spec, probes, None)
    ok = [c for c in cands if plannable(c, plan) is None and c.format != "fp16"]   # fp16 = bf16's figures
    ok.sort(key=lambda c: (-(c.quality_proxy or 0), c.key))
    return ok[:N]


def one_plan() -> tuple[float, dict]:
    from advisor.capacity import search, simulate
    from advisor.recommend.capacity import plan_candidates
    from advisor.recommend.resolve import describe_target, resolve

    plan = resolve("chat", targets=TARGETS, prompt_tokens=None, new_tokens=None, batch=None, constraints=None,
                   constraint_kwargs=LIMITS, catalog_paths=(), runtime=None, user_models_only=False)
    work = [(describe_target(t, plan), None) for t in TARGETS]
    work = [(spec, forty(plan, spec)) for spec, _ in work]
    calls = {"simulations": 0, "events": 0}
    real = simulate.simulate

    def counted(rep, load):
        res = real(rep, load)
        calls["simulations"] += 1
        calls["events"] += res.events
        return res

    search.simulate = counted
    import advisor.capacity.plan as plan_mod

    plan_mod.simulate = counted
    try:
        t0 = time.perf_counter()
        planned = [plan_candidates(plan, spec, cands, None, None) for spec, cands in work]
        elapsed = time.perf_counter() - t0
    finally:
        search.simulate = real
        plan_mod.simulate = real
    calls["candidates"] = sum(len(c) for _, c in work)
    calls["layouts"] = sum(len(c.layouts) for cands in planned for c in cands)
    calls["simulated_layouts"] = sum(1 for cands in planned for c in cands for lay in c.layouts if lay.simulations)
    calls["passing"] = sum(1 for cands in planned for c in cands if c.passed)
    return elapsed, calls


def full_recommend() -> tuple[float, int]:
    from advisor.recommend.engine import recommend

    t0 = time.perf_counter()
    rec = recommend("chat", targets=TARGETS[:3], probe=False, **LIMITS)
    return time.perf_counter() - t0, sum(1 for c in rec.candidates if c.layouts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    times, stats = [], {}
    for _ in range(args.runs):
        elapsed, stats = one_plan()
        times.append(elapsed)
    print(f"{N}-candidate, {len(TARGETS)}-target plan ({', '.join(TARGETS)}; chat at 20 req/s, p95 TTFT <= 1 s, "
          f"TPOT <= 50 ms, end-to-end <= 8 s):")
    print(f"  runs: {', '.join(f'{t:.2f} s' for t in times)}; median {statistics.median(times):.2f} s "
          f"(goal < {GOAL_S:.0f} s: {'MET' if statistics.median(times) < GOAL_S else 'NOT MET'})")
    print(f"  {stats['candidates']} candidate x target pairs, {stats['layouts']} layouts "
          f"({stats['simulated_layouts']} simulated, the rest skipped by their bound or not fitting), "
          f"{stats['simulations']} simulations, {stats['events']:,} simulation events, "
          f"{stats['passing']} pairs meet the SLOs")
    print(f"  {1e3 * statistics.median(times) / max(1, stats['simulations']):.2f} ms per simulation")
    t_full, n_full = full_recommend()
    print(f"recommend --task chat --rps 20 --max-ttft-ms 1000 --max-tpot-ms 50 over {', '.join(TARGETS[:3])} "
          f"(whole catalog, {n_full} planned candidates, estimation included): {t_full:.2f} s")
    return 0 if statistics.median(times) < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())

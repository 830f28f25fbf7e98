"""CLI speed on this machine: medians over several runs, printed with the goals.

Goals (issue 5, 2-core machine): `advisor --help` < 0.5 s; `advisor recommend --task summarization`
with a warm probe cache < 3 s; cold (probing from scratch, default budget) < 60 s.
The warm and cold runs use --no-mlflow (logging is measured separately: `import mlflow` alone
costs seconds, see the MLflow line).

    python benchmarks/cli_speed.py [--runs 5] [--cold-runs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ADVISOR = [sys.executable, "-m", "advisor"]


def timed(args: list[str], env: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = subprocess.run(ADVISOR + args, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, r.returncode


def median_of(label: str, args: list[str], env: dict, runs: int, goal_s: float | None) -> float:
    times, codes = [], set()
    for _ in range(runs):
        t, rc = timed(args, env)
        times.append(t)
        codes.add(rc)
    med = statistics.median(times)
    verdict = "" if goal_s is None else f"  goal < {goal_s:.1f} s: {'MET' if med < goal_s else 'NOT MET'}"
    print(f"{label:<58} median {med:6.2f} s  (runs {', '.join(f'{t:.2f}' for t in times)}; "
          f"exit {sorted(codes)}){verdict}")
    return med


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold-runs", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="advisor-speed-")
    env = dict(os.environ, ADVISOR_CACHE_DIR=f"{work}/cache", ADVISOR_REPORTS_DIR=f"{work}/reports",
               MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db", COLUMNS="160")
    rec = ["recommend", "--task", "summarization", "--no-mlflow"]
    print(f"machine: {os.cpu_count()} logical cores; python {sys.version.split()[0]}")
    median_of("advisor --help", ["--help"], env, a.runs, 0.5)
    cold = []
    for i in range(a.cold_runs):
        cold_env = dict(env, ADVISOR_CACHE_DIR=f"{work}/cold-cache-{i}")
        t, rc = timed(rec, cold_env)
        cold.append(t)
        print(f"{'recommend --task summarization, cold (probing, default budget)':<58} "
              f"run {i + 1}: {t:6.2f} s (exit {rc})")
        env["ADVISOR_CACHE_DIR"] = cold_env["ADVISOR_CACHE_DIR"]  # warm runs reuse this cache
    if cold:
        med = statistics.median(cold)
        print(f"{'  cold median':<58} median {med:6.2f} s  goal < 60.0 s: {'MET' if med < 60 else 'NOT MET'}")
    median_of("recommend --task summarization, warm probe cache", rec, env, a.runs, 3.0)
    median_of("recommend --task summarization --no-probe", rec + ["--no-probe"], env, a.runs, None)
    median_of("recommend --task summarization (warm) + MLflow sqlite logging",
              ["recommend", "--task", "summarization"], env, max(1, a.runs // 2), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

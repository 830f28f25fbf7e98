"""Fuzz every input a user writes and print the counts per kind (cases, clean errors, crashes).

    python benchmarks/fuzz_inputs.py                    # 5,000 generated cases per input kind
    python benchmarks/fuzz_inputs.py --cases 200 --kind catalog --kind policy
    python benchmarks/fuzz_inputs.py --subprocess-sample 20   # also cross-check N cases per kind via `python -m advisor`

Each kind runs in its own child process (memory-capped, so an alias bomb cannot take the machine),
driving the real CLI entry point in-process (tests/fuzzing.py). A crash is a traceback, an
"internal error", an exception escaping run_cli, an exit code other than 0/1/2, exit 2 without
exactly one error line, or a case running past its time limit. Crashing cases are saved under
--save (default $TMPDIR/advisor-fuzz-crashes/<kind>/<n>/) with their files and case.json.
Exit status: 0 when no kind crashed, 1 otherwise.
"""  # noqa: E501  (line 5 is --help text: wrapping it would change what --help prints)

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def worker(kind: str, cases: int, seed: int, save: Path, sample: int, memory_mb: int) -> dict:
    """Run `cases` generated cases of one kind in this process; return the counts."""
    if memory_mb > 0:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
        except (ImportError, ValueError, OSError):
            pass
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from tests.fuzzing import CASE_TIMEOUT_S, run_case, run_case_subprocess, strategy

    counts: Counter = Counter()
    crashes: list[dict] = []
    reasons: Counter = Counter()
    slowest = [0.0, ""]
    times: list[float] = []
    err_len = [0]
    sub_counts: Counter = Counter()
    sub_mismatch: list[str] = []
    root = Path(tempfile.mkdtemp(prefix=f"advisor-fuzz-{kind}-"))
    import shutil

    shutil.rmtree(save / kind, ignore_errors=True)
    n = [0]

    @hseed(seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy(kind))
    def one(case):
        i = n[0]
        n[0] += 1
        folder = root / str(i)
        out = run_case(case, folder, timeout=CASE_TIMEOUT_S)
        counts["cases"] += 1
        times.append(out.seconds)
        if out.seconds > slowest[0]:
            slowest[:] = [out.seconds, " ".join(case.argv)[:120]]
        if out.crash:
            counts["crashes"] += 1
            reasons[out.crash[:160]] += 1
            dest = save / kind / str(i)
            case.save(dest)
            (dest / "outcome.txt").write_text(f"rc={out.rc}\ncrash={out.crash}\n--- stderr\n{out.stderr[-4000:]}\n"
                                              f"--- stdout\n{out.stdout[-2000:]}\n")
            crashes.append({"case": i, "crash": out.crash, "argv": case.argv, "saved": str(dest)})
        elif out.rc == 2:
            counts["clean_errors"] += 1
            err_len[0] = max(err_len[0], max(len(ln) for ln in out.stderr.splitlines() if ln.startswith("error: ")))
        elif out.rc == 1:
            counts["exit_1"] += 1
        else:
            counts["ok"] += 1
        if i < sample:  # the same case through a real subprocess: the outcome class must agree
            sub = run_case_subprocess(case, root / f"sub-{i}")
            sub_counts["cases"] += 1
            if sub.crash:
                sub_counts["crashes"] += 1
            if (sub.rc, bool(sub.crash)) != (out.rc, bool(out.crash)):
                sub_mismatch.append(f"case {i}: in-process rc={out.rc} crash={out.crash!r}; "
                                    f"subprocess rc={sub.rc} crash={sub.crash!r}; argv={case.argv}")
        import shutil

        shutil.rmtree(folder, ignore_errors=True)

    start = time.perf_counter()
    one()
    wall = time.perf_counter() - start
    times.sort()
    return {"kind": kind, "cases": counts["cases"], "ok": counts["ok"], "exit_1": counts["exit_1"],
            "clean_errors": counts["clean_errors"], "crashes": counts["crashes"],
            "crash_reasons": dict(reasons.most_common(10)), "crash_examples": crashes[:5],
            "wall_s": round(wall, 1), "median_case_ms": round(1000 * times[len(times) // 2], 1) if times else None,
            "slowest_case_s": round(slowest[0], 2), "slowest_argv": slowest[1],
            "longest_error_line": err_len[0],
            "subprocess_sample": dict(sub_counts), "subprocess_mismatches": sub_mismatch[:5]}


def main(argv: list[str] | None = None) -> int:
    from tests.fuzzing import KINDS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000, help="generated cases per kind [5000]")
    ap.add_argument("--kind", action="append", choices=KINDS, help="only these kinds (repeatable) [all]")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--subprocess-sample", type=int, default=10,
                    help="cases per kind also run through `python -m advisor` as a cross-check [10]")
    ap.add_argument("--save", type=Path, default=Path(tempfile.gettempdir()) / "advisor-fuzz-crashes")
    ap.add_argument("--memory-mb", type=int, default=3072, help="address-space cap of each worker [3072]")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        res = worker(args.worker, args.cases, args.seed, args.save, args.subprocess_sample, args.memory_mb)
        print("RESULT " + json.dumps(res))
        return 0

    kinds = args.kind or list(KINDS)
    results = []
    print(f"{'kind':<18}{'cases':>7}{'ok':>7}{'exit 1':>8}{'clean err':>10}{'crashes':>9}{'wall s':>8}{'ms/case':>9}"
          f"{'subproc':>9}", flush=True)
    for kind in kinds:
        cmd = [sys.executable, __file__, "--worker", kind, "--cases", str(args.cases), "--seed", str(args.seed),
               "--subprocess-sample", str(args.subprocess_sample), "--save", str(args.save),
               "--memory-mb", str(args.memory_mb)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            res = {"kind": kind, "cases": 0, "ok": 0, "exit_1": 0, "clean_errors": 0, "crashes": 1,
                   "crash_reasons": {f"worker died (exit {proc.returncode})": 1}, "wall_s": 0, "median_case_ms": None,
                   "subprocess_sample": {}, "subprocess_mismatches": [], "stderr": proc.stderr[-2000:]}
        else:
            res = json.loads(line[len("RESULT "):])
        results.append(res)
        sub = res.get("subprocess_sample") or {}
        print(f"{kind:<18}{res['cases']:>7}{res['ok']:>7}{res['exit_1']:>8}{res['clean_errors']:>10}{res['crashes']:>9}"
              f"{res['wall_s']:>8}{res['median_case_ms'] or 0:>9}"
              f"{str(sub.get('cases', 0)) + '/' + str(sub.get('crashes', 0)):>9}", flush=True)
        for reason, count in (res.get("crash_reasons") or {}).items():
            print(f"    {count} x {reason}", flush=True)
        for m in res.get("subprocess_mismatches") or []:
            print(f"    subprocess mismatch: {m}", flush=True)
        if res.get("stderr"):
            print("    worker stderr: " + res["stderr"][-500:], flush=True)
    total = {k: sum(r[k] for r in results) for k in ("cases", "ok", "exit_1", "clean_errors", "crashes")}
    print(f"{'TOTAL':<18}{total['cases']:>7}{total['ok']:>7}{total['exit_1']:>8}{total['clean_errors']:>10}"
          f"{total['crashes']:>9}")
    print("subproc = cases also run as `python -m advisor` / crashes among them; crashes saved under "
          f"{args.save}" if total["crashes"]
          else "subproc = cases also run as `python -m advisor` / crashes among them")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "total": total}, indent=1))
    return 1 if total["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())

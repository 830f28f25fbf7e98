"""Load: N concurrent `advisor recommend` processes logging to one MLflow server at once.

    python benchmarks/load_mlflow.py                      # 20 processes, sqlite and PostgreSQL backends
    python benchmarks/load_mlflow.py --backend sqlite --processes 40 --workers 2

For each backend a fresh `mlflow server` (127.0.0.1, free port, --workers W) is started on a fresh
store (a sqlite file, or a database in a throwaway PostgreSQL cluster: tests/pg_server.py). Then N
processes run at the same moment:

    advisor recommend --no-probe --target a10g-24gb --task summarization --prompt-tokens <1000+i>

with MLFLOW_TRACKING_URI=http://127.0.0.1:<port> and one shared reports folder. Each process's
--prompt-tokens is unique, so every run can be matched to the process that made it. A run counts
as complete when it is FINISHED and tagged advisor.complete=true, its report_id tag is the one in
that process's saved report, its params (task, targets, prompt_tokens, ...), tags and metrics
match that report, and its artifacts (every file of the saved report, and candidates.json) are there and
byte-identical to the files saved on disk. The experiment must hold exactly N runs.

Prints per backend: processes, exit codes, runs complete, wall time of the batch, per-process
p50/max, and retries (urllib3 "Retrying" lines in the clients' stderr, plus HTTP 5xx answers
and "database is locked" lines in the server log). Exit 0 when every backend got N of N.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_ARGS = ["recommend", "--no-probe", "--target", "a10g-24gb", "--task", "summarization"]
LOGGED = re.compile(r"logged to MLflow (?:as )?run ([0-9a-f]{32})")
SAVED = re.compile(r"report (?:saved|kept) at (\S+?)[;\s]")


@dataclass
class LoadResult:
    backend: str
    processes: int
    workers: int
    exit_codes: dict[str, int] = field(default_factory=dict)
    runs_in_experiment: int = 0
    complete: int = 0
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    process_p50_s: float = 0.0
    process_max_s: float = 0.0
    client_retries: int = 0
    server_5xx: int = 0
    server_locked: int = 0
    server_start_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.complete == self.processes == self.runs_in_experiment and not self.problems

    def line(self) -> str:
        codes = ",".join(f"{k}x{v}" for k, v in sorted(self.exit_codes.items()))
        return (f"{self.backend:<10} {self.processes:>3} procs  exit {codes:<8} runs {self.runs_in_experiment:>3}  "
                f"complete {self.complete:>3}/{self.processes:<3} wall {self.wall_s:6.1f} s  "
                f"per-process p50 {self.process_p50_s:5.1f} s max {self.process_max_s:5.1f} s  "
                f"retries {self.client_retries} (server 5xx {self.server_5xx}, db locked {self.server_locked})")


def _env(uri: str, reports: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "ADVISOR_"))}
    env.update({"MLFLOW_TRACKING_URI": uri, "ADVISOR_REPORTS_DIR": str(reports), "ADVISOR_CACHE_DIR": str(cache),
                "ADVISOR_HARDWARE_FIXTURE": "", "PYTHONUNBUFFERED": "1"})
    return env


def run_batch(uri: str, root: Path, n: int, *, args: list[str] | None = None, experiment: str = "load-test",
              timeout: float = 600) -> tuple[list[dict], float]:
    """Start n advisor processes at once; wait for all. Returns one dict per process and the wall time."""
    args = args or DEFAULT_ARGS
    reports, cache = root / "reports", root / "cache"
    env = _env(uri, reports, cache)
    procs = []
    start = time.perf_counter()
    for i in range(n):
        out = open(root / f"proc-{i}.out", "wb")
        err = open(root / f"proc-{i}.err", "wb")
        cmd = [sys.executable, "-m", "advisor", *args, "--prompt-tokens", str(1000 + i), "--experiment", experiment]
        procs.append((i, subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=root),
                      time.perf_counter(), out, err))
    results = []
    for i, p, t0, out, err in procs:
        try:
            rc = p.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        out.close()
        err.close()
        results.append({"i": i, "rc": rc, "seconds": time.perf_counter() - t0,
                        "stderr": (root / f"proc-{i}.err").read_text(errors="replace")})
    return results, time.perf_counter() - start


def verify(uri: str, results: list[dict], experiment: str = "load-test") -> tuple[int, int, list[str]]:
    """(runs in the experiment, complete and correctly matched runs, problems)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    problems: list[str] = []
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return 0, 0, [f"experiment '{experiment}' was never created"]
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    by_id = {r.info.run_id: r for r in runs}
    seen_reports: dict[str, str] = {}
    complete = 0
    for res in results:
        i, stderr = res["i"], res["stderr"]
        tag = f"process {i}"
        m = LOGGED.search(stderr)
        folder_m = SAVED.search(stderr)
        if res["rc"] not in (0, 1):
            problems.append(f"{tag}: exit {res['rc']}: {stderr.strip().splitlines()[-1:] if stderr.strip() else ''}")
            continue
        if not m or not folder_m:
            problems.append(f"{tag}: no 'logged to MLflow run' / 'report saved at' line: {stderr[-300:]!r}")
            continue
        run = by_id.get(m.group(1))
        folder = Path(folder_m.group(1))
        if run is None:
            problems.append(f"{tag}: run {m.group(1)} not in the experiment")
            continue
        manifest = json.loads((folder / "manifest.json").read_text())
        report_id = str(manifest["report_id"])
        p, t, metrics = run.data.params, run.data.tags, run.data.metrics
        want = {"status": "FINISHED", "complete": "true", "report_id": report_id, "prompt_tokens": str(1000 + i),
                "task": "summarization", "targets": "a10g-24gb"}
        got = {"status": run.info.status, "complete": t.get("advisor.complete"),
               "report_id": t.get("advisor.report_id"),
               "prompt_tokens": p.get("prompt_tokens"), "task": p.get("task"), "targets": p.get("targets")}
        bad = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        if bad:
            problems.append(f"{tag}: run {run.info.run_id} mismatched (got, want): {bad}")
            continue
        if report_id in seen_reports:
            problems.append(f"{tag}: report {report_id} logged twice ({seen_reports[report_id]}, {run.info.run_id})")
            continue
        seen_reports[report_id] = run.info.run_id
        kind_file = folder / f"{manifest['kind']}.json"
        payload = json.loads(kind_file.read_text()) if kind_file.exists() else None
        primary = ((payload or {}).get("targets") or [{}])[0]
        if primary.get("pick"):
            if not metrics:
                problems.append(f"{tag}: run {run.info.run_id} has a pick but no metrics")
                continue
            if t.get("advisor.pick") != primary["pick"].get("key"):
                problems.append(f"{tag}: pick tag {t.get('advisor.pick')!r} != report's {primary['pick'].get('key')!r}")
                continue
        expected = set(manifest.get("files") or []) - {"manifest.json"}
        if (payload or {}).get("candidates"):
            expected.add("candidates.json")
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        if expected - names:
            problems.append(f"{tag}: run {run.info.run_id} lacks artifacts {sorted(expected - names)} "
                            f"(has {sorted(names)})")
            continue
        with tempfile.TemporaryDirectory() as d:
            local = Path(client.download_artifacts(run.info.run_id, "", d))
            differ = [f for f in sorted(expected - {"candidates.json"})
                      if (local / f).read_bytes() != (folder / f).read_bytes()]
            if differ:
                problems.append(f"{tag}: run {run.info.run_id} artifacts {differ} differ from the files in {folder}")
                continue
        complete += 1
    stray = [r.info.run_id for r in runs if r.info.run_id not in seen_reports.values()]
    if stray:
        problems.append(f"{len(stray)} run(s) in the experiment that no process reported: {stray[:5]}")
    return len(runs), complete, problems


def _server_counts(log: Path) -> tuple[int, int]:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0, 0
    fivexx = len(re.findall(r'" 5\d\d |HTTP/1\.[01]" 5\d\d|status[=: ]+5\d\d', text))
    locked = text.count("database is locked")
    return fivexx, locked


def load_test(backend: str, root: Path, *, processes: int = 20, workers: int = 4, pg=None,
              args: list[str] | None = None) -> LoadResult:
    """One backend, end to end: store, server, the batch, verification."""
    from tests.mlflow_server import stop_server
    from tests.pg_server import create_database, start_mlflow

    root.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        store = f"sqlite:///{root / 'mlflow.db'}"
    elif backend == "postgresql":
        if pg is None:
            raise ValueError("postgresql needs a running cluster (tests.pg_server.start_postgres)")
        store = create_database(pg, f"mlflow_load_{int(time.time() * 1000) % 10**9}")
    else:
        raise ValueError(backend)
    t0 = time.perf_counter()
    server = start_mlflow(store, root / "server", workers=workers)
    result = LoadResult(backend, processes, workers, server_start_s=round(time.perf_counter() - t0, 1))
    try:
        results, wall = run_batch(server.uri, root, processes, args=args)
        result.wall_s = round(wall, 2)
        secs = sorted(r["seconds"] for r in results)
        result.process_p50_s = round(statistics.median(secs), 2)
        result.process_max_s = round(secs[-1], 2)
        for r in results:
            result.exit_codes[str(r["rc"])] = result.exit_codes.get(str(r["rc"]), 0) + 1
            result.client_retries += len(re.findall(r"Retrying \(|retrying", r["stderr"]))
        result.runs_in_experiment, result.complete, result.problems = verify(server.uri, results)
    finally:
        stop_server(server)
        result.server_5xx, result.server_locked = _server_counts(root / "server" / "server.log")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    ap.add_argument("--processes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4, help="mlflow server --workers [4]")
    ap.add_argument("--keep", type=Path, help="keep logs and stores here (default: a temp folder, removed)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    backends = args.backend or ["sqlite", "postgresql"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="advisor-load-"))
    results: list[LoadResult] = []
    pg = None
    try:
        for backend in backends:
            if backend == "postgresql":
                from tests.pg_server import missing_reason, start_postgres

                reason = missing_reason()
                if reason:
                    print(f"postgresql: skipped: {reason}")
                    continue
                pg = start_postgres(root / "postgres")
            res = load_test(backend, root / backend, processes=args.processes, workers=args.workers, pg=pg)
            results.append(res)
            print(res.line(), flush=True)
            for p in res.problems[:10]:
                print(f"    problem: {p}")
    finally:
        if pg is not None:
            from tests.pg_server import stop_postgres

            stop_postgres(pg)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in results], indent=1))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

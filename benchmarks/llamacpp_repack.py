"""llama.cpp's runtime Q4_0 repacking on x86, measured: the same build with and without it, on this CPU.

Since b4282 (PR #10446, 2024-12-07) llama.cpp's CPU backend repacks Q4_0 weights at load into an 8-row
interleaved layout (Q4_0_8x8) with AVX2 GEMM/GEMV kernels. No published fit row ran such a build (the
Sep-2024 x86 rows predate it), so the factor the model applies (catalog/runtimes.yaml, llama.cpp
`cpu.repack`) is measured here: `llama-bench` of one llama.cpp source compiled twice, with
-DGGML_CPU_AARCH64=ON (the default) and OFF, on a synthetic GGUF of a catalog model (random Q4_0 blocks:
the speed depends on shapes and types, not on values). The ratio of the two builds' pp512 and tg128 rates
per thread count is the factor; a ratio is a property of the kernels, so it is kept, not the absolute
rates of this 2-core VM.

    python benchmarks/llamacpp_repack.py --bench-on DIR/llama-bench --bench-off DIR/llama-bench \
        [--model llama-3.2-1b] [--threads 1,2] [--record] [--json]
    python benchmarks/llamacpp_repack.py --show      # the recorded rows and their ratios

Without the binaries it prints what it needs and exits 0 (CI builds no llama.cpp). --record writes
benchmarks/data/llamacpp-repack-measured.json with the conditions (CPU, flags, build, commands).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

RECORD = Path(__file__).parent / "data" / "llamacpp-repack-measured.json"
# A llama-layout model small enough (about 26 MB of Q4_0) to stay in a server CPU's L3 cache: its decode is
# bound by the kernels' arithmetic, not by DRAM, so its ratio is the repacked kernels' own
IN_CACHE = {"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 64,
            "intermediate_size": 4096, "num_hidden_layers": 3, "vocab_size": 4096, "tie_word_embeddings": False}


def run_bench(binary: list[str], gguf: Path, threads: list[int], prompt: int, gen: int, reps: int) -> list[dict]:
    """llama-bench's JSON rows (one per test and thread count); `binary`: the command and its own flags."""
    cmd = [*binary, "-m", str(gguf), "-p", str(prompt), "-n", str(gen), "-t", ",".join(map(str, threads)),
           "-r", str(reps), "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout)


def summarise(rows: list[dict]) -> dict[tuple[str, int], tuple[float, float]]:
    """(test, threads) -> (mean, standard deviation) of tokens/s over the repetitions; test 'pp' or 'tg'."""
    got = {}
    for r in rows:
        test = "pp" if r.get("n_prompt", 0) and not r.get("n_gen", 0) else "tg"
        got[(test, int(r["n_threads"]))] = (float(r["avg_ts"]), float(r.get("stddev_ts", 0.0)))
    return got


def ratios(on: dict[tuple[str, int], tuple[float, float]],
           off: dict[tuple[str, int], tuple[float, float]]) -> dict[str, float]:
    """Repacked over plain mean rate per test and thread count ('pp@t1', 'tg@t2', ...), for keys both have."""
    return {f"{test}@t{t}": on[(test, t)][0] / off[(test, t)][0] for (test, t) in sorted(on) if (test, t) in off}


def summary(rows: list[dict]) -> dict[str, float]:
    """The median ratio per test and thread count over the rows (models)."""
    keys = sorted({k for r in rows for k in r["ratio"]})
    return {k: statistics.median(r["ratio"][k] for r in rows if k in r["ratio"]) for k in keys}


def show(data: dict) -> None:
    print(f"measured {data['measured_at']} on {data['machine']['cpu']} ({data['machine']['physical_cores']} cores)")
    print(f"build: {data['build']['source']}; flags {data['build']['cmake_flags']}")
    print("  median over the models: " + ", ".join(f"{k} {v:.2f}x" for k, v in data["summary"].items()))
    for row in data["rows"]:
        line = ", ".join(f"{k} {v:.2f}x" for k, v in row["ratio"].items())
        print(f"  {row['model']} {row['format']} (pp{row['prompt']}, tg{row['gen']}, {row['rounds']} rounds of "
              f"{row['reps']} reps): {line}")
        for k in row["ratio"]:
            print(f"    {k} per round: " + ", ".join(f"{r[k]:.2f}" for r in row["ratio_per_round"]))
        for side in ("repack_on", "repack_off"):
            for i, rnd in enumerate(row[side]):
                rates = ", ".join(f"{k} {v:.2f} ± {sd:.2f}" for k, (v, sd) in rnd.items())
                print(f"    {side} round {i + 1} (t/s): {rates}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-on", help="llama-bench built with -DGGML_CPU_AARCH64=ON (runtime repacking)")
    ap.add_argument("--bench-off", help="the same source's llama-bench built with -DGGML_CPU_AARCH64=OFF")
    ap.add_argument("--bench", help="a newer llama-bench that switches repacking itself (--repack 1 / --repack 0)")
    ap.add_argument("--source", default="llama.cpp (say which commit)", help="the source both were built from")
    ap.add_argument("--cmake-flags", default="", help="the cmake flags both builds share")
    ap.add_argument("--model", action="append",
                    help="catalog model id(s), or 'in-cache' (a 26 MB llama layout, L3-resident); default llama-3.2-1b")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="llama-bench repetitions per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds alternating the two builds; the ratio is their median")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--show", action="store_true", help="print the recorded measurement and exit")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    if args.show:
        for data in json.loads(RECORD.read_text())["measurements"]:
            show(data)
        return 0
    if args.bench and Path(args.bench).is_file():
        bench_on, bench_off = [args.bench, "--repack", "1"], [args.bench, "--repack", "0"]
        switch = ("--repack 1", "--repack 0")
    elif all(b and Path(b).is_file() for b in (args.bench_on, args.bench_off)):
        bench_on, bench_off = [args.bench_on], [args.bench_off]
        switch = ("-DGGML_CPU_AARCH64=ON", "-DGGML_CPU_AARCH64=OFF")
    else:
        print("llamacpp_repack: needs --bench-on and --bench-off (two llama-bench binaries of one llama.cpp "
              "source built with -DGGML_CPU_AARCH64=ON and OFF) or --bench (a build with --repack); nothing "
              "measured. The recorded rows: --show")
        return 0

    import psutil
    from llamacpp_local import cpu_name

    from advisor.catalog.loader import get_catalog
    from advisor.probe import gguf_synth

    cat = get_catalog()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="advisor-repack-") as tmp:
        for model in args.model or ["llama-3.2-1b"]:
            if model == "in-cache":
                arch = cat.model("llama-3.2-1b").architecture.model_copy(update=IN_CACHE)
            else:
                arch = cat.model(model).architecture
            gguf = Path(tmp) / f"{model}-q4_0.gguf"
            gguf_synth.write(arch, "q4_0", gguf)
            # a VM's speed drifts over minutes: alternate the two builds round by round (on, off; off, on; ...)
            # and keep each round's ratio, so a drift shows as spread instead of as a bias
            rounds = []
            for i in range(args.rounds):
                order = (bench_on, bench_off) if i % 2 == 0 else (bench_off, bench_on)
                got = {id(b): summarise(run_bench(b, gguf, threads, args.prompt, args.gen, args.reps)) for b in order}
                rounds.append((got[id(bench_on)], got[id(bench_off)]))
            size = gguf.stat().st_size
            gguf.unlink()
            per_round = [ratios(on, off) for on, off in rounds]
            row = {"model": model, "format": "q4_0", "gguf_bytes": size, "prompt": args.prompt, "gen": args.gen,
                   "reps": args.reps, "rounds": args.rounds,
                   "repack_on": [{f"{k}@t{t}": list(v) for (k, t), v in sorted(on.items())} for on, _ in rounds],
                   "repack_off": [{f"{k}@t{t}": list(v) for (k, t), v in sorted(off.items())} for _, off in rounds],
                   "ratio_per_round": per_round,
                   "ratio": {k: statistics.median(r[k] for r in per_round) for k in per_round[0]}}
            rows.append(row)
    data = {"measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu": cpu_name(), "physical_cores": psutil.cpu_count(logical=False),
                        "logical_cpus": psutil.cpu_count()},
            "build": {"source": args.source, "cmake_flags": args.cmake_flags,
                      "on": switch[0], "off": switch[1]},
            "summary": summary(rows), "rows": rows}
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        show(data)
    if args.record:
        # one measurement per build source; a model measured again replaces its row, the others stay
        kept = json.loads(RECORD.read_text())["measurements"] if RECORD.exists() else []
        old = next((m for m in kept if m["build"]["source"] == args.source), None)
        if old is not None:
            models = {r["model"] for r in rows}
            data["rows"] = [r for r in old["rows"] if r["model"] not in models] + rows
            data["summary"] = summary(data["rows"])
        kept = [m for m in kept if m["build"]["source"] != args.source] + [data]
        RECORD.write_text(json.dumps({"measurements": kept}, indent=1) + "\n")
        print(f"recorded in {RECORD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

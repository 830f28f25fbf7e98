"""llama.cpp on this machine: the engine probe's measurements next to the spec estimate, per model and format.

For each (model, format, threads) of the plan, `advisor.probe.llamacpp_engine` times llama.cpp itself on a
synthetic GGUF of the model (prefill of --prompt tokens in 512-token batches, then single-token decode
steps) and `advisor.estimate` gives the spec figure for the same request with the llama.cpp runtime on the
local device (no probe). It prints both and the spec's error, with the median and 90th percentile.

These are one machine's measurements, not published ones: they say how far the spec model's CPU constants
(fitted on three published CPU rows) are from the engine here, and with --record they are kept in
benchmarks/data/llamacpp-local-measured.json with their conditions (CPU, flags, threads, llama-cpp-python
version, which buffers ran) as measured ground truth for the next person. Needs the [engine] extra.

    python benchmarks/llamacpp_local.py [--plan quick|full] [--prompt 256] [--record] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serving_accuracy import pct  # noqa: E402  (the same linear-interpolation percentile)

RECORD = Path(__file__).parent / "data" / "llamacpp-local-measured.json"
PLANS = {
    "quick": [("qwen2.5-0.5b", "q4_0", None), ("llama-3.2-1b", "q4_0", None)],
    "full": [("qwen2.5-0.5b", "q4_0", None), ("qwen2.5-0.5b", "q8_0", None), ("qwen2.5-0.5b", "f16", None),
             ("qwen2.5-0.5b", "q4_0", 1), ("llama-3.2-1b", "q4_0", None), ("llama-3.2-1b", "q8_0", None),
             ("llama-3.2-1b", "q4_0", 1), ("qwen2.5-0.5b", "q4_k_m", None), ("llama-3.2-1b", "q4_k_m", None),
             ("llama-3.1-8b", "q4_0", None)],
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", choices=sorted(PLANS), default="full")
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens (pp test)")
    ap.add_argument("--steps", type=int, default=16, help="decode steps timed (tg test)")
    ap.add_argument("--record", action="store_true", help="write the rows to data/llamacpp-local-measured.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import psutil

    from advisor.catalog.loader import get_catalog
    from advisor.probe import gguf_synth
    from advisor.probe import llamacpp_engine as le

    why = le.missing()
    if why:
        print(f"not run: {why}")
        return 0
    cat = get_catalog(())
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    rows = []
    for mid, fmt, threads in PLANS[args.plan]:
        entry = cat.model(mid)
        n_threads = threads or cores
        try:
            m, d = le.probe_engine(entry.arch, fmt, model_id=mid, threads=n_threads, prompt=args.prompt,
                                   steps=args.steps, budget_s=120)
        except (le.EngineProbeRefused, ValueError) as exc:
            print(f"{mid} {fmt} t{n_threads}: not measured: {exc}", file=sys.stderr)
            continue
        catalog_fmt = gguf_synth.GGUF_TO_CATALOG.get(fmt, fmt)
        spec_prefill, spec_decode = spec_figures(cat, entry, catalog_fmt, args.prompt, args.steps, n_threads)
        row = {"id": f"local-{mid}-{fmt}-t{n_threads}-p{args.prompt}", "model": mid, "format": fmt,
               "threads": n_threads, "prompt_tokens": args.prompt, "decode_steps": args.steps,
               "prefill_ms": m.prefill_ms.p50, "decode_ms_per_token": m.decode_ms_per_token.p50,
               "prefill_ms_spread": [m.prefill_ms.min, m.prefill_ms.max],
               "decode_ms_spread": [m.decode_ms_per_token.min, m.decode_ms_per_token.max],
               "layers_timed": d.layers_timed, "extrapolated": d.extrapolated, "default_buffers": d.extra_bufts,
               "spec_prefill_ms": spec_prefill, "spec_decode_ms_per_token": spec_decode,
               "notes": d.notes}
        row["prefill_error"] = (row["spec_prefill_ms"] - row["prefill_ms"]) / row["prefill_ms"]
        measured_decode = row["decode_ms_per_token"]
        row["decode_error"] = (row["spec_decode_ms_per_token"] - measured_decode) / measured_decode
        rows.append(row)
        print(f"{row['id']:40} prefill {row['prefill_ms']:9.1f} ms (spec {row['spec_prefill_ms']:9.1f}, "
              f"{100 * row['prefill_error']:+6.1f}%)  decode {row['decode_ms_per_token']:7.2f} ms/token "
              f"(spec {row['spec_decode_ms_per_token']:7.2f}, {100 * row['decode_error']:+6.1f}%)"
              f"{'  [extrapolated ' + str(d.layers_timed) + ']' if d.extrapolated else ''}", flush=True)
    if not rows:
        print("nothing measured")
        return 1
    summary = {}
    for kind in ("prefill", "decode"):
        errs = [abs(r[f"{kind}_error"]) for r in rows]
        summary[kind] = {"n": len(errs), "median": statistics.median(errs), "p90": pct(errs, 0.9)}
    machine = {"cpu": cpu_name(), "physical_cores": cores, "logical_cpus": psutil.cpu_count(),
               "memory_gb": round(psutil.virtual_memory().total / 1e9, 1), "system_info": d.system_info,
               "llama_cpp_python": d.llama_cpp_python, "python": platform.python_version()}
    doc = {"measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
           "rows": rows, "summary": summary}
    for kind, s in summary.items():
        print(f"spec vs llama.cpp here, {kind}: n={s['n']} median |error| {100 * s['median']:.1f}%, "
              f"p90 {100 * s['p90']:.1f}%")
    print(f"machine: {machine['cpu']}, {cores} physical cores, llama-cpp-python {machine['llama_cpp_python']}")
    if args.json:
        print(json.dumps(doc, indent=1))
    if args.record:
        RECORD.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"recorded {len(rows)} rows in {RECORD}")
    return 0


def spec_figures(cat, entry, fmt_id: str, prompt: int, steps: int, threads: int) -> tuple[float, float]:
    """The spec model's prefill (ms) and decode (ms/token at the timed steps' mean context) for llama.cpp on
    this machine with `threads` threads: the latency Model `advisor estimate --runtime llama.cpp` binds,
    asked with llama.cpp's -t (the estimate API itself assumes every core)."""
    from advisor.estimate import device as devmod
    from advisor.estimate.formats import weight_terms
    from advisor.estimate.latency import Model, spec_rates
    from advisor.hardware.profile import detect_profile

    rt, fmt = cat.runtimes["llama.cpp"], cat.formats[fmt_id]
    device = devmod.from_profile(detect_profile(include_torch=False), cat.targets, rt)
    rates = spec_rates(device, fmt, rt, threads=threads, decode_threads=threads)
    model = Model(entry.arch, fmt, sum(weight_terms(entry.arch, fmt).values()), 2, rt, rates)
    return model.prefill_ms(1, prompt), model.step_ms(1, prompt + steps / 2)


if __name__ == "__main__":
    sys.exit(main())

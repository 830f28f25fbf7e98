"""How NVIDIA's aiconfigurator (an optional, never required, estimator built on kernel tables measured per
GPU, engine and engine version) compares with the project's own serving model on the published rows.

Issue 14 asks whether aiconfigurator-core is worth offering as an optional `profiled` basis. This script
asks aiconfigurator's own estimator (aiconfigurator.cli.api.cli_estimate, its public single-point API)
for every row of benchmarks/data/published-serving.json whose runtime it models (TensorRT-LLM, vLLM,
SGLang), on the aiconfigurator system, backend, version and model config named per row, and prints it
next to the project's prediction (`serving_accuracy.py --json`) with the row's fit/holdout split.

Scenarios, per kind of row (as serving_accuracy.py reads them; published-serving.README.md):
  - TensorRT-LLM "1st token latency" (batch 1, 1 output token): mode static_ctx, its TTFT;
  - TensorRT-LLM peak throughput (one static batch): mode static, tokens/s per GPU (ours reads it per GPU);
  - vLLM benchmark_latency (one static batch): mode static, its request latency;
  - SGLang / vLLM at 4 requests/s (ShareGPT): mode agg (in-flight batching) at the concurrency Little's law
    gives with aiconfigurator's own request latency, its TTFT and TPOT;
  - SGLang / vLLM offline (5000 requests at once): mode agg at 256 concurrent requests, tokens/s.
Every other argument is aiconfigurator's default (database mode SILICON, its current table version).

    python benchmarks/aiconfigurator_eval.py [--json] [--ours-python PATH]

Needs `pip install aiconfigurator-core aiconfigurator` in a venv that also has this project installed;
without aiconfigurator it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import serving_accuracy as sa  # noqa: E402  (its rows, ShareGPT lengths, split and percentile)

BACKENDS = {"tensorrt-llm": "trtllm", "vllm": "vllm", "sglang": "sglang"}
# Row hardware -> aiconfigurator system, and what is assumed. The same assumptions as serving_accuracy.HARDWARE.
SYSTEMS = {"h100-sxm-80gb": ("h100_sxm", ""),
           "h100-unknown-80gb": ("h100_sxm", "form factor not stated: SXM assumed (as ours)"),
           "a100-80gb": ("a100_sxm", ""),
           "a100-unknown": ("a100_sxm", "memory and form factor not stated: 80 GB SXM assumed (as ours)"),
           "l40s-48gb": ("l40s", ""),
           "a100-pcie-80gb": ("a100_pcie", ""), "h100-pcie-80gb": ("h100_pcie", "")}
OPEN_LOOP_RATE = 4.0        # requests/s of the sglang030-/vllm060-*-rps4 rows
OFFLINE_CONCURRENCY = 256   # vLLM 0.6.0's default max_num_seqs; SGLang's cap is its KV pool (ASSUMPTION: same)


def aiconfigurator_version() -> str | None:
    try:
        import aiconfigurator.cli.api  # noqa: F401
    except ImportError:
        return None
    return version("aiconfigurator-core")


def shipped_databases() -> dict[str, dict[str, list[str]]]:
    """System -> backend -> the table versions aiconfigurator can be asked for (its version slots)."""
    from aiconfigurator_core.sdk.perf_database import get_supported_databases
    return {s: dict(b) for s, b in sorted(get_supported_databases().items())}


# --- model configs ------------------------------------------------------------------------------------------

def model_source(row: dict, workdir: Path) -> tuple[str, str] | str:
    """The model path to give aiconfigurator and a label, or why there is none. Llama-2 ships no config in
    aiconfigurator: its shapes (benchmarks/data/serving-models.yaml) are put into the shipped Llama-3.1-8B
    config. Mixtral's config ships but is not in its built-in list (by id it would go to the network)."""
    import importlib.resources

    import yaml

    shipped = importlib.resources.files("aiconfigurator_core") / "model_configs"
    hf = row.get("model_hf_id") or ""
    if hf.startswith("meta-llama/Llama-3.1-") and hf.endswith("-Instruct"):
        size = hf.split("-")[-2]
        return f"meta-llama/Meta-Llama-3.1-{size}", f"Meta-Llama-3.1-{size} (shipped base config, same shapes)"
    if hf == "mistralai/Mixtral-8x7B-Instruct-v0.1":
        local = workdir / "mixtral-8x7b"
        local.mkdir(exist_ok=True)
        (local / "config.json").write_text((shipped / "mistralai--Mixtral-8x7B-v0.1_config.json").read_text())
        return str(local), "Mixtral-8x7B-v0.1 (shipped config, same shapes as Instruct)"
    if hf.startswith("meta-llama/Llama-2-"):
        mid = {"meta-llama/Llama-2-7b-hf": "bench-llama-2-7b", "meta-llama/Llama-2-70b-hf": "bench-llama-2-70b"}.get(hf)
        if mid is None:
            return f"no config for {hf}"
        arch = next(m for m in yaml.safe_load(sa.MODELS.read_text())["models"] if m["id"] == mid)["architecture"]
        config = json.loads((shipped / "meta-llama--Meta-Llama-3.1-8B_config.json").read_text())
        config.update({k: v for k, v in arch.items() if k != "model_type"}, torch_dtype="float16", rope_scaling=None)
        local = workdir / mid
        local.mkdir(exist_ok=True)
        (local / "config.json").write_text(json.dumps(config))
        return str(local), f"{mid} shapes in the Llama-3.1 config (no Llama-2 config ships)"
    return f"model {row['model']} has no aiconfigurator config here"


def quant_args(row: dict) -> dict | str:
    """aiconfigurator's quant modes for the row's format. It has one 16-bit mode (bfloat16): FP16 runs the
    same tensor-core rate. FP8 rows carry an FP8 KV cache where the row says so, and on every TensorRT-LLM
    row (its engines were built with --fp8_kv_cache: serving_accuracy.py reads them the same way)."""
    fmt = row["format"]
    if fmt in ("fp16", "bf16"):
        return {}
    if fmt == "fp8":
        fp8_kv = "fp8_kv_cache" in row["notes"] or row["runtime"] == "tensorrt-llm"
        return {"gemm_quant_mode": "fp8", **({"kvcache_quant_mode": "fp8"} if fp8_kv else {})}
    return f"format {fmt} not mapped"


# --- estimates ----------------------------------------------------------------------------------------------

def measured_share(result) -> float | None:
    """The share of the estimated time that came from measured ('silicon') kernel rows rather than formulas."""
    s = result.summary
    parts: list[tuple[float, str]] = []
    if result.per_ops_data and result.per_ops_source:     # agg: per step kind, times the steps of each
        sched = result.per_ops_data.get("scheduling", {})
        for step, count in (("mix_step", "num_mix_steps"), ("genonly_step", "num_genonly_steps")):
            src = result.per_ops_source.get(step, {})
            for op, ms in result.per_ops_data.get(step, {}).items():
                parts.append((ms * sched.get(count, 1.0), src.get(op, "?")))
    elif s is not None:                                   # static: whole context and generation phases
        for lat, src in ((s.get_context_latency_dict(), s.get_context_source_dict()),
                         (s.get_generation_latency_dict(), s.get_generation_source_dict())):
            parts += [(ms, src.get(op, "?")) for op, ms in lat.items()]
    total = sum(ms for ms, _ in parts)
    return sum(ms for ms, src in parts if src == "silicon") / total if total else None


def estimate_row(row: dict, workdir: Path) -> dict:
    """aiconfigurator's figures for every metric serving_accuracy checks on this row, or why there are none."""
    from aiconfigurator.cli.api import cli_estimate
    from aiconfigurator_core.sdk.perf_database import get_latest_database_version

    backend = BACKENDS.get(row["runtime"])
    if backend is None:
        return {"no_data": f"runtime {row['runtime']}: aiconfigurator models only TensorRT-LLM, vLLM and SGLang"}
    system, gpu_note = SYSTEMS.get(row["hardware"], (None, ""))
    if system is None:
        return {"no_data": f"GPU {row['hardware']}: no aiconfigurator system"}
    version = get_latest_database_version(system=system, backend=backend)
    if version is None:
        return {"no_data": f"{system}/{backend}: no measured tables (estimate-only system spec)"}
    model = model_source(row, workdir)
    quant = quant_args(row)
    if isinstance(model, str) or isinstance(quant, str):
        return {"no_data": model if isinstance(model, str) else quant}
    path, model_label = model
    tp = max(1, row["tensor_parallel"])
    moe = {"moe_tp_size": tp, "moe_ep_size": 1} if "Mixtral" in row["model"] else {}   # vLLM shards experts by TP

    def run(mode, batch, isl, osl):
        return cli_estimate(path, system, mode=mode, backend_name=backend, isl=isl, osl=osl, batch_size=batch,
                            tp_size=tp, **moe, **quant)

    m, b, p, n = row["metrics"], row["concurrency"], row["input_tokens"], row["output_tokens"]
    got, notes = {}, []
    try:
        if backend == "trtllm":
            if m["ttft_ms"] is not None:
                r = run("static_ctx", b, p, 1)
                got["ttft_ms"] = r.ttft
            else:
                r = run("static", b, p, n)
                got["output_tokens_per_s_total"] = r.tokens_per_second_per_gpu
        elif b is not None:                      # vLLM benchmark_latency: one static batch
            r = run("static", b, p, n)
            got["e2e_ms"] = r.request_latency
        elif m["ttft_ms"] is not None:           # open loop: concurrency = rate x latency, from its own latency
            c, seen = 1, set()
            while c not in seen:
                seen.add(c)
                r = run("agg", c, sa.SHAREGPT_INPUT, sa.SHAREGPT_OUTPUT)
                c = max(1, round(OPEN_LOOP_RATE * r.request_latency / 1e3))
            got["ttft_ms"], got["tpot_ms"] = r.ttft, r.tpot
            notes.append(f"agg at concurrency {r.batch_size} (Little's law at {OPEN_LOOP_RATE:g} req/s)")
        else:                                    # offline: every request queued at once
            r = run("agg", OFFLINE_CONCURRENCY, sa.SHAREGPT_INPUT, sa.SHAREGPT_OUTPUT)
            got["output_tokens_per_s_total"] = r.tokens_per_second
            notes.append(f"agg at concurrency {OFFLINE_CONCURRENCY}")
    except Exception as e:                       # its refusals (missing tables, OOM) are findings, not crashes
        return {"no_data": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    if r.kv_cache_warning:
        notes.append("aiconfigurator: batch exceeds its KV-cache estimate")
    published_version = str(row.get("runtime_version", "")).split(" (")[0]
    notes.insert(0, f"version mismatch: published {published_version}, tables {version}")
    if gpu_note:
        notes.insert(1, gpu_note)
    return {"values": got, "system": system, "backend": backend, "version": r.backend_version, "model": model_label,
            "quant": f"gemm {r.raw.get('gemm')}, kv {r.raw.get('kvcache')}, fmha {r.raw.get('fmha')}",
            "measured_share": measured_share(r), "notes": notes}


# --- ours ---------------------------------------------------------------------------------------------------

def our_checks(python: str) -> dict[tuple[str, str], dict]:
    """(row, metric) -> the project's check (predicted, published, split), from serving_accuracy.py --json
    (which exits 1 when a goal is not met: the JSON is still complete)."""
    proc = subprocess.run([python, str(Path(sa.__file__)), "--json"], capture_output=True, text=True)
    try:
        checks = json.loads(proc.stdout)["checks"]
    except (json.JSONDecodeError, KeyError):
        sys.exit(f"serving_accuracy.py --json failed (rc {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return {(c["row"], c["metric"]): c for c in checks}


def summary(pairs: list[dict]) -> dict:
    out = {}
    for split in ("holdout", "all"):
        mine = [p for p in pairs if split in ("all", p["split"])]
        out[split] = {"n": len(mine)}
        for who in ("ours", "aiconfigurator"):
            errs = [abs(p[f"{who}_error"]) for p in mine]
            out[split][who] = {"median": statistics.median(errs) if errs else math.nan, "p90": sa.pct(errs, 0.9)}
        closer = [abs(p["aiconfigurator_error"]) < abs(p["ours_error"]) for p in mine]
        out[split]["aiconfigurator_closer"] = int(sum(closer))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="rows and summary as JSON")
    ap.add_argument("--ours-python", default=sys.executable,
                    help="the Python that runs serving_accuracy.py (a venv with this project installed)")
    args = ap.parse_args(argv)
    version = aiconfigurator_version()
    if version is None:
        print("aiconfigurator is not installed (optional: pip install aiconfigurator-core aiconfigurator); "
              "nothing to compare")
        return 0
    logging.disable(logging.WARNING)       # its per-call lane and fallback warnings; its choices are reported
    ours = our_checks(args.ours_python)
    rows = json.loads(sa.PUBLISHED.read_text())["rows"]
    splits = sa.split_rows(rows)
    table, no_data = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            est = estimate_row(row, Path(tmp))
            if "no_data" in est:
                no_data.append({"row": row["id"], "runtime": row["runtime"], "why": est["no_data"]})
                continue
            for metric, value in est["values"].items():
                value = float(value)                  # its agg figures are numpy scalars
                mine = ours.get((row["id"], metric))
                published = row["metrics"][metric]
                table.append({"row": row["id"], "metric": metric, "published": published,
                              "ours": mine["predicted"] if mine else None,
                              "ours_error": mine["error"] if mine else None,
                              "aiconfigurator": value, "aiconfigurator_error": (value - published) / published,
                              "split": splits[row["id"]],
                              **{k: est[k] for k in ("system", "backend", "version", "model", "quant",
                                                     "measured_share", "notes")}})
    both = [t for t in table if t["ours_error"] is not None]
    result = {"aiconfigurator_version": version, "databases": shipped_databases(), "rows": table,
              "no_data": no_data, "summary": summary(both)}
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0

    print(f"aiconfigurator-core {version}; measured tables (system: backend versions):")
    for system, backends in result["databases"].items():
        print(f"  {system}: " + ", ".join(f"{b} {'/'.join(v)}" for b, v in sorted(backends.items())))
    print(f"\n{'row':44} {'metric':26} {'published':>10} {'ours':>10} {'err':>7} {'aiconfig':>10} {'err':>7}"
          f" {'split':7} aiconfigurator basis (measured share of its time)")
    for t in table:
        ours_cells = f"{t['ours']:10.1f} {100 * t['ours_error']:+6.1f}%" if t["ours"] is not None else f"{'-':>18}"
        share = f"{100 * t['measured_share']:.0f}%" if t["measured_share"] is not None else "?"
        print(f"{t['row']:44} {t['metric']:26} {t['published']:10.1f} {ours_cells} {t['aiconfigurator']:10.1f} "
              f"{100 * t['aiconfigurator_error']:+6.1f}% {t['split']:7} {t['system']}/{t['backend']} {t['version']} "
              f"({share})")
    print("\nper row: model config, quantisation, and what differs from the published run")
    seen = set()
    for t in table:
        if t["row"] not in seen:
            seen.add(t["row"])
            print(f"  {t['row']}: {t['model']}; {t['quant']}; {'; '.join(t['notes'])}")
    print(f"\nno data ({len(no_data)} rows):")
    reasons: dict[str, list[str]] = {}
    for d in no_data:
        reasons.setdefault(d["why"], []).append(d["row"])
    for why, ids in reasons.items():
        print(f"  {len(ids):3} rows: {why}" + (f" ({', '.join(ids)})" if len(ids) <= 3 else ""))
    print("\n|error| on the checks both estimate (ours = the project's serving model):")
    for split, s in result["summary"].items():
        print(f"  {split:8} n={s['n']:2}  ours median {100 * s['ours']['median']:5.1f}% "
              f"p90 {100 * s['ours']['p90']:5.1f}%"
              f"  |  aiconfigurator median {100 * s['aiconfigurator']['median']:5.1f}% "
              f"p90 {100 * s['aiconfigurator']['p90']:5.1f}%  |  aiconfigurator closer on "
              f"{s['aiconfigurator_closer']} of {s['n']}")
    print("  note: ours was fitted on the 'fit' rows; aiconfigurator was fitted on none of them. Its tables are of "
          "newer engine versions than the published runs (see the notes per row).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

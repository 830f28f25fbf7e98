"""How close the serving-engine model comes to published measurements, per runtime, on rows it was not fitted on.

Estimates every usable row of benchmarks/data/published-serving.json (70 published figures: llama.cpp,
TensorRT-LLM, TGI, vLLM, SGLang, gpt-fast, transformers on RTX 3090/4090, A10G, L40S, A100, H100, H200 and
three CPUs) with the runtime, format, GPU count and concurrency each row states, and prints predicted vs
published, per runtime: coverage (rows it could estimate), median and 90th-percentile |error| for decode
(ms/token), TTFT or prefill, and end-to-end / throughput at concurrency. It then checks the vLLM memory
model (weights and KV pool per GPU) against the boot logs of benchmarks/data/vllm-bootlogs.json.

Split: within each runtime, rows are taken in file order and every third one (positions 1, 4, 7, ...) is
HELD OUT; the constants marked "fitted" in catalog/runtimes.yaml were fitted on the other rows only
(`--fit` refits them and prints the result). Goals are judged on held-out rows; all rows are printed too.

    python benchmarks/serving_accuracy.py [--json] [--fit] [--cv] [--rows] [--runtime NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data"
PUBLISHED = DATA / "published-serving.json"
BOOTLOGS = DATA / "vllm-bootlogs.json"
MODELS = DATA / "serving-models.yaml"
NODES = DATA / "hardware-nodes.yaml"

COVERAGE_GOAL, MEDIAN_GOAL, P90_GOAL, BOOT_GOAL = 0.90, 0.15, 0.35, 0.10
KINDS = ("decode", "ttft/prefill", "e2e/throughput")

# Workload facts the rows do not carry themselves, each with its source.
SHAREGPT_INPUT = 230     # vllm-project/vllm#18566: 229,711 input tokens over 1,000 ShareGPT prompts
                         # (Llama-3.1 tokenizer)
SHAREGPT_OUTPUT = 194    # sgl-project/sglang benchmark_vllm_060 README: 4281.51 output tok/s / 22.03 req/s = 194.3
GPTFAST_NEW = 200        # pytorch-labs/gpt-fast generate.py: max_new_tokens defaults to 200
LLAMA_BENCH = (512, 128)  # llama-bench defaults (-p 512 -n 128) for rows whose test sizes are not stated
# The Dec-2023 llama.cpp rows (XiongjieDai/GPU-Benchmarks-on-LLM-Inference, 'LLaMA/' and 'LLaMA 2/' notebooks):
# `main --no-mmap -ngl 10000 -n 1024 --ignore-eos` on the 'A Tale of Two Cities' prompt, printed as
# 'prompt eval time = ... / 494 tokens', 'eval time = ... / 1023 runs', 'n_ctx = 512, n_batch = 512'; builds 1671-1691.
MAIN_DEC2023 = {"prompt": 494, "evals": 1023, "n_ctx": 512, "build": "2023-12"}
# The Sep-2024 CPU rows (ik_llama.cpp PR #54, mainline as of 2024-09-14) ran before x86 Q4_0 repacking
MAINLINE_SEP2024 = {"runtime_version": "mainline llama.cpp as of 2024-09-14", "build": "2024-09"}
# TensorRT-LLM rows (NVIDIA/TensorRT-LLM docs/source/performance.md at 138f96d4, 'Benchmarking per Model'):
# the Llama2-7b and Llama2-70b engines that both the throughput and the first-token benchmarks run are built
# with `--enable_fp8 --fp8_kv_cache` ('Running on A100': remove them there), so every FP8 row has an FP8 KV
# cache, also the throughput rows whose own notes do not repeat it.
# CPU rows: physical cores the target's peak counts, and the ISA its kernels ran: the CPU's own, since
# llama.cpp compiles for its host by default (GGML_NATIVE ON: -march=native). The tables' labels (Zen4, AVX2,
# ARM_NEON) name a SIMD path, not always the build: ik_llama.cpp discussion #164 heads its x86 table "AVX2"
# and says "AVX2/Zen4 performance is on a Ryzen-7950X", and its mainline figures for types that build did
# not repack equal the same CPU's native-build figures of Sep 2024 (Q5_0 tg128 on 2 threads 5.30 vs 5.22 t/s,
# ik_llama.cpp PR #55; Q8_0 pp512 on 16 threads 147.92 vs 141.30, PR #54), which an AVX2-only build (no
# VNNI) would not reach; a 2-thread Q4_0 decode of 11.23 t/s is also 4-5x what AVX2 kernels do per core on
# a Zen 3 (benchmarks/data/llamacpp-repack-measured.json).
CPU_CORES = {"cpu-ryzen9-7950x": 16, "cpu-threadripper-pro-5975wx": 32, "cpu-apple-m2-max": 8}
CPU_ISA = {"cpu-ryzen9-7950x": ("Zen4", ("avx2", "avx512f", "avx512_vnni", "avx512vl")),  # AVX-512 with VNNI
           "cpu-threadripper-pro-5975wx": ("AVX2", ("avx2",)),                             # Zen 3
           # Apple M2: Armv8.6-A with dotprod and i8mm (LLVM AArch64Processors.td, apple-m2 / apple-a15 features)
           "cpu-apple-m2-max": ("ARM_NEON", ("neon", "asimd", "asimddp", "i8mm"))}
# --isa-from-table: the reading before 2026-12-01 (the ISA named by the table's heading), kept to compare
ISA_BY_TABLE_HEADING = {"Zen4": CPU_ISA["cpu-ryzen9-7950x"][1], "AVX2": ("avx2",),
                        "ARM_NEON": CPU_ISA["cpu-apple-m2-max"][1]}
ISA_FROM_TABLE = False

MODEL_IDS = [("Llama-2-7b", "bench-llama-2-7b"), ("Llama-2-7B", "bench-llama-2-7b"), ("LLaMA 7B", "bench-llama-2-7b"),
             ("LLaMA 2 7B", "bench-llama-2-7b"), ("Llama-2-13", "bench-llama-2-13b"),
             ("LLaMA 13B", "bench-llama-2-13b"), ("Llama-2-70", "bench-llama-2-70b"),
             ("LLaMA 70B", "bench-llama-2-70b"), ("LLaMA 2 70B", "bench-llama-2-70b"),
             ("LLaMA 30B", "bench-llama-1-30b"), ("LLaMA 3 8B", "llama-3.1-8b"), ("LLaMA-3.1-8B", "llama-3.1-8b"),
             ("Llama 3.1 8B", "llama-3.1-8b"), ("LLaMA 3 70B", "llama-3.1-70b"), ("Llama 3.1 70B", "llama-3.1-70b"),
             ("Mixtral-8x7B", "mixtral-8x7b")]
HARDWARE = {"a100-unknown": ("a100-80gb", "memory size not stated: the 80 GB SXM part assumed"),
            "h100-unknown-80gb": ("h100-sxm-80gb", "form factor not stated: SXM (NVLink) assumed"),
            "cpu: AMD Ryzen 9 7950X (Zen4, 16 cores)": ("cpu-ryzen9-7950x", ""),
            "cpu: AMD Ryzen Threadripper PRO 5975WX (AVX2, 32 cores)": ("cpu-threadripper-pro-5975wx", ""),
            "cpu: Apple M2 Max (ARM_NEON CPU cores, no Metal)": ("cpu-apple-m2-max", "")}
FORMATS = {"fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8": "int8", "gptq-int4": "gptq",
           "gguf-q4_k_m": "q4_k_m", "gguf-q4_0": "q4_0", "gguf-q8_0": "q8_0",
           "int4 (weight-only, group 32)": "int4:g32"}
RUNTIMES = {"other": "gpt-fast"}

# The constants `--fit` fits, per runtime (paths into the runtime profile). Everything else in
# catalog/runtimes.yaml is a code reading or an assumption.
FIT_PARAMS: dict[str, list[str]] = {
    "llama.cpp": ["bandwidth_efficiency.values.16bit", "bandwidth_efficiency.values.gguf_q4_0",
                  "bandwidth_efficiency.values.gguf_kquant",
                  "gpu_kernels.matmul_efficiency.values.sm80", "gpu_kernels.matmul_efficiency.values.sm86",
                  "gpu_kernels.matmul_efficiency.values.sm89", "gpu_kernels.matmul_efficiency.values.sm90",
                  "gpu_kernels.layer_overhead_ms.values.sm80", "gpu_kernels.layer_overhead_ms.values.sm86",
                  "gpu_kernels.layer_overhead_ms.values.sm89", "gpu_kernels.layer_overhead_ms.values.sm90",
                  "prefill_per_layer_overhead_ms.value", "builds.2023-12.prefill_per_layer_overhead_ms.value",
                  "parallel.hop_latency_us.value",
                  "cpu.bandwidth_efficiency.values.default", "cpu.matmul_efficiency.values.default",
                  "cpu.decode_compute_fraction.value"],
    "tensorrt-llm": ["bandwidth_efficiency.values.16bit", "bandwidth_efficiency.values.fp8",
                     "matmul_efficiency.values.16bit", "matmul_efficiency.values.fp8", "step_overhead_ms.value",
                     "ttft_floor_ms.value", "parallel.allreduce_latency_us.values.nvlink"],
    "tgi": ["bandwidth_efficiency.values.16bit", "bandwidth_efficiency.values.int4", "per_layer_overhead_ms.value",
            "ttft_floor_ms.value", "parallel.allreduce_latency_us.values.pcie"],
    # vLLM's and SGLang's fit rows are all at a few concurrent streams on one A100, where a bandwidth
    # efficiency and a per-step overhead cannot be told apart: their 16-bit streaming efficiency is taken
    # from gpt-fast's fit (CUDA-graph decode without a scheduler) and only the overheads are fitted.
    "vllm": ["matmul_efficiency.values.16bit", "step_overhead_ms.value", "ttft_floor_ms.value"],
    "sglang": ["step_overhead_ms.value", "ttft_floor_ms.value"],
    "transformers": ["per_layer_overhead_ms.value"],
    "gpt-fast": ["bandwidth_efficiency.values.16bit", "bandwidth_efficiency.values.int8",
                 "bandwidth_efficiency.values.int4"],
}


@dataclass
class Check:
    row: str
    runtime: str
    kind: str                 # decode | ttft/prefill | e2e/throughput
    metric: str               # the published metric compared
    published: float
    predict: Callable[[], float] = field(repr=False, default=None)
    predicted: float = float("nan")
    split: str = "fit"

    @property
    def error(self) -> float:
        return (self.predicted - self.published) / self.published


@dataclass
class Case:
    row: dict
    runtime: str
    model: str
    target: str
    fmt: str
    gpus: int
    split_kind: str
    assumptions: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    build: str | None = None                 # an older build of the runtime (runtimes.yaml `builds`)
    threads: tuple[int, int] | None = None   # CPU rows: prefill and decode threads
    cpu_flags: tuple[str, ...] = ()


def main_decode_context(prompt: int, evals: int, n_ctx: int) -> float:
    """Mean context of `evals` decode steps of llama.cpp main after a `prompt`-token prompt: when the cache
    is full it drops half of it (examples/main/main.cpp of Dec 2023, n_keep 0: n_discard = (n_past - 1) / 2)."""
    n_past, total = prompt, 0
    for _ in range(evals):
        if n_past + 1 > n_ctx:
            n_past -= (n_past - 1) // 2
        total += n_past
        n_past += 1
    return total / evals


def cpu_threads(row: dict) -> tuple[int, int]:
    """The threads of a CPU row's pp and tg tests, as its table prints them ('| 16 | pp512 |', '| 4 | tg128 |')."""
    import re

    text = row["where_in_source"]
    pp = re.search(r"\|\s*(\d+)\s*\|\s*pp\d+", text)
    tg = re.search(r"\|\s*(\d+)\s*\|\s*tg\d+", text)
    return int(pp.group(1)) if pp else 0, int(tg.group(1)) if tg else 0


# --- catalog ------------------------------------------------------------------------------------------------

def load():
    """The built-in catalog plus the benchmark's models, and the node overlay where hardware.yaml lacks it."""
    from advisor.catalog.loader import load_catalog

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat, problems, _ = load_catalog([str(MODELS)], strict=False, include_env=False)
        overlay, oprob, _ = load_catalog([str(NODES)], include_builtin=False, strict=False, include_env=False)
    notes = [f"{len(problems) + len(oprob)} catalog problem(s) ignored"] if problems or oprob else []
    used = []
    for tid, t in overlay.targets.items():
        builtin = cat.targets.get(tid)
        if builtin is not None and (builtin.kind == "cpu" or (builtin.interconnect is not None
                                                               and builtin.gpus_per_node is not None)):
            continue            # hardware.yaml carries the target (and a GPU's node data): use it
        cat.targets[tid] = t
        used.append(f"{tid} ({'no node data in' if builtin is not None else 'not in'} catalog/hardware.yaml)")
    if used:
        notes.append(f"hardware from benchmarks/data/hardware-nodes.yaml: {', '.join(used)}")
    return cat, notes


def _child(node, key: str):
    """One step of a constant's path: a dict key, or the entry of a list (`builds`) with that id."""
    if isinstance(node, list):
        return next(item for item in node if item.get("id") == key)
    return node[key]


def with_params(rt, values: dict[str, float]):
    """A copy of a runtime profile with some constants replaced (paths like 'bandwidth_efficiency.values.16bit',
    'builds.2023-12.prefill_per_layer_overhead_ms.value')."""
    from advisor.catalog.runtimes import RuntimeProfile

    data = rt.model_dump()
    for path, v in values.items():
        node = data
        parts = path.split(".")
        for p in parts[:-1]:
            node = _child(node, p)
        node[parts[-1]] = v
    return RuntimeProfile.model_validate(data)


def get_param(rt, path: str) -> float:
    node = rt.model_dump()
    for p in path.split("."):
        if isinstance(node, dict) and p not in node:
            node = node.get("default", 0.0)
        elif isinstance(node, (dict, list)):
            node = _child(node, p)
    return float(node)


# --- published rows -----------------------------------------------------------------------------------------

def _model_for(row) -> str | None:
    text = f"{row.get('model_hf_id') or ''} {row['model']}"
    for needle, mid in MODEL_IDS:
        if needle in text:
            return mid
    return None


def build_case(row: dict, cat) -> Case | str:
    """The estimate a row asks for, or the reason it cannot be made."""
    runtime = RUNTIMES.get(row["runtime"], row["runtime"])
    if runtime not in cat.runtimes:
        return f"no runtime profile for '{row['runtime']}'"
    model = _model_for(row)
    if model is None or model not in cat.models:
        return f"model '{row['model']}' not in the catalog"
    target, why = HARDWARE.get(row["hardware"], (row["hardware"], ""))
    if target not in cat.targets:
        return f"hardware '{row['hardware']}' not in the catalog"
    fmt = FORMATS.get(row["format"])
    if fmt is None:
        return f"format '{row['format']}' not modelled"
    gpus = max(1, row["gpus"])
    kind = "tensor" if row["tensor_parallel"] > 1 else ("layer" if gpus > 1 else "none")
    case = Case(row, runtime, model, target, fmt, gpus, kind, [why] if why else [])
    m = row["metrics"]
    rid = row["id"]

    def add(kind_, metric, fn):
        case.checks.append(Check(rid, runtime, kind_, metric, m[metric], fn))

    ctx = {}   # filled by evaluate(): the bound model
    if runtime == "llama.cpp":
        if str(row.get("runtime_version", "")).startswith("Dec 2023"):
            # main on a 494-token prompt, then 1024 tokens with context shifts (n_ctx 512)
            pp, context = MAIN_DEC2023["prompt"], main_decode_context(**{k: MAIN_DEC2023[k] for k in
                                                                            ("prompt", "evals", "n_ctx")})
            case.build = MAIN_DEC2023["build"]
            case.assumptions.append(f"Dec-2023 build: main with a {pp}-token prompt, n_ctx 512, 1023 decode steps "
                                    f"at a mean context of {context:.0f} tokens (the source notebooks)")
        else:
            p, n = (row["input_tokens"], row["output_tokens"]) if row["input_tokens"] is not None else LLAMA_BENCH
            if row["input_tokens"] is None:
                case.assumptions.append("test sizes not stated: llama-bench defaults pp512/tg128 assumed")
            pp = p if p else n          # tg8192 row: its pp test is pp8192
            context = (n - 1) / 2
        if row["gpus"] == 0:
            if str(row.get("runtime_version", "")).startswith(MAINLINE_SEP2024["runtime_version"]):
                case.build = MAINLINE_SEP2024["build"]
                case.assumptions.append("Sep-2024 mainline: before x86 Q4_0 runtime repacking (b4282)")
            case.threads = cpu_threads(row)
            isa, case.cpu_flags = CPU_ISA.get(target, ("unknown", ()))
            how = "the CPU's own: a native build"
            if ISA_FROM_TABLE:
                isa = next((k for k in ISA_BY_TABLE_HEADING if k in row["where_in_source"]), "unknown")
                case.cpu_flags, how = ISA_BY_TABLE_HEADING.get(isa, ()), "the table's heading"
            case.assumptions.append(f"CPU threads as stated: prefill {case.threads[0]}, decode {case.threads[1]}; "
                                    f"ISA {isa} ({how})")
        if m["decode_tokens_per_s_per_stream"]:
            add("decode", "decode_tokens_per_s_per_stream", lambda: 1e3 / ctx["m"].step_ms(1, context))
        if m["prefill_tokens_per_s"]:
            add("ttft/prefill", "prefill_tokens_per_s", lambda: 1e3 * pp / ctx["m"].prefill_ms(1, pp))
    elif runtime == "tensorrt-llm":
        b, p, n = row["concurrency"], row["input_tokens"], row["output_tokens"]
        if m["ttft_ms"] is not None:
            add("ttft/prefill", "ttft_ms", lambda: ctx["rates"].ttft_floor_ms + ctx["m"].prefill_ms(b, p))
        if m["output_tokens_per_s_total"] is not None:
            # The H100 table says its figures are per GPU; the A100/L40S tables of the same document do not
            # say. Read them per GPU too (a total of 670 tok/s for 70B on 4 A100s at batch 1280 would be a
            # third of the same table's 7B row scaled by FLOPs). Single-GPU rows are unaffected.
            per_gpu = True
            add("e2e/throughput", "output_tokens_per_s_total",
                lambda: ctx["serve"]("static", b, p, n).tokens_per_s / (gpus if per_gpu else 1))
    elif runtime in ("vllm", "sglang") and row["concurrency"] is None:
        steps = 10 if runtime == "vllm" else 1    # the rows' vLLM ran --num-scheduler-steps 10
        case.assumptions.append(f"ShareGPT mean lengths: {SHAREGPT_INPUT} in, {SHAREGPT_OUTPUT} out")
        if m["ttft_ms"] is not None:          # open loop, 4 requests/s
            add("ttft/prefill", "ttft_ms",
                lambda: ctx["serve"]("open-loop", 1, SHAREGPT_INPUT, SHAREGPT_OUTPUT, rate=4.0, steps=steps).ttft_ms)
            add("decode", "tpot_ms",
                lambda: ctx["serve"]("open-loop", 1, SHAREGPT_INPUT, SHAREGPT_OUTPUT, rate=4.0, steps=steps).tpot_ms)
        else:                                  # offline: everything queued at once
            add("e2e/throughput", "output_tokens_per_s_total",
                lambda: ctx["serve"]("saturated", 1, SHAREGPT_INPUT, SHAREGPT_OUTPUT, steps=steps).tokens_per_s)
    elif runtime == "vllm":                    # benchmark_latency: one static batch
        b, p, n = row["concurrency"], row["input_tokens"], row["output_tokens"]
        add("e2e/throughput", "e2e_ms", lambda: ctx["serve"]("static", b, p, n).e2e_ms)
    elif runtime == "tgi":
        b, n = row["concurrency"], row["output_tokens"]
        case.assumptions.append(f"prompt length not stated: ShareGPT mean {SHAREGPT_INPUT} assumed")
        add("e2e/throughput", "e2e_ms", lambda: ctx["serve"]("continuous", b, SHAREGPT_INPUT, n).e2e_ms)
    elif runtime == "transformers":
        b, p, n = row["concurrency"], row["input_tokens"], row["output_tokens"]
        metric = "tpot_ms"        # optimum: total generate time / new tokens (the prefill amortised)
        add("decode", metric, lambda: ctx["serve"]("static", b, p, n).e2e_ms / n)
    elif runtime == "gpt-fast":
        p = row["input_tokens"]
        add("decode", "decode_tokens_per_s_per_stream", lambda: 1e3 / ctx["m"].step_ms(1, p + GPTFAST_NEW / 2))
    else:
        return f"no scenario for runtime '{runtime}'"
    case.ctx = ctx
    return case


def bind(case: Case, cat, rt):
    """Bind the latency model of a case for a runtime profile (possibly with trial constants)."""
    from advisor.estimate import device as devmod
    from advisor.estimate import serving
    from advisor.estimate.formats import weight_terms
    from advisor.estimate.latency import Model, spec_rates
    from advisor.estimate.memory import kv_cache_bytes
    from advisor.estimate.parallel import Split
    from advisor.estimate.pool import engine_memory, max_num_seqs

    entry = cat.models[case.model]
    fmt_id, _, group = case.fmt.partition(":g")
    fmt = cat.formats[fmt_id]
    if group:
        fmt = fmt.model_copy(update={"group_size": int(group), "scale_bytes": 2.0, "zero_bytes": 2.0})
    if case.build:
        rt = rt.for_build(case.build)
    target = cat.targets[case.target]
    device = devmod.from_target(target)
    if device.kind == "cpu":
        device = dataclasses.replace(device, cores=CPU_CORES.get(target.id), flags=case.cpu_flags)
    split = Split(case.gpus, case.split_kind) if case.gpus > 1 else Split(1, "none")
    kv_el = 1 if case.fmt == "fp8" and ("fp8_kv_cache" in case.row["notes"] or case.runtime == "tensorrt-llm") else 2
    weights = sum(weight_terms(entry.arch, fmt).values())
    threads = case.threads or (None, None)
    rates = spec_rates(device, fmt, rt, threads=threads[0] or None, decode_threads=threads[1] or None)
    model = Model(entry.arch, fmt, weights, kv_el, rt, rates, split, device.link)

    def capacity(prompt: int, new: int) -> float:
        if rt.pool is None:
            return 1e9
        em = engine_memory(entry.arch, rt, weights_bytes=weights, fmt=fmt.id, kv_element_bytes=kv_el,
                           memory_bytes=device.memory_bytes, split=split, batch=1, request_tokens=prompt + new,
                           max_model_len=4096, target_id=target.id)
        per_seq = kv_cache_bytes(entry.arch, prompt + new, 1, kv_el) / max(1, min(split.tensor, entry.arch.kv_heads))
        pool_seqs = max(1.0, em.kv_pool / per_seq)
        return min(float(max_num_seqs(rt, target.id)), pool_seqs)

    def serve(mode, batch, prompt, new, rate=None, steps=1):
        w = serving.Workload(batch=batch, prompt=prompt, new=new, mode=mode, request_rate=rate, scheduler_steps=steps)
        return serving.serve(model.step_ms, model.prefill_ms, w, rates.ttft_floor_ms, capacity(prompt, new),
                             extra=model.prefill_extra_ms)

    case.ctx.update(m=model, rates=rates, serve=serve)


def split_rows(rows: list[dict]) -> dict[str, str]:
    """Held out: every third row of each runtime in file order (positions 1, 4, 7, ...)."""
    seen: dict[str, int] = {}
    out = {}
    for r in rows:
        k = r["runtime"]
        i = seen.get(k, 0)
        seen[k] = i + 1
        out[r["id"]] = "holdout" if i % 3 == 1 else "fit"
    return out


def evaluate(cases: list[Case], cat, runtimes: dict | None = None) -> None:
    for case in cases:
        rt = (runtimes or {}).get(case.runtime) or cat.runtimes[case.runtime]
        bind(case, cat, rt)
        for c in case.checks:
            c.predicted = c.predict()


def cases_from(cat) -> tuple[list[Case], list[tuple[str, str, str]]]:
    data = json.loads(PUBLISHED.read_text())
    splits = split_rows(data["rows"])
    cases, skipped = [], []
    for row in data["rows"]:
        got = build_case(row, cat)
        if isinstance(got, str):
            skipped.append((row["id"], row["runtime"], got))
            continue
        for c in got.checks:
            c.split = splits[row["id"]]
        cases.append(got)
    return cases, skipped


# --- fitting ------------------------------------------------------------------------------------------------

def nelder_mead(f, x0: list[float], iters: int = 400, step: float = 0.25) -> list[float]:
    """Minimise f over log-parameters (all constants are positive); a small, dependency-free simplex."""
    n = len(x0)
    pts = [list(x0)] + [[x + (step if j == i else 0.0) for j, x in enumerate(x0)] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(n + 1), key=lambda i: vals[i])
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        centroid = [sum(p[j] for p in pts[:-1]) / n for j in range(n)]
        refl = [c + (c - w) for c, w in zip(centroid, pts[-1])]
        fr = f(refl)
        if fr < vals[0]:
            exp = [c + 2 * (c - w) for c, w in zip(centroid, pts[-1])]
            fe = f(exp)
            pts[-1], vals[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = refl, fr
        else:
            con = [c + 0.5 * (w - c) for c, w in zip(centroid, pts[-1])]
            fc = f(con)
            if fc < vals[-1]:
                pts[-1], vals[-1] = con, fc
            else:
                pts = [pts[0]] + [[b + 0.5 * (x - b) for b, x in zip(pts[0], p)] for p in pts[1:]]
                vals = [vals[0]] + [f(p) for p in pts[1:]]
        if max(vals) - min(vals) < 1e-9:
            break
    return pts[min(range(n + 1), key=lambda i: vals[i])]


MAX_EFFICIENCY = 0.95   # no kernel streams or multiplies at more than 95% of a datasheet peak


def physical(params: list[str], x: list[float]) -> dict[str, float]:
    """Search coordinates to constants: efficiencies through a logistic onto (0, MAX_EFFICIENCY), the rest
    through exp (all constants are positive)."""
    return {p: MAX_EFFICIENCY / (1 + math.exp(-v)) if "efficiency" in p else math.exp(v) for p, v in zip(params, x)}


def coordinates(params: list[str], values: list[float]) -> list[float]:
    out = []
    for p, v in zip(params, values):
        if "efficiency" in p:
            r = min(max(v / MAX_EFFICIENCY, 1e-3), 1 - 1e-3)
            out.append(math.log(r / (1 - r)))
        else:
            out.append(math.log(max(v, 1e-3)))
    return out


NEUTRAL_EFFICIENCY, NEUTRAL_CONSTANT = 0.5, 1.0   # a start that knows no row: half of peak, 1 ms (or us, bytes)


def fit(cases: list[Case], cat, *, only: set[str] | None = None, exclude: frozenset[str] = frozenset(),
        neutral: bool = False) -> dict[str, dict]:
    """Fit each runtime's FIT_PARAMS on its fit rows (less `exclude`). The simplex starts from the catalog's
    values, or with `neutral` from values no row chose: a constant that only an excluded row determines then
    stays at the neutral start instead of keeping what that row taught it."""
    out = {}
    for rid, params in FIT_PARAMS.items():
        if only is not None and rid not in only:
            continue
        mine = [c for c in cases if c.runtime == rid and c.checks and c.checks[0].split == "fit"
                and c.row["id"] not in exclude]
        if not mine:
            continue
        base = cat.runtimes[rid]
        start = [NEUTRAL_EFFICIENCY if "efficiency" in p else NEUTRAL_CONSTANT for p in params] if neutral else \
            [get_param(base, p) for p in params]
        x0 = coordinates(params, start)

        def loss(x, base=base, params=params, mine=mine):
            try:
                rt = with_params(base, physical(params, x))
            except Exception:
                return 1e9
            total = 0.0
            for case in mine:
                bind(case, cat, rt)
                for c in case.checks:
                    pred = c.predict()
                    total += math.log(max(pred, 1e-9) / c.published) ** 2
            return total

        best = x0
        for _ in range(4):              # restarts: the simplex collapses early on these flat losses
            best = nelder_mead(loss, best, iters=600, step=0.5)
        best_loss = loss(best)
        for i in range(len(best)):      # the simplex drifts along a constant no row depends on: keep its start
            trial = best[:i] + [x0[i]] + best[i + 1:]
            if abs(loss(trial) - best_loss) <= 1e-12 * max(1.0, best_loss):
                best = trial
        values = physical(params, best)
        out[rid] = {"params": values, "rows": sorted({c.row["id"] for c in mine}), "loss": loss(best)}
    return out


def cross_validate(cases: list[Case], cat, only: set[str] | None = None) -> list[dict]:
    """Leave one fit row out at a time: refit its runtime's constants from the neutral start on the runtime's
    other fit rows and predict the row left out. The held-out rows take no part; this measures how well the
    fitting procedure generalises within the fit rows, so that a choice between two model structures can be
    made without looking at the held-out rows."""
    out = []
    for rid in FIT_PARAMS:
        if only is not None and rid not in only:
            continue
        mine = [c for c in cases if c.runtime == rid and c.checks and c.checks[0].split == "fit"]
        for case in mine:
            fitted = fit(cases, cat, only={rid}, exclude=frozenset({case.row["id"]}), neutral=True)
            rt = with_params(cat.runtimes[rid], fitted[rid]["params"]) if rid in fitted else cat.runtimes[rid]
            bind(case, cat, rt)
            for c in case.checks:
                pred = c.predict()
                out.append({"row": c.row, "runtime": rid, "kind": c.kind, "metric": c.metric,
                            "published": c.published, "predicted": pred,
                            "error": (pred - c.published) / c.published})
    return out


def print_cv(results: list[dict]) -> None:
    print("LEAVE-ONE-OUT over the FIT rows (each row predicted by constants refitted without it, from a neutral "
          "start; held-out rows unused)")
    print(f"{'runtime':13} | " + " | ".join(f"{k:>14} n  med   p90" for k in KINDS + ("all",)))
    for rid in sorted({r["runtime"] for r in results}) + ["all"]:
        cells = []
        for kind in KINDS + ("all",):
            errs = [abs(r["error"]) for r in results if rid in ("all", r["runtime"]) and kind in ("all", r["kind"])]
            cells.append(f"{'':>14}{len(errs):>2} {fmt_pct(statistics.median(errs))} {fmt_pct(pct(errs, 0.9))}"
                         if errs else f"{'':>14} 0    -     -")
        print(f"{rid:13} | " + " | ".join(cells))


# --- statistics ---------------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    vals = sorted(values)
    if not vals:
        return float("nan")
    k = (len(vals) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def summarise(cases: list[Case], skipped, rows_total: dict[str, int], split: str | None) -> dict:
    out: dict = {}
    runtimes = sorted(rows_total)
    for rid in runtimes + ["all"]:
        mine = [c for c in cases if rid in ("all", c.runtime)]
        checks = [k for c in mine for k in c.checks if split is None or k.split == split]
        rows_here = {k.row for k in checks}
        if split is None:
            total = rows_total[rid] if rid != "all" else sum(rows_total.values())
        else:
            total = sum(1 for c in mine if c.checks and c.checks[0].split == split) + sum(
                1 for s in skipped if (rid in ("all", s[1])) and s[3] == split)
        entry = {"rows": total, "estimated": len(rows_here),
                 "coverage": len(rows_here) / total if total else float("nan"), "checks": len(checks)}
        for kind in KINDS + ("all",):
            errs = [abs(k.error) for k in checks if kind in ("all", k.kind)]
            entry[kind] = {"n": len(errs), "median": statistics.median(errs) if errs else float("nan"),
                           "p90": pct(errs, 0.9)}
        out[rid] = entry
    return out


# --- vLLM boot logs -----------------------------------------------------------------------------------------

BOOT_MODELS = {"unsloth/qwen2.5-0.5b-instruct-unsloth-bnb-4bit": ("qwen2.5-0.5b", "nf4"),
               "meta-llama/Llama-3.2-1B": ("llama-3.2-1b", "fp16"),
               "meta-llama/Llama-3.1-8B-Instruct": ("llama-3.1-8b", "bf16"),
               "Qwen2.5-7B-Instruct-bnb-4bit": ("qwen2.5-7b", "nf4"),
               "TheBloke/CodeLlama-13B-Instruct-fp16": ("bench-codellama-13b", "fp16"),
               "microsoft/phi-4": ("bench-phi-4", "nf4"),
               "unsloth/meta-llama-3.1-8b-instruct-bnb-4bit": ("llama-3.1-8b", "nf4"),
               "meta-llama/Llama-2-70b-hf": ("bench-llama-2-70b", "fp16"),
               "meta-llama/Llama-2-7b-hf": ("bench-llama-2-7b", "fp16"),
               "kaitchup/Phi-4-AutoRound-GPTQ-4bit": ("bench-phi-4", "gptq"),
               "unsloth/Llama-3.2-3B-Instruct": ("llama-3.2-3b", "fp16")}
BOOT_EXCLUDED = {
    "gh-xlisp-gtx1080-phi-1_5-v064": "phi-1.5's non-gated MLP with biases is outside the catalog's architecture schema",
    "i2136-2x4090-codellama13b-v024": "the RTX 4090's total memory is not logged (torch totals vary per board)",
    "i2136-2x4090-codellama13b-v025": "profiler regression of vLLM 0.2.5 (the README's outlier), not a sizing rule",
    "pr12126-h100-llama32-11b-vision-dummy": "multimodal encoder profiling (activation peak above the weights)",
    "club3090-i294-2x3090-qwen36-27b-int4-mtp": "hybrid attention / speculative decoding: derived token counts",
    "club3090-i612-5090-qwen36-35b-a3b-nvfp4": "hybrid attention: derived token counts",
    "file-l4-gemma4-e2b-bf16-eager": "Gemma 4 per-group KV specs and shared KV: derived token counts",
    "i34076-5070ti+5090d-pp2-qwen3-coder-30b-fp8": "heterogeneous pipeline parallelism (bug report)",
    "i6746-8xh100-llama31-405b-fp8-weights": "Meta's 405B FP8 checkpoint quantises only the MLP weights (attention and "
                                             "the first/last layers stay bf16): a layout the fp8 format "
                                             "does not describe",
}
# Profiled tokens per row, from the flags the row states (V0 without chunked prefill profiles
# max(max_model_len, 2048) tokens; chunked prefill profiles its budget).
BOOT_TOKENS = {"gh-xlisp-gtx1080-llama32-1b-105k-v064": 512, "nb-a100-80-phi4-bnb4-v082": 512,
               "nb-t4-llama32-3b-fp16-unsloth-serve-v082": 2048}
A100_80_TOTAL_GIB = 79.15    # the same logs' A100-SXM4-80GB total (nb-a100-80-phi4-bnb4-v082)
BOOT_FIT = ["pool.sampler_bytes_per_logit.value", "pool.non_torch_bytes.values.1"]


def boot_rule(row) -> dict:
    """The sizing rule of the row's vLLM version (benchmarks/data/vllm-bootlogs.README.md)."""
    v = str(row.get("vllm_version") or "")
    if v.startswith("PR #2031"):
        return {"context_counted": True, "non_torch": True}
    if v.startswith("0.2."):
        return {"context_counted": False, "non_torch": False}
    return {"context_counted": False, "non_torch": True}


def boot_checks(cat, rt=None) -> tuple[list[dict], list[tuple[str, str]]]:
    from advisor.estimate.formats import weight_terms
    from advisor.estimate.memory import kv_cache_bytes
    from advisor.estimate.parallel import Split
    from advisor.estimate.pool import engine_memory

    rt = rt or cat.runtimes["vllm"]
    rows = json.loads(BOOTLOGS.read_text())["rows"]
    out, skipped = [], []
    usable = 0
    for row in rows:
        if row["id"] in BOOT_EXCLUDED:
            skipped.append((row["id"], BOOT_EXCLUDED[row["id"]]))
            continue
        key = next((k for k in BOOT_MODELS if k in row["model_hf_id"]), None)
        if key is None:
            skipped.append((row["id"], "model not in the benchmark catalog"))
            continue
        mid, fmt_id = BOOT_MODELS[key]
        entry, fmt = cat.models[mid], cat.formats[fmt_id]
        tp = row["tensor_parallel"] or 1
        total = row["gpu_total_memory_gib"] or (A100_80_TOTAL_GIB if "a100" in row["gpu"] else None)
        if total is None:
            skipped.append((row["id"], "total memory not logged"))
            continue
        split = "holdout" if usable % 3 == 1 else "fit"
        usable += 1
        mml = row["max_model_len"]
        tokens = BOOT_TOKENS.get(row["id"], max(mml, 2048))
        rule = boot_rule(row)
        el = 2
        weights = sum(weight_terms(entry.arch, fmt).values())
        sp = Split(tp, "tensor") if tp > 1 else Split(1, "none")
        non_torch = None
        if not rule["non_torch"]:
            non_torch = 0
        elif rule["context_counted"]:
            non_torch = int(rt.pool.non_torch_bytes.get(str(tp)) + rt.cuda_context_bytes.value)
        em = engine_memory(entry.arch, rt, weights_bytes=weights, fmt=fmt.id if fmt.id != "fp16" else "fp16",
                           kv_element_bytes=el, memory_bytes=int(total * 2**30), split=sp, batch=1,
                           request_tokens=mml, max_model_len=mml, memory_fraction=row["gpu_memory_utilization"],
                           profile_tokens_override=tokens, seqs_override=row["max_num_seqs"] or 256,
                           non_torch_override=non_torch, graphs_in_budget=False)
        logged_kv = row["kv_cache_gib_logged"]
        if logged_kv is None and row["gpu_blocks"] is not None:
            page = kv_cache_bytes(entry.arch, 16, 1, el) / min(tp, entry.arch.kv_heads)
            logged_kv = row["gpu_blocks"] * page / 2**30
        rec = {"row": row["id"], "split": split, "version": row.get("vllm_version"), "tp": tp,
               "weights_pred_gib": em.weights_per_device / 2**30, "weights_logged_gib": row["weights_gib_logged"],
               "kv_pred_gib": em.kv_pool / 2**30, "kv_logged_gib": logged_kv,
               "act_pred_gib": em.activation_peak / 2**30}
        if "unsloth-bnb" in row["model_hf_id"]:
            rec["weights_logged_gib"] = None     # Unsloth dynamic 4-bit keeps some layers 16-bit: not modelled
            rec["weights_note"] = "Unsloth dynamic 4-bit (some layers left 16-bit): weights not compared"
        out.append(rec)
    for r in out:
        r["weights_err"] = ((r["weights_pred_gib"] - r["weights_logged_gib"]) / r["weights_logged_gib"]
                            if r["weights_logged_gib"] else None)
        r["kv_err"] = (r["kv_pred_gib"] - r["kv_logged_gib"]) / abs(r["kv_logged_gib"]) if r["kv_logged_gib"] else None
    return out, skipped


def boot_fit(cat) -> dict:
    base = cat.runtimes["vllm"]
    rows_fit = [r["row"] for r in boot_checks(cat)[0] if r["split"] == "fit"]
    x0 = coordinates(BOOT_FIT, [get_param(base, p) for p in BOOT_FIT])

    def loss(x):
        rt = with_params(base, physical(BOOT_FIT, x))
        recs = [r for r in boot_checks(cat, rt)[0] if r["split"] == "fit" and r["kv_err"] is not None]
        return sum(r["kv_err"] ** 2 for r in recs)

    best = nelder_mead(loss, x0, step=0.5)
    return {"params": physical(BOOT_FIT, best), "rows": rows_fit}


# --- output -------------------------------------------------------------------------------------------------

def fmt_pct(x: float) -> str:
    return "   n/a" if x != x else f"{100 * x:5.1f}%"


def print_summary(title: str, s: dict) -> None:
    print(f"\n{title}")
    print(f"{'runtime':13} {'rows':>4} {'est':>4} {'cover':>6} | " +
          " | ".join(f"{k:>14} n  med   p90" for k in KINDS + ("all",)))
    for rid, e in s.items():
        cells = []
        for k in KINDS + ("all",):
            c = e[k]
            cells.append(f"{'':>14}{c['n']:>2} {fmt_pct(c['median'])} {fmt_pct(c['p90'])}" if c["n"] else
                         f"{'':>14} 0    -     -")
        print(f"{rid:13} {e['rows']:>4} {e['estimated']:>4} {fmt_pct(e['coverage'])} | " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="rows and summaries as JSON")
    ap.add_argument("--fit", action="store_true", help="refit the fitted constants on the fit rows and print them")
    ap.add_argument("--rows", action="store_true", help="print every check")
    ap.add_argument("--cv", action="store_true",
                    help="leave-one-out cross-validation of the fit over the fit rows (held-out rows unused)")
    ap.add_argument("--runtime", action="append", help="with --cv or --fit: only this runtime (repeatable)")
    ap.add_argument("--isa-from-table", action="store_true",
                    help="CPU rows: the ISA their table's heading names (the reading before 2026-12-01), not the CPU's")
    args = ap.parse_args(argv)
    global ISA_FROM_TABLE
    ISA_FROM_TABLE = args.isa_from_table
    cat, notes = load()
    cases, skipped = cases_from(cat)
    data = json.loads(PUBLISHED.read_text())
    splits = split_rows(data["rows"])
    skipped = [(rid, RUNTIMES.get(rt, rt), why, splits[rid]) for rid, rt, why in skipped]
    rows_total: dict[str, int] = {}
    for r in data["rows"]:
        rid = RUNTIMES.get(r["runtime"], r["runtime"])
        rows_total[rid] = rows_total.get(rid, 0) + 1

    only = set(args.runtime) if args.runtime else None
    if args.cv:
        results = cross_validate(cases, cat, only)
        if args.json:
            print(json.dumps(results, indent=1))
            return 0
        if args.rows:
            for r in results:
                print(f"{r['row']:48} {r['metric']:32} {r['predicted']:10.2f} {r['published']:10.2f} "
                      f"{100 * r['error']:+7.1f}% cv")
        print_cv(results)
        return 0

    if args.fit:
        fitted = fit(cases, cat, only=only)
        print("Fitted constants (Nelder-Mead on log |error|^2 over the FIT rows only):")
        for rid, f in fitted.items():
            print(f"\n{rid}: fit rows {', '.join(f['rows'])}")
            for p, v in f["params"].items():
                print(f"  {p} = {v:.4g}   (was {get_param(cat.runtimes[rid], p):.4g})")
        bf = boot_fit(cat)
        print(f"\nvllm pool (boot logs): fit rows {', '.join(bf['rows'])}")
        for p, v in bf["params"].items():
            print(f"  {p} = {v:.4g}   (was {get_param(cat.runtimes['vllm'], p):.4g})")
        trial = {rid: with_params(cat.runtimes[rid], f["params"]) for rid, f in fitted.items()}
        evaluate(cases, cat, trial)
        print_summary("HELD-OUT rows with the constants just fitted (not yet in catalog/runtimes.yaml)",
                      summarise(cases, skipped, rows_total, "holdout"))
        print_summary("FIT rows with the constants just fitted", summarise(cases, skipped, rows_total, "fit"))
        if args.rows:
            for c in (k for cs in cases for k in cs.checks):
                print(f"{c.row:48} {c.metric:32} {c.predicted:10.2f} {c.published:10.2f} "
                      f"{100 * c.error:+7.1f}% {c.split}")
        return 0

    evaluate(cases, cat)
    checks = [k for c in cases for k in c.checks]
    s_hold = summarise(cases, skipped, rows_total, "holdout")
    s_fit = summarise(cases, skipped, rows_total, "fit")
    s_all = summarise(cases, skipped, rows_total, None)
    boots, boot_skipped = boot_checks(cat)
    boot_errs = {sp: [abs(e) for r in boots if sp in ("all", r["split"]) for e in (r["weights_err"], r["kv_err"])
                      if e is not None] for sp in ("holdout", "fit", "all")}
    hold = s_hold["all"]
    goals = {"coverage": s_all["all"]["coverage"] >= COVERAGE_GOAL,
             "median": hold["all"]["median"] <= MEDIAN_GOAL, "p90": hold["all"]["p90"] <= P90_GOAL,
             "bootlogs": bool(boot_errs["holdout"]) and max(boot_errs["holdout"]) <= BOOT_GOAL}
    if args.json:
        print(json.dumps({"checks": [{**{k: v for k, v in vars(c).items() if k != "predict"}, "error": c.error}
                                     for c in checks],
                          "assumptions": {c.row["id"]: c.assumptions for c in cases if c.assumptions},
                          "skipped": skipped, "summary": {"holdout": s_hold, "fit": s_fit, "all": s_all},
                          "bootlogs": boots, "bootlogs_skipped": boot_skipped, "goals": goals, "notes": notes},
                         indent=1, default=str))
        return 0 if all(goals.values()) else 1

    if args.rows:
        print(f"{'row':48} {'runtime':12} {'metric':32} {'pred':>10} {'published':>10} {'err':>8} split")
        for c in checks:
            print(f"{c.row:48} {c.runtime:12} {c.metric:32} {c.predicted:10.2f} {c.published:10.2f} "
                  f"{100 * c.error:+7.1f}% {c.split}")
        print("\nassumptions per row:")
        for case in cases:
            if case.assumptions:
                print(f"  {case.row['id']}: {'; '.join(case.assumptions)}")
    print_summary("HELD-OUT rows (the goals are judged here)", s_hold)
    print_summary("FIT rows (the fitted constants saw these)", s_fit)
    print_summary("ALL rows", s_all)
    print("\nrows that could not be estimated:" + ("" if skipped else " none"))
    for rid, rt, why, sp in skipped:
        print(f"  {rid} ({rt}, {sp}): {why}")
    print("not checked: the median end-to-end latency of the open-loop ShareGPT rows (sglang030-/vllm060-*-rps4): the "
          "median request's output length is not stated (only the mean, 194 tokens, follows from the source)")
    print("\nvLLM memory vs boot logs (per GPU, GiB; rules per vLLM version):")
    print(f"{'row':46} {'split':7} {'weights pred':>12} {'logged':>7} {'err':>7} | "
          f"{'KV pred':>8} {'logged':>7} {'err':>7}")
    for r in boots:
        we = f"{100 * r['weights_err']:+6.1f}%" if r["weights_err"] is not None else "     -"
        wl = f"{r['weights_logged_gib']:7.2f}" if r["weights_logged_gib"] else "      -"
        ke = f"{100 * r['kv_err']:+6.1f}%" if r["kv_err"] is not None else "     -"
        print(f"{r['row']:46} {r['split']:7} {r['weights_pred_gib']:12.2f} {wl} {we} | {r['kv_pred_gib']:8.2f} "
              f"{r['kv_logged_gib']:7.2f} {ke}")
    for rid, why in boot_skipped:
        print(f"  not checked: {rid}: {why}")
    for sp in ("holdout", "fit", "all"):
        e = boot_errs[sp]
        if e:
            within = sum(x <= BOOT_GOAL for x in e)
            print(f"boot-log checks ({sp}): {len(e)}, within 10%: {within}, worst {100 * max(e):.1f}%")
    print("\nGOALS (held-out rows; coverage over all 70 rows):")
    print(f"  coverage {100 * s_all['all']['coverage']:.1f}% (>= 90%): {'MET' if goals['coverage'] else 'NOT MET'}")
    print(f"  median |error| {100 * hold['all']['median']:.1f}% (<= 15%): {'MET' if goals['median'] else 'NOT MET'}")
    print(f"  p90 |error| {100 * hold['all']['p90']:.1f}% (<= 35%): {'MET' if goals['p90'] else 'NOT MET'}")
    print(f"  vLLM weights and KV pool within 10% on every held-out boot-log check: "
          f"{'MET' if goals['bootlogs'] else 'NOT MET'}")
    print(f"  (all rows: median {100 * s_all['all']['all']['median']:.1f}%, "
          f"p90 {100 * s_all['all']['all']['p90']:.1f}%)")
    for n in notes:
        print(f"note: {n}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

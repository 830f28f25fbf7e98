"""`advisor estimate`: memory and latency of one model on one target, every term shown."""

from __future__ import annotations

import click

from advisor.cli.common import catalog_option, console, human_bytes, json_option, log_result, mlflow_options, print_json

_VERDICT_WORDS = {"fits": "FITS", "fits-with-offload": "FITS ONLY WITH CPU OFFLOAD", "does-not-fit": "DOES NOT FIT"}
_BASIS_WORDS = {"spec": "datasheet peaks x documented efficiencies", "calibrated": "formulas fed with rates "
                "measured on this machine", "measured": "timed on this machine"}


@click.command("estimate")
@click.argument("model")
@catalog_option
@click.option("--target", default="local", show_default=True, metavar="local|ID",
              help="'local' (this machine) or a hardware.yaml target id.")
@click.option("--format", "fmt", default=None, metavar="ID",
              help="Weight format (catalog/formats.yaml): bf16, fp16, fp32, fp8, int8, int4, awq, gptq, nf4, "
                   "mxfp4, nvfp4, q4_0, q4_k_m, q5_k_m, q6_k, q8_0. One the model's developer does not publish "
                   "is estimated as a community or self-quantised checkpoint [default: bf16, or the model's native "
                   "format when no 16-bit checkpoint is published (gpt-oss: mxfp4)].")
@click.option("--kv-format", default="fp16", show_default=True, type=click.Choice(["fp16", "fp8"]),
              help="KV-cache element format.")
@click.option("--batch", "--concurrency", "batch", default=1, show_default=True, type=int,
              help="Sequences decoding together (continuous batching on serving engines; one static batch "
                   "for transformers).")
@click.option("--prompt-tokens", default=None, type=int, help="Prompt length per sequence [default: 512].")
@click.option("--new-tokens", default=None, type=int, help="Generated tokens per sequence [default: 128].")
@click.option("--runtime", default=None, metavar="ID",
              help="Serving runtime (catalog/runtimes.yaml): vllm, sglang, tgi, tensorrt-llm, llama.cpp "
                   "(ollama), transformers, gpt-fast. Default: vllm on a named GPU target, llama.cpp on a "
                   "named CPU target, transformers on this machine (what the probes measure).")
@click.option("--gpus", default=1, show_default=True, type=int,
              help="GPUs of one node to split the model over (tensor parallel: must divide the attention heads; "
                   "llama.cpp and transformers split layers).")
@click.option("--max-model-len", type=int, default=None,
              help="Serving engines: the longest sequence the KV pool is sized for [default: prompt + new].")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="vLLM's memory fraction (SGLang mem_fraction_static, TensorRT-LLM free fraction) "
                   "[default: the runtime's].")
@click.option("--no-probe", is_flag=True, help="Skip the local probes: spec figures only.")
@json_option
@mlflow_options
def estimate(model, catalog_paths, target, fmt, kv_format, batch, prompt_tokens, new_tokens, runtime, gpus,
             max_model_len, gpu_memory_utilization, no_probe, as_json, to_mlflow, tracking_uri, experiment):
    """Estimate peak memory and latency of MODEL, and say whether it fits.

    \b
    Every figure carries its basis: spec (datasheet), calibrated (probe rates) or measured,
    and names the runtime and the version its constants assume.
    Examples:
      advisor estimate llama-3.1-8b --target a10g-24gb                 # vLLM, the default on GPU targets
      advisor estimate llama-3.1-70b --target a100-80gb --gpus 2       # tensor parallel over 2 GPUs
      advisor estimate mixtral-8x7b --target a100-80gb --format int4   # a community int4 checkpoint
      advisor estimate llama-3.1-8b --target rtx4090-24gb --runtime ollama --format q4_k_m
      advisor estimate llama-3.1-8b --target h100-sxm-80gb --concurrency 32 --max-model-len 8192
      advisor estimate qwen2.5-0.5b --no-probe --json
    """
    from advisor.estimate.engine import DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_TOKENS
    from advisor.estimate.engine import estimate as run_estimate

    if fmt is None:
        from advisor.catalog.loader import get_catalog

        offered = get_catalog(catalog_paths).model(model).offered_formats()
        fmt = "bf16" if "bf16" in offered or not offered else offered[0]
    est = run_estimate(model, target=target, format=fmt, kv_format=kv_format, batch=batch,
                       prompt_tokens=DEFAULT_PROMPT_TOKENS if prompt_tokens is None else prompt_tokens,
                       new_tokens=DEFAULT_NEW_TOKENS if new_tokens is None else new_tokens, runtime=runtime,
                       gpus=gpus, catalog_paths=catalog_paths, probe=not no_probe, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization)
    if as_json:
        print_json(est)
    else:
        render(est)
    if to_mlflow:
        return log_result("estimate", est, tracking_uri=tracking_uri, experiment=experiment)
    return 0


def _ms(x: float) -> str:
    return f"{x:,.1f} ms" if x >= 1 else f"{x:.3f} ms"


def render(est) -> None:
    from rich.markup import escape as e
    from rich.table import Table

    out = console()
    m, lat = est.memory, est.latency
    on = f"{est.gpus} x {est.target}" if est.gpus > 1 else est.target
    origin = "" if est.format_origin == "official" else f" ({e(est.format_origin)})"
    split = f", {est.parallel} parallel" if est.gpus > 1 else ""
    out.print(f"[bold]{e(est.model)}[/bold] on [bold]{e(on)}[/bold]{split}: {est.format} weights{origin}, "
              f"{est.kv_format} KV cache, batch {est.batch}, {est.prompt_tokens} prompt + {est.new_tokens} new tokens")
    out.print(f"runtime: [bold]{e(est.runtime)}[/bold] ({e(est.runtime_version or '')})")

    mem = Table(title=f"Memory (basis: {m.basis})", title_justify="left")
    mem.add_column("term")
    mem.add_column("bytes", justify="right")
    for name, value in m.terms.items():
        mem.add_row(e(name.replace("_", " ")), human_bytes(value))
    mem.add_row("[bold]peak (max allocated)[/bold]", f"[bold]{human_bytes(m.peak_bytes)}[/bold]")
    mem.add_row("  of which weights / KV cache / activations",
                f"{human_bytes(m.weights_bytes)} / {human_bytes(m.kv_cache_bytes)} / "
                f"{human_bytes(m.activations_bytes)}")
    mem.add_row("overhead (CUDA context, allocator slack)", human_bytes(m.overhead_bytes))
    mem.add_row("[bold]per device[/bold]", f"[bold]{human_bytes(m.per_device_bytes)}[/bold]")
    if m.weights_bytes_per_device is not None and est.gpus > 1:
        mem.add_row("weights per device", human_bytes(m.weights_bytes_per_device))
    mem.add_row("available on one device", human_bytes(m.available_bytes))
    if m.offload_bytes:
        mem.add_row("offloaded to host RAM", human_bytes(m.offload_bytes))
    if m.kv_pool_bytes is not None:
        mem.add_row(f"{est.runtime} KV pool per device", human_bytes(m.kv_pool_bytes))
        mem.add_row(f"sequences of {m.max_model_len} tokens it holds", str(m.max_concurrent_sequences))
    out.print(mem)

    t = lat.terms
    tab = Table(title=f"Latency (basis: {lat.source}: {_BASIS_WORDS[lat.source]})", title_justify="left")
    tab.add_column("term")
    tab.add_column("value", justify="right")
    tab.add_row("prefill FLOPs", f"{t.get('prefill_tflop', 0):.3f} TFLOP "
                f"(LM head {t.get('prefill_lm_head_tflop', 0):.3f}, "
                f"attention {t.get('prefill_attention_tflop', 0):.3f})")
    tab.add_row("prefill: compute / weight read / host overhead",
                f"{_ms(t['prefill_compute_ms'])} / {_ms(t['prefill_weight_read_ms'])} / "
                f"{_ms(t['prefill_overhead_ms'])}")
    tab.add_row("bytes read per decode step", f"{t.get('decode_bytes_per_step_gb', 0):.3f} GB")
    tab.add_row("decode step: weights / KV cache / compute / host / interconnect",
                f"{_ms(t['decode_bandwidth_ms'])} / {_ms(t.get('decode_kv_ms', 0))} / {_ms(t['decode_compute_ms'])} / "
                f"{_ms(t['decode_overhead_ms'])} / {_ms(t.get('decode_comm_ms', 0))}")
    if lat.concurrency > 1:
        tab.add_row(f"one step at {lat.concurrency:g} sequences ({lat.scheduling})", _ms(t.get("decode_step_ms", 0)))
        if t.get("prefill_interference_ms"):
            tab.add_row("other requests' prefills, per output token", _ms(t["prefill_interference_ms"]))
    if t.get("offload_ms_per_step"):
        tab.add_row("offload streaming per step", _ms(t["offload_ms_per_step"]))
    tab.add_row("rates used", f"{lat.rates.get('matmul_tflops', 0):.1f} TFLOPS, "
                f"{lat.rates.get('bandwidth_gbs', 0):.0f} GB/s")
    tab.add_row("[bold]time to first token[/bold]", f"[bold]{_ms(lat.ttft_ms)}[/bold]")
    per = " per stream" if lat.concurrency > 1 else ""
    tab.add_row(f"[bold]time per output token{per}[/bold]",
                f"[bold]{_ms(lat.decode_ms_per_token)}[/bold] ({lat.bound}-bound)")
    tab.add_row("whole request (p50 / p95)", f"{_ms(lat.e2e_ms)} / {_ms(lat.e2e_p95_ms)}")
    tab.add_row("generated tokens per second" + (" (all streams)" if lat.concurrency > 1 else ""),
                f"{lat.tokens_per_s:,.1f}")
    if lat.joules_per_token is not None:
        tab.add_row("energy per token", f"{lat.joules_per_token:.2f} J")
    out.print(tab)

    colour = {"fits": "green", "fits-with-offload": "yellow", "does-not-fit": "red"}[m.verdict]
    out.print(f"[bold {colour}]Verdict: {_VERDICT_WORDS[m.verdict]}[/bold {colour}]. {e(m.explanation)}")
    out.print(f"Latency: {e(lat.explanation)}")
    for note in est.notes:
        out.print(f"note: {e(note)}")

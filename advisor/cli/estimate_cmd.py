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
@click.option("--format", "fmt", default="bf16", show_default=True,
              type=click.Choice(["fp32", "bf16", "fp16", "int8", "int4"]), help="Weight format.")
@click.option("--kv-format", default="fp16", show_default=True, type=click.Choice(["fp16", "fp8"]),
              help="KV-cache element format.")
@click.option("--batch", default=1, show_default=True, type=int, help="Sequences per forward.")
@click.option("--prompt-tokens", default=None, type=int, help="Prompt length per sequence [default: 512].")
@click.option("--new-tokens", default=None, type=int, help="Generated tokens per sequence [default: 128].")
@click.option("--runtime", default="transformers", show_default=True, type=click.Choice(["transformers", "vllm"]))
@click.option("--gpus", default=1, show_default=True, type=int, help="GPUs to split the model over.")
@click.option("--no-probe", is_flag=True, help="Skip the local probes: spec figures only.")
@json_option
@mlflow_options
def estimate(model, catalog_paths, target, fmt, kv_format, batch, prompt_tokens, new_tokens, runtime, gpus,
             no_probe, as_json, to_mlflow, tracking_uri, experiment):
    """Estimate peak memory and latency of MODEL, and say whether it fits.

    \b
    Every figure carries its basis: spec (datasheet), calibrated (probe rates) or measured.
    Examples:
      advisor estimate llama-3.1-8b --target a10g-24gb
      advisor estimate llama-3.1-8b --target h100-sxm-80gb --runtime vllm --batch 8
      advisor estimate qwen2.5-0.5b --no-probe --json
    """
    from advisor.estimate.engine import DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_TOKENS
    from advisor.estimate.engine import estimate as run_estimate

    est = run_estimate(model, target=target, format=fmt, kv_format=kv_format, batch=batch,
                       prompt_tokens=DEFAULT_PROMPT_TOKENS if prompt_tokens is None else prompt_tokens,
                       new_tokens=DEFAULT_NEW_TOKENS if new_tokens is None else new_tokens, runtime=runtime,
                       gpus=gpus, catalog_paths=catalog_paths, probe=not no_probe)
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
    out.print(f"[bold]{e(est.model)}[/bold] on [bold]{e(on)}[/bold]: {est.format} weights, {est.kv_format} KV cache, "
              f"{est.runtime}, batch {est.batch}, {est.prompt_tokens} prompt + {est.new_tokens} new tokens")

    mem = Table(title=f"Memory (basis: {m.basis})", title_justify="left")
    mem.add_column("term")
    mem.add_column("bytes", justify="right")
    for name, value in m.terms.items():
        mem.add_row(e(name.replace("_", " ")), human_bytes(value))
    mem.add_row("[bold]peak (max allocated)[/bold]", f"[bold]{human_bytes(m.peak_bytes)}[/bold]")
    mem.add_row("  of which weights / KV cache / activations",
                f"{human_bytes(m.weights_bytes)} / {human_bytes(m.kv_cache_bytes)} / {human_bytes(m.activations_bytes)}")
    mem.add_row("overhead (CUDA context, allocator slack)", human_bytes(m.overhead_bytes))
    mem.add_row("[bold]per device[/bold]", f"[bold]{human_bytes(m.per_device_bytes)}[/bold]")
    mem.add_row("available on one device", human_bytes(m.available_bytes))
    if m.offload_bytes:
        mem.add_row("offloaded to host RAM", human_bytes(m.offload_bytes))
    if m.kv_pool_bytes is not None:
        mem.add_row("vLLM KV pool per device", human_bytes(m.kv_pool_bytes))
        mem.add_row("concurrent sequences it holds", str(m.max_concurrent_sequences))
    out.print(mem)

    t = lat.terms
    tab = Table(title=f"Latency (basis: {lat.source}: {_BASIS_WORDS[lat.source]})", title_justify="left")
    tab.add_column("term")
    tab.add_column("value", justify="right")
    tab.add_row("prefill FLOPs", f"{t.get('prefill_tflop', 0):.3f} TFLOP (LM head {t.get('prefill_lm_head_tflop', 0):.3f}, "
                f"attention {t.get('prefill_attention_tflop', 0):.3f})")
    tab.add_row("prefill: compute / weight read / host overhead",
                f"{_ms(t['prefill_compute_ms'])} / {_ms(t['prefill_weight_read_ms'])} / {_ms(t['prefill_overhead_ms'])}")
    tab.add_row("bytes read per decode step", f"{t.get('decode_bytes_per_step_gb', 0):.3f} GB")
    tab.add_row("decode step: bandwidth / compute / host overhead",
                f"{_ms(t['decode_bandwidth_ms'])} / {_ms(t['decode_compute_ms'])} / {_ms(t['decode_overhead_ms'])}")
    if t.get("offload_ms_per_step"):
        tab.add_row("offload streaming per step", _ms(t["offload_ms_per_step"]))
    tab.add_row("rates used", f"{lat.rates.get('matmul_tflops', 0):.1f} TFLOPS, {lat.rates.get('bandwidth_gbs', 0):.0f} GB/s")
    tab.add_row("[bold]time to first token[/bold]", f"[bold]{_ms(lat.ttft_ms)}[/bold]")
    tab.add_row("[bold]decode per token[/bold]", f"[bold]{_ms(lat.decode_ms_per_token)}[/bold] ({lat.bound}-bound)")
    tab.add_row("whole request (p50 / p95)", f"{_ms(lat.e2e_ms)} / {_ms(lat.e2e_p95_ms)}")
    tab.add_row("generated tokens per second", f"{lat.tokens_per_s:,.1f}")
    if lat.joules_per_token is not None:
        tab.add_row("energy per token", f"{lat.joules_per_token:.2f} J")
    out.print(tab)

    colour = {"fits": "green", "fits-with-offload": "yellow", "does-not-fit": "red"}[m.verdict]
    out.print(f"[bold {colour}]Verdict: {_VERDICT_WORDS[m.verdict]}[/bold {colour}]. {e(m.explanation)}")
    out.print(f"Latency: {e(lat.explanation)}")
    for note in est.notes:
        out.print(f"note: {e(note)}")

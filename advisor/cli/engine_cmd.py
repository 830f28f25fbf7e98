"""`advisor probe-engine`: time the real llama.cpp engine on this CPU with a synthetic GGUF."""

from __future__ import annotations

import time

import click

from advisor.cli.common import catalog_option, console, info, json_option

ENGINE_FORMATS = ["q4_0", "q8_0", "q4_k_m", "q5_k_m", "q6_k", "f16", "bf16", "f32"]


def _pct(measured: float, spec: float) -> str:
    return f"{100 * (spec - measured) / measured:+.0f}%"


@click.command(name="probe-engine", epilog="""\b
Examples:
  advisor probe-engine qwen2.5-0.5b                   Q4_0, all physical cores
  advisor probe-engine llama-3.1-8b --format q8_0 --threads 4 --json
\b
Needs the [engine] extra (llama-cpp-python, gguf): pip install 'model-advisor[engine]'.
Exit codes: 0 measured, 1 llama.cpp failed on every attempt or the probe does not fit,
2 usage error, an architecture the synthetic GGUF cannot write, or the extra is not installed.""")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(ENGINE_FORMATS), default="q4_0", show_default=True,
              help="GGUF weight type of the synthetic file.")
@click.option("--threads", type=click.IntRange(1, 4096), default=None,
              help="llama.cpp threads for prefill and decode [default: physical cores].")
@click.option("--prompt-tokens", type=click.IntRange(1, 32768), default=512, show_default=True,
              help="Prompt length (llama-bench's pp test).")
@click.option("--new-tokens", type=click.IntRange(2, 4096), default=16, show_default=True,
              help="Decode steps timed after the prompt (llama-bench's tg test starts from an empty cache).")
@click.option("--budget-s", type=click.FloatRange(5, 24 * 3600), default=180.0, show_default=True,
              help="Time budget for the timing (writing the file comes on top).")
@click.option("--memory-fraction", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True,
              help="Largest share of free RAM the probe may use.")
@click.option("--refresh", is_flag=True, help="Re-measure even when this request is in the probe cache.")
@catalog_option
@json_option
def probe_engine(model, fmt, threads, prompt_tokens, new_tokens, budget_s, memory_fraction, refresh, catalog_paths,
                 as_json):
    """Time llama.cpp itself on this machine: the model's shapes as a GGUF with random weights.

    Prefill and decode as llama-bench times them, next to the spec estimate of `advisor estimate
    --runtime llama.cpp` for the same request, so the gap between the two is on screen.
    """
    import psutil

    from advisor.catalog.loader import get_catalog
    from advisor.errors import AdvisorError, UsageError
    from advisor.estimate.engine import estimate
    from advisor.probe import gguf_synth
    from advisor.probe import llamacpp_engine as le

    why = le.missing()
    if why:
        raise UsageError(why)
    cat = get_catalog(catalog_paths)
    entry = cat.model(model)
    try:
        gguf_synth.check_writable(entry.arch, fmt)
    except ValueError as exc:              # UnsupportedArchitecture included
        raise UsageError(str(exc)) from None
    threads = threads or psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    catalog_fmt = gguf_synth.GGUF_TO_CATALOG.get(fmt, fmt)
    t0 = time.perf_counter()
    hit = None if refresh else le.cached(entry.arch, fmt, model_id=entry.id, threads=threads, prompt=prompt_tokens,
                                          steps=new_tokens)
    if hit is not None:
        measurement = hit
        details = le.EngineDetails(threads=threads, layers_timed=hit.layers_timed,
                                   extrapolated=len(hit.layers_timed) > 1,
                                   extra_bufts=not any("plain CPU buffers" in n for n in hit.notes),
                                   llama_cpp_python=le.engine_version() or "", system_info="",
                                   notes=[*hit.notes, "from the probe cache (--refresh re-measures)"])
    else:
        try:
            with console(stderr=True).status(f"{entry.id}: writing a synthetic {fmt} GGUF and timing llama.cpp"):
                measurement, details = le.probe_engine(entry.arch, fmt, model_id=entry.id, threads=threads,
                                                       prompt=prompt_tokens, steps=new_tokens, budget_s=budget_s,
                                                       memory_fraction=memory_fraction)
        except le.EngineProbeRefused as exc:
            if as_json:
                from advisor.cli.common import print_json

                print_json({"schema_version": 1, "model": entry.id, "format": fmt, "runtime": "llama.cpp",
                            "measurement": None, "not_measured": str(exc)})
            info(f"not measured: {exc}")
            return 1
        if le.trusted(measurement):
            le.save(measurement, entry.arch, threads=threads, steps=new_tokens)
    wall = time.perf_counter() - t0
    spec = measured = None
    notes = list(details.notes)
    try:
        kw = dict(target="local", format=catalog_fmt, runtime="llama.cpp", prompt_tokens=prompt_tokens,
                  new_tokens=new_tokens, catalog_paths=catalog_paths, probe=False)
        spec = estimate(entry, **kw).latency
        measured = estimate(entry, measurement=measurement, **kw).latency
    except AdvisorError as exc:
        notes.append(f"no spec estimate to compare: {exc}")
    prefill, decode = measurement.prefill_ms.p50, measurement.decode_ms_per_token.p50
    doc = {"schema_version": 1, "model": entry.id, "format": fmt, "runtime": "llama.cpp", "basis": "measured",
           "threads": threads, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
           "measurement": measurement.model_dump(mode="json"),
           "engine": {"llama_cpp_python": details.llama_cpp_python, "system_info": details.system_info,
                      "extra_buffer_types": details.extra_bufts, "layers_timed": details.layers_timed,
                      "extrapolated": details.extrapolated},
           "spec": ({"prefill_ms": spec.prefill_ms, "decode_ms_per_token": spec.decode_ms_per_token,
                     "prefill_error": (spec.prefill_ms - prefill) / prefill,
                     "decode_error": (spec.decode_ms_per_token - decode) / decode} if spec else None),
           "measured_estimate": ({"ttft_ms": measured.ttft_ms, "e2e_ms": measured.e2e_ms} if measured else None),
           "from_cache": hit is not None, "notes": notes, "wall_s": round(wall, 2)}
    if as_json:
        from advisor.cli.common import print_json

        print_json(doc)
        return 0
    from rich.table import Table

    table = Table(title=f"{entry.id} {fmt} under llama.cpp on this CPU ({threads} threads)", title_justify="left")
    for col in ("", "measured", "spec estimate", "spec vs measured"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row(f"prefill {prompt_tokens} tokens (ms)", f"{prefill:.1f}", f"{spec.prefill_ms:.1f}" if spec else "-",
                  _pct(prefill, spec.prefill_ms) if spec else "-")
    table.add_row("decode (ms/token)", f"{decode:.2f}", f"{spec.decode_ms_per_token:.2f}" if spec else "-",
                  _pct(decode, spec.decode_ms_per_token) if spec else "-")
    table.add_row("prefill (tok/s)", f"{1e3 * prompt_tokens / prefill:.1f}", "", "")
    table.add_row("decode (tok/s)", f"{1e3 / decode:.1f}", "", "")
    out = console()
    out.print(table)
    how = (f"timed at {details.layers_timed} layers, extrapolated" if details.extrapolated
           else f"all {details.layers_timed[0]} layers timed")
    out.print(f"basis: measured (llama.cpp-engine; {how}); llama-cpp-python {details.llama_cpp_python}")
    for n in notes:
        out.print(f"[dim]{n}[/dim]")
    info(f"probed in {wall:.1f} s")
    return 0

"""`advisor probe`: measure latency on this machine with short torch probes."""

from __future__ import annotations

import time

import click

from advisor.cli.common import catalog_option, console, human_bytes, info, json_option, log_result, mlflow_options  # noqa: F401

DEFAULT_PROMPT, DEFAULT_NEW, DEFAULT_BATCH = 256, 32, 1


def _format_default() -> str:
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


class _Bar:
    """A rich progress bar on stderr; `callback(what, fraction)` moves it."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description:<40}"), BarColumn(), TimeElapsedColumn(),
                                     console=console(stderr=True), transient=True)
            self.progress.__enter__()
        return self

    def start(self, label: str):
        if self.progress is not None:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(label, total=1.0)
        self.label = label

    def callback(self, what: str, fraction: float) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=fraction, description=f"{self.label}: {what}"[:40])

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def _table(rows: list[dict], rates) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    t = Table(title="Latency on this machine (shape: batch x prompt tokens; decode: one step)", title_justify="left")
    for col, just in [("model", "left"), ("method", "left"), ("fmt", "left"), ("shape", "right"),
                      ("prefill ms\np50 / p95", "right"), ("decode ms/tok\np50 / p95", "right"),
                      ("decode\nstdev", "right"), ("peak\nmemory", "right"), ("J/token", "right"),
                      ("basis", "left"), ("cached", "left")]:
        t.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        m = r.get("measurement")
        if m is None:
            verdict = "[red]does not fit[/red]" if r.get("does_not_fit") else "[yellow]not measured[/yellow]"
            t.add_row(r["model"], r.get("method", "-"), r["format"], "-", verdict, "-", "-", "-", "-", "-", "-")
            continue
        t.add_row(m.model, m.method, m.format, f"{m.batch}x{m.prompt_tokens}",
                  f"{_ms(m.prefill_ms.p50)} / {_ms(m.prefill_ms.p95)}",
                  f"{_ms(m.decode_ms_per_token.p50)} / {_ms(m.decode_ms_per_token.p95)}",
                  _ms(m.decode_ms_per_token.stdev), human_bytes(m.peak_bytes),
                  "-" if m.joules_per_token is None else f"{m.joules_per_token:.2f}", "measured",
                  "yes" if r.get("from_cache") else "no")
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    out.print(t)
    if rates is not None:
        mm = ", ".join(f"{k} {v * 1000:.0f} GFLOPS" if v < 1 else f"{k} {v:.1f} TFLOPS"
                       for k, v in rates.matmul_tflops.items())
        extra = (f", per-layer host overhead {rates.per_layer_overhead_ms:.3f} ms"
                 if rates.per_layer_overhead_ms is not None else "")
        out.print(f"device {rates.device} (measured): matmul {mm}; copy {rates.bandwidth_gbs:.1f} GB/s; "
                  f"framework step {rates.step_overhead_ms * 1000:.1f} us{extra}")
    for r in rows:
        if r.get("measurement") is None:
            out.print(f"[yellow]{escape(str(r['model']))}: not measured: {escape(str(r['skipped']))}[/yellow]")
    for r in rows:
        m = r.get("measurement")
        for note in (m.notes if m is not None else []):
            out.print(f"[dim]{escape(m.model)}: {escape(note)}[/dim]")


@click.command(epilog="""\b
Examples:
  advisor probe qwen2.5-0.5b                      probe one catalog model (cached afterwards)
  advisor probe gpt2 smollm2-135m --task chat     at the task's prompt/output lengths
  advisor probe --model-path ./my-model            run real local weights
  advisor probe --model-uri models:/summarizer@prod --json
\b
Exit codes: 0 something was measured, 1 nothing could be measured (budget, does not fit),
2 usage error or torch not installed.""")
@click.argument("models", nargs=-1)
@click.option("--target", default="local", show_default=True, help="Only 'local': probes run on this machine.")
@click.option("--task", "task_id", default=None, help="Task profile whose prompt/output lengths and batch to use.")
@click.option("--prompt-tokens", type=click.IntRange(1, 1_000_000), default=None,
              help=f"Prompt length (default {DEFAULT_PROMPT} or the task's).")
@click.option("--new-tokens", type=click.IntRange(1, 100_000), default=None,
              help=f"Generated tokens (default {DEFAULT_NEW} or the task's).")
@click.option("--batch", type=click.IntRange(1, 4096), default=None,
              help="Sequences per request (default 1 or the task's).")
@click.option("--format", "fmt", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Weight format; auto: bf16/fp16 on CUDA, fp32 on CPU.")
@click.option("--budget-s", type=click.FloatRange(0.1, 24 * 3600), default=60.0, show_default=True,
              help="Time budget per model; the probe stops there with what it measured.")
@click.option("--memory-fraction", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True,
              help="Largest share of free device memory a probe may allocate.")
@click.option("--refresh", is_flag=True, help="Re-measure even when cached results exist.")
@click.option("--model-path", type=click.Path(file_okay=False), default=None,
              help="A local transformers model folder (real weights).")
@click.option("--model-uri", default=None, help="An MLflow model: models:/NAME/VERSION or models:/NAME@ALIAS.")
@catalog_option
@json_option
@mlflow_options
def probe(models, target, task_id, prompt_tokens, new_tokens, batch, fmt, budget_s, memory_fraction, refresh,
          model_path, model_uri, catalog_paths, as_json, to_mlflow, tracking_uri, experiment):
    """Measure prefill and decode latency on this machine with short torch probes.

    Catalog models are built with random weights, truncated to a few layers, timed layer by layer
    and extrapolated to full depth (method "architecture-probe"); --model-path/--model-uri run the
    real weights (method "real-model"). Results are cached per machine, software and request.
    """
    from advisor.errors import TorchMissingError, UsageError
    from advisor.probe.base import TORCH_MISSING, ProbeConfig

    if target != "local":
        raise UsageError(f"probes run only on this machine, not on '{target}'",
                         hint="use --target local, or 'advisor estimate MODEL --target ...' for spec figures")
    if not models and model_path is None and model_uri is None:
        raise UsageError("name a catalog model, --model-path DIR or --model-uri models:/NAME/VERSION")
    if model_path is not None and model_uri is not None:
        raise UsageError("give only one of --model-path and --model-uri")
    from advisor.catalog.loader import get_catalog

    entries = []
    task = None
    if models or task_id:
        cat = get_catalog(catalog_paths)
        entries = [cat.model(m) for m in models]
        task = cat.task(task_id) if task_id else None
    P = prompt_tokens or (task.prompt_tokens if task else DEFAULT_PROMPT)
    N = new_tokens or (task.new_tokens if task else DEFAULT_NEW)
    B = batch or (task.batch if task else DEFAULT_BATCH)

    from advisor.probe.api import local_calibration, probe_real_model, torch_available

    if not torch_available():
        raise TorchMissingError(TORCH_MISSING)
    fmt = _format_default() if fmt == "auto" else fmt
    config = ProbeConfig(budget_s=budget_s, memory_fraction=memory_fraction)
    rows: list[dict] = []
    rates = None
    t0 = time.perf_counter()
    with _Bar(enabled=True) as bar:
        for entry in entries:
            bar.start(entry.id)
            res = local_calibration(entry, fmt, B, P, N, refresh=refresh, progress=bar.callback, config=config)
            rates = res.rates or rates
            rows.append({"model": entry.id, "format": fmt, "method": "architecture-probe",
                         "measurement": res.measurement, "skipped": res.skipped, "from_cache": res.from_cache,
                         "does_not_fit": res.does_not_fit})
        if model_path is not None or model_uri is not None:
            from advisor.probe.base import BudgetExhausted, DoesNotFit

            name = model_uri or model_path
            bar.start("real model")
            try:
                m = probe_real_model(model_path=model_path, model_uri=model_uri, fmt=fmt, batch=B, prompt_tokens=P,
                                     new_tokens=N, progress=bar.callback, config=config)
                rows.append({"model": name, "format": fmt, "method": "real-model", "measurement": m,
                             "skipped": None, "from_cache": False, "does_not_fit": False})
            except (DoesNotFit, BudgetExhausted, RuntimeError) as exc:
                from advisor.probe.api import probe_failed

                reason = (f"does not fit: {exc}" if isinstance(exc, DoesNotFit) else
                          str(exc) if isinstance(exc, BudgetExhausted) else probe_failed(exc))
                rows.append({"model": name, "format": fmt, "method": "real-model", "measurement": None,
                             "skipped": reason, "from_cache": False, "does_not_fit": isinstance(exc, DoesNotFit)})
    wall = time.perf_counter() - t0
    doc = {
        "schema_version": 1, "prompt_tokens": P, "new_tokens": N, "batch": B, "format": fmt,
        "rates": rates.model_dump(mode="json") if rates is not None else None,
        "results": [{"model": r["model"], "method": r["method"], "from_cache": r["from_cache"],
                     "skipped": r["skipped"], "does_not_fit": r["does_not_fit"], "basis": "measured",
                     "measurement": r["measurement"].model_dump(mode="json") if r["measurement"] else None}
                    for r in rows],
        "wall_s": round(wall, 2)}
    if as_json:
        from advisor.cli.common import print_json

        print_json(doc)
    else:
        _table(rows, rates)
        info(f"probed in {wall:.1f} s (budget {budget_s:g} s per model)")
    code = 0 if any(r["measurement"] is not None for r in rows) else 1
    if to_mlflow:
        return log_result("probe", doc, tracking_uri=tracking_uri, experiment=experiment) or code
    return code

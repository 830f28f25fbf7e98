"""`advisor recommend`: the main job."""

from __future__ import annotations

import click

from advisor.cli.common import (
    catalog_option,
    console,
    info,
    json_option,
    local_models_options,
    print_json,
    threshold_options,
)
from advisor.errors import EXIT_FAILED, EXIT_INFRA, UsageError


def _list(values: tuple[str, ...]) -> list[str] | None:
    out = [x.strip() for v in values for x in v.split(",") if x.strip()]
    return out or None


@click.command()
@click.option("--task", help="Task profile from catalog/tasks.yaml (summarization, chat, code, ...).")
@click.option("--target", "targets", multiple=True, metavar="ID",
              help="local (default) or a hardware.yaml id; repeat for several targets.")
@click.option("--prompt-tokens", type=click.IntRange(1, 10_000_000), help="Override the task's typical prompt length.")
@click.option("--new-tokens", type=click.IntRange(1, 10_000_000), help="Override the task's typical output length.")
@click.option("--batch", type=click.IntRange(1, 100_000), help="Concurrent sequences per request.")
@threshold_options
@click.option("--concurrency", type=click.IntRange(1, 1_000_000), metavar="C",
              help="Closed-loop clients to serve (each sends its next request when the answer is complete): "
                   "plans replicas, GPUs and cost like --rps.")
@click.option("--formats", "formats", multiple=True, metavar="F",
              help="Allowed format ids (catalog/formats.yaml), e.g. bf16,int8,int4; repeatable or comma-separated.")
@click.option("--gpu-hour-cost", type=click.FloatRange(min=0), help="USD per device-hour for the cost column.")
@click.option("--quality-tolerance", type=click.FloatRange(0, 100), metavar="POINTS",
              help="With --rps/--concurrency: pick the cheapest deployment within POINTS quality-proxy points of the "
                   "best one that meets everything [10; 100 = the cheapest outright].")
@click.option("--runtime", metavar="ID",
              help="Serving runtime to model (vllm, sglang, tgi, tensorrt-llm, llama.cpp/ollama, transformers) "
                   "[each target's default: vllm on named GPU targets, llama.cpp on CPU targets, "
                   "transformers on this machine].")
@click.option("--config", "config_path", type=click.Path(), help="YAML with the same keys as these options.")
@catalog_option
@local_models_options
@click.option("--user-models-only", is_flag=True,
              help="Consider only models from your own catalog files (and --hf-cache / --models-dir).")
@click.option("--allow-unscored", is_flag=True,
              help="Let a model without a quality proxy (too few published scores) be picked.")
@click.option("--no-probe", is_flag=True, help="Use spec and cached figures only; run no probes.")
@click.option("--budget-s", type=click.FloatRange(min=0, min_open=True), help="Time budget for probing.")
@click.option("--refresh", is_flag=True, help="Re-measure instead of using cached probe results.")
@json_option
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Write the report as Markdown.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the Pareto plot (PNG).")
@click.option("--all", "show_all", is_flag=True, help="Show every candidate in the table, not just the best.")
@click.option("--no-mlflow", is_flag=True, help="Do not log to MLflow (the report is still saved locally).")
@click.option("--tracking-uri", help="MLflow tracking URI [MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")
@click.option("--experiment", help="MLflow experiment [model-advisor].")
def recommend(task, targets, prompt_tokens, new_tokens, batch, max_latency_ms, max_ttft_ms, min_tokens_per_s,
              min_quality, max_params, max_tpot_ms, min_rps, max_cost_per_hour_usd, memory_headroom, licenses,
              concurrency, formats, gpu_hour_cost, quality_tolerance, runtime, config_path,
              catalog_paths, local_models, user_models_only, allow_unscored, no_probe, budget_s, refresh, as_json,
              markdown_path, plot_path, show_all, no_mlflow,
              tracking_uri, experiment):
    """Recommend the small or large model for a task, on this machine or named targets.

    \b
    Examples:
      advisor recommend --task summarization
      advisor recommend --task chat --target a10g-24gb --target l4-24gb --max-latency-ms 3000
      advisor recommend --task code --formats int8,int4 --license apache-2.0 --json
      advisor recommend --task chat --rps 20 --max-ttft-ms 1000 --max-tpot-ms 50 \\
          --target l4-24gb --target l40s-48gb --target h100-sxm-80gb
    --max-latency-ms defaults to the task profile's budget. With --rps (or --concurrency) every
    candidate gets a capacity plan (replicas, GPUs, USD/h, p95 latencies at that load) and the
    pick is the cheapest that meets everything within --quality-tolerance points of the best.
    Exit codes: 0 a model was recommended, 1 no model meets the constraints,
    2 bad arguments, 3 MLflow failed (the report is kept; send it with `advisor log`).
    """
    from advisor.recommend.config import RecommendConfig, load_config

    cfg = load_config(config_path) if config_path else RecommendConfig()
    flags = dict(max_latency_ms=max_latency_ms, max_ttft_ms=max_ttft_ms, min_tokens_per_s=min_tokens_per_s,
                 memory_headroom=memory_headroom, license=_list(licenses), min_quality=min_quality,
                 formats=_list(formats), max_params=max_params, gpu_hour_cost=gpu_hour_cost,
                 max_tpot_ms=max_tpot_ms, min_rps=min_rps, max_cost_per_hour_usd=max_cost_per_hour_usd,
                 quality_tolerance=quality_tolerance)
    constraints = {k: v for k, v in cfg.model_dump().items()
                   if k not in ("task", "targets", "prompt_tokens", "new_tokens", "batch", "runtime", "allow_unscored",
                                "concurrency")
                   and v is not None}
    task = task or cfg.task
    if not task:
        from advisor.catalog.loader import get_catalog

        raise UsageError("--task is required", hint="tasks: " + ", ".join(sorted(get_catalog(catalog_paths).tasks)))
    if not no_mlflow:  # before the work: the embedded sqlite store needs the mlflow extra
        from advisor.tracking.connection import require_store

        require_store(tracking_uri)
    from advisor import extras

    if plot_path:
        extras.require("matplotlib", "--plot")
    from advisor.recommend.engine import recommend as run

    with _progress(enabled=not as_json) as progress:
        rec = run(task, targets=list(targets) or cfg.targets or ["local"],
                  prompt_tokens=prompt_tokens or cfg.prompt_tokens, new_tokens=new_tokens or cfg.new_tokens,
                  batch=batch or cfg.batch, constraints=constraints, catalog_paths=catalog_paths,
                  runtime=runtime or cfg.runtime, probe=not no_probe, budget_s=budget_s,
                  refresh=refresh, progress=progress, user_models_only=user_models_only,
                  allow_unscored=allow_unscored or bool(cfg.allow_unscored), local_models=local_models,
                  concurrency=concurrency or cfg.concurrency, **flags)

    from advisor.recommend.report import to_markdown

    markdown = to_markdown(rec)
    if markdown_path:
        _write(markdown_path, markdown)
    import tempfile

    png = None
    # The plot goes to MLflow with every logged run (and where --plot says); a report saved with
    # --no-mlflow gets it when `advisor log` sends it (rendering costs about a second).
    if not plot_path and not no_mlflow and not extras.have("matplotlib"):
        info(f"warning: pareto.png is not logged: matplotlib is not installed ({extras.MLFLOW_EXTRA})")
    elif plot_path or not no_mlflow:
        from advisor.recommend.plot import pareto_png, quality_cost_png

        scratch = tempfile.TemporaryDirectory(prefix="advisor-plot-")
        render = quality_cost_png if rec.load is not None else pareto_png   # under a load: quality vs USD/h
        png = render(rec, plot_path or f"{scratch.name}/pareto.png")
    exit_code = 0 if all(t.status == "ok" for t in rec.targets) else EXIT_FAILED
    saved = _record(rec, markdown, png, send=not no_mlflow, tracking_uri=tracking_uri, experiment=experiment)
    if as_json:
        print_json(rec)
    else:
        _show(rec, show_all)
    if saved is not None:
        folder, run_id, error = saved
        if error:
            # the error's message already names the kept folder and `advisor log <folder>`
            info(f"error: {error.one_line() if hasattr(error, 'one_line') else error}")
            return EXIT_INFRA
        if run_id:
            info(f"logged to MLflow run {run_id}; report saved at {folder}")
        else:
            info(f"report saved at {folder} (not sent: --no-mlflow)")
    return exit_code


def _write(path: str, text: str) -> None:
    from pathlib import Path

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _record(rec, markdown: str, png, *, send: bool, tracking_uri, experiment):
    """Save the report locally first, then send it to MLflow. Returns (folder, run_id, error) or None."""
    try:
        from advisor.tracking.api import record
    except ImportError:
        return None
    files = {"report.md": markdown.encode()}
    if png is not None:
        files["pareto.png"] = png
    import json

    if rec.hardware:
        files["hardware.json"] = json.dumps(rec.hardware, indent=2, default=str).encode()
    else:  # named targets only: their datasheet figures stand for the hardware
        from advisor.catalog.loader import get_catalog

        cat = get_catalog()
        targets = {t.target: cat.targets[t.target].model_dump() for t in rec.targets if t.target in cat.targets}
        files["hardware.json"] = json.dumps({"named_targets": targets}, indent=2, default=str).encode()
    if rec.probes:
        files["probes.json"] = json.dumps(rec.probes, indent=2, default=str).encode()
    res = record("recommendation", rec, files, send=send, tracking_uri=tracking_uri, experiment=experiment)
    return res.folder, res.run_id, res.error


class _progress:
    """A rich progress bar on stderr while estimating and probing; silent for --json."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                             TimeElapsedColumn(), console=console(stderr=True), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("starting", total=1)

        def update(message: str, done: int, total: int):
            self._bar.update(self._task, description=message[:60], completed=done, total=max(total, 1))

        return update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def picks_keys(t) -> set[str]:
    return {c.key for c in (t.small, t.large, t.pick, t.closest_large) if c is not None}


def shown_rows(rec, t, show_all: bool) -> list:
    """The target's rows in table order: every candidate with --all; else one row per model and distinct
    figures among those that pass, the rows the verdict quotes, and the best rejected row per model."""
    from advisor.recommend.select import table_key

    cands = sorted((c for c in rec.candidates if c.target == t.target), key=table_key)
    if show_all:
        return cands
    from advisor.recommend.plot import distinct_figures

    passed = [c for c in cands if c.passed]
    keep = {c.key for c in distinct_figures(passed)} | {c.key for c in passed if c.quality_proxy is None}
    passed = [c for c in passed if c.key in keep or c.key in picks_keys(t)]
    seen: set[str] = {c.model for c in cands if c.passed}  # a model that passes needs no rejected row
    quoted = {c.key for c in (t.closest_large, *t.closest_misses) if c is not None}
    rejected = [c for c in cands if not c.passed and c.key in quoted]
    seen |= {c.model for c in rejected}
    for c in (c for c in cands if not c.passed):
        if c.model not in seen:
            seen.add(c.model)
            rejected.append(c)
    rejected.sort(key=lambda c: (c.key not in quoted,))
    if rec.load is not None:
        return _load_shown(cands, t)
    return passed[:12] + rejected[:max(8, len(quoted))]


# Dropped first when the terminal is narrow: the lowest `keep`. Model, format, quality, p95 and the
# result never go; the basis is said below the table when its column does not fit.
def _columns(load: bool = False):
    from advisor.cli.fit import Column

    extra = [Column("replicas", "right", keep=85), Column("GPUs", "right", keep=45),
             Column("$/h", "right", keep=88)] if load else []
    return [Column("model"), Column("fmt"), Column("tier", keep=10), Column("quality*", "right"),
            Column("memory", "right", keep=95), Column("TTFT", "right", keep=40), Column("p95 e2e", "right"),
            Column("tok/s", "right", keep=50), Column("basis", keep=60), Column("$/Mtok", "right", keep=20),
            *extra, Column("result", wraps=True)]


def _row(c, mark: str | None, load: bool = False) -> list[str]:
    from rich.markup import escape

    from advisor.rules.table import gb, secs

    if c.passed:
        result = "[green]pass[/green]" + (" (frontier)" if c.on_frontier else "")
    elif not c.estimated:
        result = "[red]not estimated: " + escape("; ".join(c.reasons)) + "[/red]"
    else:
        result = "[red]" + escape("; ".join(c.reasons)) + "[/red]"
    if mark:
        result = f"[bold]{mark}[/bold] " + result
    community = c.format_origin not in (None, "official")
    return [escape(c.model), c.format + ("†" if community else ""), c.tier,
            "unscored" if c.quality_proxy is None else f"{c.quality_proxy:.1f}",
            gb(c.memory_bytes), secs(c.ttft_ms), secs(c.e2e_p95_ms),
            "-" if c.tokens_per_s is None else f"{c.tokens_per_s:.1f}",
            (c.latency_basis or "-") + ("" if c.latency_reliable else " (unreliable)"),
            "-" if c.cost_per_mtok_usd is None else f"{c.cost_per_mtok_usd:.2f}",
            *(_load_cells(c) if load else ()), result]


def _basis_line(shown) -> str:
    bases: dict[str, int] = {}
    for c in shown:
        if c.latency_basis:
            label = c.latency_basis + ("" if c.latency_reliable else " (unreliable)")
            bases[label] = bases.get(label, 0) + 1
    return ", ".join(f"{b} ({n} rows)" if len(bases) > 1 else b for b, n in bases.items()) or "-"


def _show(rec, show_all: bool) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from advisor.cli.fit import fitted_table

    out = console()
    for t in rec.targets:
        cands = [c for c in rec.candidates if c.target == t.target]
        shown = shown_rows(rec, t, show_all)
        picks = {c.key: lbl for lbl, c in (("small", t.small), ("large", t.large), ("PICK", t.pick)) if c}
        out.print(escape(f"{rec.task} on {t.target_name} ({t.device_summary}): {rec.shape.prompt_tokens} in / "
                         f"{rec.shape.new_tokens} out, batch {rec.shape.batch}, runtime {t.runtime or rec.runtime}"),
                  soft_wrap=False)
        table, dropped = fitted_table(_columns(rec.load is not None),
                                       [_row(c, picks.get(c.key), rec.load is not None) for c in shown], out.width)
        out.print(table)
        if "basis" in dropped:
            out.print(f"[dim]latency basis: {escape(_basis_line(shown))}[/dim]")
        if any(c.format_origin not in (None, "official") for c in shown):
            out.print("[dim]† community or self-quantised: the model's developer publishes no checkpoint "
                      "in this format[/dim]")
        if dropped:
            out.print(f"[dim]not shown at {out.width} columns: {', '.join(d for d in dropped)} "
                      "(a wider terminal shows them; --json has every figure)[/dim]")
        if not show_all and len(cands) > len(shown):
            out.print(f"[dim]{len(cands) - len(shown)} more candidates: --all shows them, "
                      "--json has every figure[/dim]")
        body = escape(t.verdict)
        if t.what_it_would_take and t.closest_large is not None:
            body += escape(f"\n\nWhat it would take to run {t.closest_large.model} ({t.closest_large.format}):\n"
                           + "\n".join(f"  - {w}" for w in t.what_it_would_take))
        for w in t.warnings:
            body += f"\n\n[yellow]warning:[/yellow] {escape(w)}"
        if t.unscored_passing:
            body += (f"\n\n{t.unscored_passing} passing candidate(s) have no quality proxy (too few published scores) "
                     "and were not considered for the pick; --allow-unscored lets them be picked.")
        if t.status == "no-candidate":
            body += escape("\n\nClosest misses:\n" + "\n".join(f"  - {c.model} ({c.format}): {'; '.join(c.reasons)}"
                                                                for c in t.closest_misses))
            body += escape("\n\nTo relax:\n" + "\n".join(f"  - {r}" for r in t.to_relax))
        out.print(Panel(body, title="verdict", border_style="green" if t.status == "ok" else "red"))
    if rec.load is not None:
        _show_load(rec, out)
    g = rec.generation
    out.print(escape(f"Suggested generation settings: temperature {g.temperature}, top_p {g.top_p}, "
                     f"max_new_tokens {g.max_new_tokens}. {g.rationale}"))
    for n in rec.notes:
        out.print(f"[dim]note: {escape(n)}[/dim]")


# --- under a load (--rps / --concurrency): capacity columns and the plan across targets -----------------------

_LOAD_COLUMNS = (("replicas", "right"), ("GPUs", "right"), ("$/h", "right"))


def _load_shown(cands, t) -> list:
    """Under a load: the passing rows that buy quality for money (each dearer row scores higher than every
    cheaper one), cheapest first, with the pick and the best-quality row; then the planned rows that
    miss, best quality first. Rows left out of planning (unscored, filtered) are in --all and --json."""
    from advisor.recommend.plot import distinct_figures
    from advisor.recommend.select import cost_key, quality_key

    ok = sorted(distinct_figures([c for c in cands if c.passed]), key=cost_key)
    best = max(ok, key=quality_key, default=None)
    stairs, top = [], float("-inf")
    for c in ok:
        if quality_key(c) > top:
            stairs.append(c)
            top = quality_key(c)
    keep = {c.key for c in stairs[-11:]} | {c.key for c in (t.pick, best) if c is not None}
    passed = [c for c in ok if c.key in keep]
    seen, missed = {c.model for c in passed}, []
    for c in sorted((c for c in cands if not c.passed and c.layouts), key=lambda c: -quality_key(c)):
        if c.model not in seen:
            seen.add(c.model)
            missed.append(c)
    return passed + missed[:6]


def _load_cells(c) -> tuple[str, str, str]:
    """'3 x TP2', '6', '41.28' for a planned candidate; '-' otherwise."""
    if not c.replicas:
        return "-", "-", "-"
    tp = c.tensor_parallel or 1
    return (f"{c.replicas} x TP{tp}", str(c.gpus_total),
            "-" if c.cost_per_hour_usd is None else f"{c.cost_per_hour_usd:.2f}")


def _show_load(rec, out) -> None:
    """The answer across every target, the pick's serving layout and its command line per replica."""
    from rich.markup import escape
    from rich.panel import Panel

    load = rec.load
    pick = next((c for c in rec.candidates if c.key == load.pick), None)
    body = escape(load.verdict)
    if pick is not None and pick.serving_layout:
        body += f"\n\nServing layout: {escape(pick.serving_layout)}"
        per = (f"{pick.max_rps_per_replica:.2f} req/s" if pick.max_rps_per_replica is not None else
               f"{pick.max_clients_per_replica} clients")
        body += (f"\nOne replica sustains {per} within the SLOs; {escape(pick.bound_detail or '')} (bound: "
                 f"{pick.load_bound}, decode step {pick.step_bound})")
        if pick.serve_commands:
            body += "\nPer replica (vLLM):\n  " + escape(pick.serve_commands[0])
            if len(pick.serve_commands) > 1:
                body += f"\n  ... {len(pick.serve_commands)} replicas in all (--json lists every command)"
        if pick.capacity_note:
            body += f"\n[dim]{escape(pick.capacity_note)}[/dim]"
    for n in load.notes:
        body += f"\n[dim]{escape(n)}[/dim]"
    out.print(Panel(body, title=f"capacity plan: {escape(load.method.split(' (')[0])}",
                    border_style="green" if pick is not None else "red"))


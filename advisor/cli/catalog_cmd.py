"""`advisor catalog`: list, show, validate and import catalog entries."""

from __future__ import annotations

import json

import click

from advisor.cli.common import catalog_option, console, info, json_option, local_models_options, print_json
from advisor.errors import EXIT_USAGE, UsageError


@click.group()
def catalog():
    """Browse and validate the model catalog (built-in plus your own files)."""


@catalog.command("list")
@click.option("--task", help="Show the task's quality proxy for each model.")
@click.option("--lineage", "lineage_method", metavar="METHOD",
              help="Only models derived by METHOD (distill, prune, nas, quantise, fine-tune, merge, "
                   "continued-pretrain; 'any' for every derived model).")
@click.option("--derived-from", metavar="ID", help="Only models derived from this catalog id or repo id.")
@click.option("--targets", "show_targets", is_flag=True, help="List the hardware targets (nodes, prices) instead.")
@catalog_option
@local_models_options
@json_option
def list_models(task, lineage_method, derived_from, show_targets, catalog_paths, local_models, as_json):
    """List the models in the catalog (or, with --targets, the hardware targets).

    \b
    Examples:
      advisor catalog list
      advisor catalog list --task summarization --json
      advisor catalog list --lineage distill
      advisor catalog list --derived-from llama-3.1-8b
      advisor catalog list --hf-cache            # plus the models in your Hugging Face cache
      advisor catalog list --targets
    """
    from advisor.catalog.loader import get_catalog

    cat = get_catalog(catalog_paths, local=local_models)
    if show_targets:
        return _list_targets(cat, as_json)
    profile = cat.task(task) if task else None
    from advisor.catalog.describe import lineage_dict, lineage_matches, model_facts

    def resolve(model_id: str) -> str:
        key = model_id.strip().lower()
        return cat.aliases.get(key, key)

    rows = []
    for m in sorted(cat.models.values(), key=lambda m: (m.params_total, m.id)):
        if not lineage_matches(m, lineage_method, derived_from, resolve):
            continue
        facts = model_facts(m)
        row = {
            "id": m.id, "name": m.name, "family": m.family, "params_total": m.params_total,
            "params_active": m.params_active, "params_vision": m.params_vision,
            "tier": cat.tier_of(m.params_active or m.params_total),
            "license": m.license, "context_length": m.context, "formats": m.offered_formats(),
            "official_16bit": m.official_16bit,
            "benchmarks": len(m.benchmarks), "lineage": lineage_dict(m),
            "moe": facts["moe"], "hybrid": facts["hybrid"], "layer_pattern": facts["layer_pattern"],
            "kv_bytes_per_token_16bit": facts["kv_bytes_per_token_16bit"],
            "recurrent_state_bytes_per_sequence_16bit": facts["recurrent_state_bytes_per_sequence_16bit"],
            "local": cat.origin.get(m.id, "").endswith("config.json"),   # found by --hf-cache / --models-dir
        }
        if profile is not None:
            from advisor.recommend.quality import quality_score

            fmt = "bf16" if m.official_16bit else (m.official_formats() or ["bf16"])[0]
            q = quality_score(m, profile, fmt, cat)
            row["quality_proxy"] = q.score
            row["quality_proxy_upper"] = q.upper
            row["quality_coverage"] = q.coverage
            row["quality_reason"] = q.reason
            row["quality_benchmarks"] = q.used
        rows.append(row)
    if as_json:
        print_json({"task": task, "models": rows, "notes": cat.local_notes})
        return
    from rich.markup import escape

    from advisor.cli.fit import Column, fitted_table

    title = f"{len(rows)} models" + (f" (quality proxy for {task}, bf16)" if task else "")
    # dropped first when the terminal is narrow: the lowest `keep`; the id is never dropped nor broken
    columns = [Column("id"), Column("params", "right", keep=90), Column("active", "right", keep=35),
               Column("vision", "right", keep=15),
               Column("tier", keep=60), Column("license", keep=80), Column("context", "right", keep=50),
               Column("formats", keep=30), Column("layers", keep=25), Column("scores", "right", keep=40),
               Column("lineage", keep=20)]
    if task:
        columns.append(Column("quality*", "right", keep=95))
    if not any(r["params_active"] for r in rows):
        columns = [c for c in columns if c.header != "active"]
    if not any(r["params_vision"] for r in rows):
        columns = [c for c in columns if c.header != "vision"]
    cells = []
    for r in rows:
        extra = [f for f in r["formats"] if f not in ("fp32", "bf16", "fp16")]
        quant = ",".join(extra) or "-"
        if not r["official_16bit"]:
            quant += " (no 16-bit)"
        lineage = ""
        if r["lineage"]:
            lineage = f"{'+'.join(r['lineage']['method'])} of {r['lineage']['derived_from']}"
        row = {"id": r["id"], "params": f"{r['params_total'] / 1e9:.2f}B",
               "vision": f"{r['params_vision'] / 1e9:.2f}B" if r["params_vision"] else "",
               "active": f"{r['params_active'] / 1e9:.1f}B" if r["params_active"] else "",
               "tier": r["tier"], "license": r["license"],
               "context": f"{r['context_length']:,}" if r["context_length"] else "-",
               "formats": quant, "layers": _pattern_text(r["layer_pattern"]),
               "scores": str(r["benchmarks"]), "lineage": lineage}
        if task:
            row["quality*"] = "unscored" if r["quality_proxy"] is None else f"{r['quality_proxy']:.1f}"
        cells.append([escape(row[c.header]) for c in columns])
    out = console()
    table, dropped = fitted_table(columns, cells, out.width, title=escape(title))
    out.print(table)
    if dropped:
        out.print(f"[dim]not shown at {out.width} columns: {', '.join(dropped)} (--json has every field)[/dim]")
    if task:
        out.print(escape(f"* quality is a PROXY: {profile.quality_proxy.description}"))
    for note in cat.local_notes:
        info(f"note: {note}")


def _pattern_text(plan: dict) -> str:
    """'48: 12 full + 36 linear; MoE 512x10' style summary of a layer pattern."""
    names = {"full": "full", "sliding": "sliding", "chunked": "chunked", "linear": "DeltaNet", "mamba": "Mamba-2",
             "dense_linear": "linear-repl.", "none": "no-mixer"}
    mixers = plan["mixers"]
    if set(mixers) == {"full"}:
        text = f"{plan['layers']} attn"
    else:
        text = f"{plan['layers']}: " + " + ".join(f"{n} {names.get(k, k)}" for k, n in sorted(mixers.items()))
    if plan.get("experts"):
        text += f"; MoE {plan['experts']}x{plan['experts_per_token']}"
    return text


def _list_targets(cat, as_json: bool):
    from advisor.catalog.describe import target_facts

    rows = [target_facts(t) for t in sorted(cat.targets.values(), key=lambda t: (t.device is not None, t.id))]
    if as_json:
        print_json({"targets": rows})
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} targets", title_justify="left")
    for col in ("id", "device", "GPUs", "memory / device", "bandwidth", "bf16 TF", "fp8 TF", "node link", "$/GPU-h"):
        table.add_column(col, justify="left" if col in ("id", "device", "node link") else "right", no_wrap=col == "id")
    for r in rows:
        link = r["interconnect"]
        link_text = f"{link['generation'] or link['kind']} {link['bandwidth_gbs']:g} GB/s" if link else "-"
        peaks = r["peak_tflops"]
        gpus = f"{r['gpus']}" + (f" of {r['gpus_per_node']}"
                                 if r["gpus_per_node"] and r["gpus_per_node"] != r["gpus"] else "")
        table.add_row(r["id"], r["device"] or r["name"], gpus, f"{r['device_memory_bytes'] / 1e9:.2f} GB",
                      f"{r['memory_bandwidth_gbs']:g} GB/s", f"{peaks.get('bf16', peaks.get('fp16', 0)):g}",
                      f"{peaks['fp8']:g}" if "fp8" in peaks else "-", link_text,
                      "-" if r["price_per_gpu_hour_usd"] is None else f"{r['price_per_gpu_hour_usd']:.3f} "
                      f"({r['price_region']}, {r['price_date']})")
    console().print(table)


@catalog.command("show")
@click.argument("model_id")
@catalog_option
@json_option
def show(model_id, catalog_paths, as_json):
    """Show one model entry (or hardware target) with every figure and its source.

    \b
    Examples:
      advisor catalog show llama-3.1-8b
      advisor catalog show qwen3-30b-a3b --json
      advisor catalog show aws-p5.48xlarge
    """
    from advisor.catalog.describe import model_facts, target_facts
    from advisor.catalog.loader import get_catalog

    cat = get_catalog(catalog_paths)
    if model_id not in cat.targets or model_id.strip().lower() in cat.models:
        m = cat.model(model_id)
        facts = model_facts(m)
    else:
        t = cat.targets[model_id]
        if as_json:
            print_json({**t.model_dump(mode="json"), "derived": target_facts(t)})
            return
        import yaml

        console().print(f"[bold]{t.name}[/bold] ({t.id})")
        console().print(yaml.safe_dump(json.loads(t.model_dump_json(exclude_none=True)), sort_keys=False).rstrip())
        return
    if as_json:
        print_json({**m.model_dump(mode="json"), "derived": facts})
        return
    import yaml
    from rich.markup import escape as e

    out = console()
    out.print(f"[bold]{e(m.name)}[/bold] ({e(m.id)}), family {e(m.family)}, "
              f"tier {cat.tier_of(m.params_active or m.params_total)}")
    vision = f", of which {m.params_vision:,} vision tower" if m.params_vision else ""
    out.print(e(f"parameters: {m.params_total:,} stated{vision} ({m.params_source}); {facts['params_derived']:,} "
              "derived from the architecture"
              + (f" (incl. {facts['params_mtp']:,} in multi-token-prediction layers)" if facts["params_mtp"] else "")
              + (f"; {m.params_active:,} active" if m.params_active else "")))
    out.print(f"layers: {_pattern_text(facts['layer_pattern'])}; KV cache {facts['kv_bytes_per_token_16bit']:,} "
              "bytes/token at 16 bits" + (f" (below every window); recurrent state "
                                          f"{facts['recurrent_state_bytes_per_sequence_16bit']:,} bytes per sequence"
                                          if facts["hybrid"] else ""))
    out.print(f"official formats: {', '.join(facts['official_formats'])}"
              + ("" if m.official_16bit else " (no 16-bit checkpoint is published)"))
    if m.lineage:
        out.print(e(f"lineage: {m.lineage.methods} of {m.lineage.derived_from} ({m.lineage.source})"))
    if facts.get("family_note"):
        out.print(e(f"note: {facts['family_note']}"))
    out.print(e(yaml.safe_dump(json.loads(m.model_dump_json(exclude_none=True)), sort_keys=False).rstrip()))


@catalog.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_option
def validate(paths, as_json):
    """Validate catalog files or folders; report every error with file, entry and field.

    \b
    Exit 0 when all files are valid, 2 when any problem is found (a bad input file,
    as everywhere else: see `advisor --help`).
    Examples:
      advisor catalog validate catalog/
      advisor catalog validate my-models.yaml other/
    """
    import warnings

    from advisor.catalog.loader import load_catalog

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        cat, problems, warns = load_catalog(paths, include_builtin=False, strict=False, include_env=False)
    counts = {k: len(getattr(cat, k)) for k in ("models", "targets", "tasks", "formats", "tiers", "architectures")}
    if as_json:
        print_json({"valid": not problems, "counts": counts, "files": cat.files,
                    "errors": [str(p) for p in problems], "warnings": warns})
        if problems:   # exit 2 always comes with its one error line
            click.echo(f"error: {len(problems)} problem(s) in {len(paths)} path(s) (listed in the JSON)", err=True)
    else:
        for w in warns:
            click.echo(f"warning: {w}", err=True)
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        if not problems:
            click.echo(f"{len(cat.files)} file(s), {summary or 'no entries'}: valid")
        elif len(problems) == 1:
            click.echo(f"error: {problems[0]}", err=True)
        else:  # every problem on its own line, then the one error line
            for p in problems:
                click.echo(f"  {p}", err=True)
            click.echo(f"error: {len(problems)} problems in {len(paths)} path(s) "
                       f"({len(cat.files)} file(s) read, {summary or 'no valid entries'})", err=True)
    return EXIT_USAGE if problems else 0


@catalog.command("import-hf-config")
@click.argument("config", type=click.Path())
@click.option("--id", "model_id", required=True, help="Catalog id for the new entry (lowercase family-version-size).")
@click.option("--license", "license_", default="unknown", show_default=True)
def import_hf_config(config, model_id, license_):
    """Print a catalog entry for a local Hugging Face config.json (or model folder).

    The entry has placeholders for sources and scores: fill them in before use.
    """
    import yaml

    from advisor.catalog.hfconfig import architecture_from_config, checkpoint_format, has_vision_tower, read_config_json
    from advisor.catalog.params import derived_params
    from advisor.catalog.schema import _ID_RE

    if not _ID_RE.match(model_id):
        raise UsageError(f"--id '{model_id}' is not a lowercase id (letters, digits, . + _ -)")
    raw = read_config_json(config)
    arch = architecture_from_config(raw, origin=str(config))
    fmt = checkpoint_format(raw)
    notes = []
    if has_vision_tower(raw):
        notes.append("FILL IN params_vision (vision tower + projector) and add it to params_total: the count "
                     "above is the text model only")
    if fmt:
        notes.append(f"the checkpoint is stored as {fmt} (quantization_config): check official_16bit")
    entry = {
        "id": model_id,
        "name": model_id,
        "family": model_id.rsplit("-", 1)[0],
        "params_total": derived_params(arch),
        "params_source": f"derived from {config} by model-advisor",
        "architecture": arch.model_dump(exclude_none=True, exclude_defaults=False),
        "architecture_source": str(config),
        "context_length": arch.max_position_embeddings,
        "license": license_,
        "license_source": "FILL IN: URL of the licence",
        "formats": [fmt] if fmt else [],
        "benchmarks": [],
    }
    if fmt:
        entry["formats_source"] = str(config)
    if notes:
        entry["notes"] = "; ".join(notes)
    click.echo(yaml.safe_dump({"models": [entry]}, sort_keys=False).rstrip())

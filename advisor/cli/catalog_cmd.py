"""`advisor catalog`: list, show, validate and import catalog entries."""

from __future__ import annotations

import json

import click

from advisor.cli.common import catalog_option, console, json_option, print_json
from advisor.errors import EXIT_USAGE, UsageError


@click.group()
def catalog():
    """Browse and validate the model catalog (built-in plus your own files)."""


@catalog.command("list")
@click.option("--task", help="Show the task's quality proxy for each model.")
@catalog_option
@json_option
def list_models(task, catalog_paths, as_json):
    """List the models in the catalog.

    \b
    Examples:
      advisor catalog list
      advisor catalog list --task summarization --json
      advisor catalog list --catalog my-models.yaml
    """
    from advisor.catalog.loader import get_catalog

    cat = get_catalog(catalog_paths)
    profile = cat.task(task) if task else None
    rows = []
    for m in sorted(cat.models.values(), key=lambda m: (m.params_total, m.id)):
        row = {
            "id": m.id, "name": m.name, "family": m.family, "params_total": m.params_total,
            "params_active": m.params_active, "tier": cat.tier_of(m.params_active or m.params_total),
            "license": m.license, "context_length": m.context, "formats": m.offered_formats(),
            "benchmarks": len(m.benchmarks), "lineage": m.lineage.parent if m.lineage else None,
        }
        if profile is not None:
            from advisor.recommend.quality import quality_score

            q = quality_score(m, profile, "bf16", cat)
            row["quality_proxy"] = q.score
            row["quality_proxy_upper"] = q.upper
            row["quality_coverage"] = q.coverage
            row["quality_reason"] = q.reason
            row["quality_benchmarks"] = q.used
        rows.append(row)
    if as_json:
        print_json({"task": task, "models": rows})
        return
    from rich.markup import escape

    from advisor.cli.fit import Column, fitted_table

    title = f"{len(rows)} models" + (f" (quality proxy for {task}, bf16)" if task else "")
    # dropped first when the terminal is narrow: the lowest `keep`; the id is never dropped nor broken
    columns = [Column("id"), Column("params", "right", keep=90), Column("active", "right", keep=35),
               Column("tier", keep=60), Column("license", keep=80), Column("context", "right", keep=50),
               Column("quantised", keep=30), Column("scores", "right", keep=40), Column("lineage", keep=20)]
    if task:
        columns.append(Column("quality*", "right", keep=95))
    if not any(r["params_active"] for r in rows):
        columns = [c for c in columns if c.header != "active"]
    cells = []
    for r in rows:
        row = {"id": r["id"], "params": f"{r['params_total'] / 1e9:.2f}B",
               "active": f"{r['params_active'] / 1e9:.1f}B" if r["params_active"] else "",
               "tier": r["tier"], "license": r["license"],
               "context": f"{r['context_length']:,}" if r["context_length"] else "-",
               "quantised": ",".join(f for f in r["formats"] if f.startswith("int")) or "-",
               "scores": str(r["benchmarks"]), "lineage": f"from {r['lineage']}" if r["lineage"] else ""}
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


@catalog.command("show")
@click.argument("model_id")
@catalog_option
@json_option
def show(model_id, catalog_paths, as_json):
    """Show one model entry with every figure and its source."""
    from advisor.catalog.loader import get_catalog
    from advisor.catalog.params import param_breakdown

    cat = get_catalog(catalog_paths)
    m = cat.model(model_id)
    if as_json:
        print_json(m)
        return
    import yaml

    from rich.markup import escape as e

    out = console()
    b = param_breakdown(m.arch)
    out.print(f"[bold]{e(m.name)}[/bold] ({e(m.id)}), family {e(m.family)}, "
              f"tier {cat.tier_of(m.params_active or m.params_total)}")
    out.print(e(f"parameters: {m.params_total:,} stated ({m.params_source}); {b.total:,} derived from the architecture"
                + (f"; {m.params_active:,} active" if m.params_active else "")))
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
    counts = {k: len(getattr(cat, k)) for k in ("models", "targets", "tasks", "formats", "tiers")}
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

    from advisor.catalog.hfconfig import architecture_from_path
    from advisor.catalog.params import derived_params
    from advisor.catalog.schema import _ID_RE

    if not _ID_RE.match(model_id):
        raise UsageError(f"--id '{model_id}' is not a lowercase id (letters, digits, . + _ -)")
    arch = architecture_from_path(config)
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
        "formats": [],
        "benchmarks": [],
    }
    click.echo(yaml.safe_dump({"models": [entry]}, sort_keys=False).rstrip())

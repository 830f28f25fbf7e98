"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

catalog_option = click.option(
    "--catalog", "catalog_paths", multiple=True, metavar="PATH",
    help="Extra catalog file or folder (repeatable; also ADVISOR_CATALOG_PATH). Later ids override.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def parse_params(value: str | None) -> float | None:
    """Accept 8e9, 8000000000, 8b, 8B, 500m for a parameter count."""
    if value is None:
        return None
    from advisor.errors import UsageError

    v = value.strip().lower()
    mult = {"b": 1e9, "m": 1e6, "k": 1e3}.get(v[-1:], 1.0)
    try:
        n = float(v[:-1] if v[-1:] in "bmk" else v) * mult
    except ValueError:
        raise UsageError(f"--max-params '{value}' is not a number (examples: 8e9, 8b, 500m)") from None
    if not n > 0:
        raise UsageError(f"--max-params must be positive, got '{value}'")
    return n


class _ParamCount(click.ParamType):
    name = "N"

    def convert(self, value, param, ctx):
        return value if isinstance(value, float) else parse_params(value)


def local_models_options(func):
    """--hf-cache and --models-dir: the command gets `local_models` (a LocalSources) instead."""
    import functools
    import os

    @click.option("--models-dir", "models_dirs", multiple=True, metavar="DIR",
                  help="Also consider the models in DIR (DIR/config.json, DIR/*/config.json); repeatable.")
    @click.option("--hf-cache", "hf_cache", is_flag=True,
                  help="Also consider the models in the Hugging Face cache (config.json files only, nothing "
                       "downloaded or run; ADVISOR_HF_CACHE=1 or =HUB_FOLDER does the same).")
    @functools.wraps(func)
    def wrapper(*args, hf_cache=False, models_dirs=(), **kwargs):
        from advisor.catalog.localmodels import ENV_HF_CACHE, sources_from_options

        kwargs["local_models"] = sources_from_options(hf_cache, models_dirs, os.environ.get(ENV_HF_CACHE))
        return func(*args, **kwargs)

    return wrapper


def threshold_options(func):
    """The deployment limits shared by `recommend` and `check`, generated from the rule table
    (advisor.rules.table): one option per limit, named after its Limits field."""
    from advisor.rules.table import THRESHOLD_RULES

    options = []
    for rule in THRESHOLD_RULES:
        if rule.key == "max_params":
            kind = _ParamCount()
        elif rule.key == "min_quality":
            kind = click.FloatRange(0, 100)
        else:
            kind = click.FloatRange(min=0, min_open=True)
        options.append(click.option(rule.option_name, rule.key, type=kind, help=rule.cli_help))
    options += [
        click.option("--memory-headroom", type=click.FloatRange(0, 1, max_open=True), metavar="P",
                     help="Fraction of device memory kept free (default 0.10)."),
        click.option("--license", "licenses", multiple=True, metavar="ID",
                     help="Allowed licence id (any spelling: Apache-2.0, apache 2.0); repeatable or comma-separated."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def console(stderr: bool = False):
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, files) gets a wide table rather than rich's 80-column default.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def print_json(obj: Any) -> None:
    """Pydantic models and plain data alike, as indented JSON on stdout."""
    if hasattr(obj, "model_dump_json"):
        sys.stdout.write(obj.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def info(message: str) -> None:
    """A note for humans on stderr (keeps stdout clean for --json)."""
    click.echo(message, err=True)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB"


def mlflow_options(func):
    """--mlflow/--tracking-uri/--experiment for commands that log only when asked (estimate, probe)."""
    for option in reversed([
        click.option("--mlflow", "to_mlflow", is_flag=True, help="Also log the result to MLflow."),
        click.option("--tracking-uri", help="MLflow tracking URI [MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."),
        click.option("--experiment", help="MLflow experiment [model-advisor]."),
    ]):
        func = option(func)
    return func


def log_result(kind: str, payload: Any, *, tracking_uri: str | None, experiment: str | None) -> int:
    """Save the result locally, send it to MLflow; exit 3 (report kept) when MLflow fails."""
    from advisor.errors import EXIT_INFRA
    from advisor.tracking.api import record

    res = record(kind, payload, send=True, tracking_uri=tracking_uri, experiment=experiment)
    if res.error is not None:
        info(f"error: {res.error.one_line()}")
        return EXIT_INFRA
    info(f"logged to MLflow run {res.run_id}; report saved at {res.folder}")
    return 0

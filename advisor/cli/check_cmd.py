"""`advisor check`: the pre-deployment gate for CI/CD pipelines."""

from __future__ import annotations

import os
from pathlib import Path

import click

from advisor.cli.common import catalog_option, console, json_option, threshold_options

EXIT_CODES = """\b
Exit codes:
  0  every check passed
  1  a check failed (the report says which, with value, limit and basis)
  2  usage or input error: bad flag or policy file (file:line: field), unknown
     model/target/task (with did-you-mean), unreadable config.json
  3  infrastructure error: MLflow unreachable or failing; the report is saved
     on disk first and the message says where (send it later with 'advisor log')
  70 internal error (a bug in model-advisor); ADVISOR_DEBUG=1 shows the traceback

\b
MLflow: the check is logged only when a tracking URI is given (--tracking-uri,
MLFLOW_TRACKING_URI or the policy's mlflow.tracking_uri), or with --mlflow
(then sqlite:///mlflow.db here when no URI is given). The summary says which."""


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeatable options also accept comma lists: --license mit,apache-2.0."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _model_args(model: str | None) -> dict:
    """MODEL may be a catalog id, a models:/ URI or a local config.json / model folder."""
    if not model:
        return {}
    if model.startswith("models:/"):
        return {"model_uri": model}
    # catalog aliases may hold '/' (Qwen/Qwen2.5-7B): only an existing path or a .json is a path
    if model.endswith(".json") or Path(model).exists():
        return {"model_path": model}
    return {"model": model}


def _write(path: str, text: str, what: str, append: bool = False) -> None:
    from advisor.errors import UsageError

    try:
        p = Path(path)
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a" if append else "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror or exc})") from None


@click.command(epilog=EXIT_CODES)
@click.argument("model", required=False, metavar="[MODEL]")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Policy YAML (model, targets, thresholds, license, ...); flags override it.")
@click.option("--model-path", metavar="DIR", help="Local config.json or model folder (architecture only).")
@click.option("--model-uri", metavar="URI", help="MLflow registry model: models:/NAME/VERSION or models:/NAME@ALIAS.")
@click.option("--target", "targets", multiple=True, metavar="ID",
              help="'local' (probed) or a named hardware target; repeatable. Default: local.")
@click.option("--task", help="Task profile: request shape and the quality proxy.")
@click.option("--format", "fmt", metavar="ID",
              help="Weights format id from catalog/formats.yaml (default bf16): "
                   "bf16, fp8, int8, int4, awq, q4_k_m, ...")
@click.option("--runtime", metavar="ID",
              help="Serving runtime (vllm, sglang, tgi, tensorrt-llm, llama.cpp/ollama, transformers) "
                   "[each target's default: vllm on named GPU targets, transformers on this machine].")
@click.option("--prompt-tokens", type=click.IntRange(min=1), help="Prompt length of one request.")
@click.option("--new-tokens", type=click.IntRange(min=1), help="Generated tokens of one request.")
@click.option("--batch", type=click.IntRange(min=1), help="Concurrent sequences.")
@threshold_options
@click.option("--gpu-hour-cost", type=click.FloatRange(min=0), help="USD per GPU-hour for the cost check "
              "[the target's catalog price].")
@click.option("--require-known", multiple=True, type=click.Choice(["license", "quality"]),
              help="Fail when this is unknown (a model outside the catalog); default: report 'unknown'.")
@click.option("--junit", "junit_path", metavar="PATH", help="Write JUnit XML (one testsuite per target).")
@json_option
@click.option("--markdown", "markdown_path", metavar="PATH",
              help="Write a Markdown report. When $GITHUB_STEP_SUMMARY is set it is appended there too.")
@click.option("--no-probe", is_flag=True, help="Target 'local': spec-based, no torch probes.")
@click.option("--mlflow/--no-mlflow", "to_mlflow", default=None,
              help="Log to MLflow, or not. Default: only when a tracking URI is given.")
@click.option("--tracking-uri", metavar="URI",
              help="MLflow tracking URI (default: MLFLOW_TRACKING_URI); turns logging on.")
@click.option("--experiment", metavar="NAME", help="MLflow experiment (default: model-advisor).")
@click.option("--set-alias-on-pass", metavar="ALIAS",
              help="Move this registry alias to the version when all checks pass.")
@click.option("--explain", is_flag=True, help="Print the effective policy (YAML) and exit 0 without checking.")
@catalog_option
def check(model, policy_path, model_path, model_uri, targets, task, fmt, runtime, prompt_tokens, new_tokens, batch,
          max_latency_ms, max_ttft_ms, min_tokens_per_s, min_quality, max_params, max_tpot_ms, min_rps,
          max_cost_per_hour_usd, memory_headroom, licenses, gpu_hour_cost, require_known,
          junit_path, as_json, markdown_path, no_probe, to_mlflow, tracking_uri, experiment, set_alias_on_pass,
          explain, catalog_paths):
    """Gate a model before deployment: does it fit and meet the budgets on the targets?

    MODEL is a catalog id, a local config.json or model folder, or models:/NAME/VERSION
    (or models:/NAME@ALIAS: the architecture is read from the artifacts' config.json).
    A model outside the catalog has no known licence or quality: those checks say "unknown"
    and fail only with --require-known. Named targets are spec-based and need no torch.

    \b
    Examples:
      advisor check --policy policy.yaml
      advisor check qwen2.5-3b --target a10g-24gb --target l4-24gb --max-latency-ms 3000 --junit gate.xml
      advisor check --model-uri models:/summarizer/3 --target a10g-24gb --set-alias-on-pass champion
      advisor check --policy policy.yaml --explain
    """
    from advisor.check.engine import run_policy
    from advisor.check.policy import load_policy, merge
    from advisor.errors import UsageError

    if model and (model_path or model_uri) and not _model_args(model).get("model"):
        raise UsageError("MODEL is a path or URI and --model-path/--model-uri is given too: give one")
    policy = load_policy(policy_path) if policy_path else None
    source = {"model_path": model_path, "model_uri": model_uri, **_model_args(model)}
    effective = merge(policy, **source, targets=targets,
                      task=task, format=fmt, runtime=runtime, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                      batch=batch,
                      max_latency_ms=max_latency_ms, max_ttft_ms=max_ttft_ms, min_tokens_per_s=min_tokens_per_s,
                      memory_headroom=memory_headroom, license=_split(licenses) or None, min_quality=min_quality,
                      max_params=max_params, max_tpot_ms=max_tpot_ms, min_rps=min_rps,
                      max_cost_per_hour_usd=max_cost_per_hour_usd, gpu_hour_cost=gpu_hour_cost,
                      require_known=require_known, probe=False if no_probe else None,
                      catalog=catalog_paths, mlflow=to_mlflow, tracking_uri=tracking_uri,
                      experiment=experiment, set_alias_on_pass=set_alias_on_pass)
    if explain:
        click.echo(effective.to_yaml(), nl=False)
        return 0
    from advisor.check.tracking import logging_uri

    log_to = logging_uri(effective)
    if effective.mlflow.set_alias_on_pass and not effective.model_uri:
        raise UsageError("--set-alias-on-pass needs a registered model (--model-uri models:/NAME/VERSION)")
    if effective.mlflow.set_alias_on_pass and log_to is None:
        raise UsageError("--set-alias-on-pass needs MLflow logging",
                         hint="give --tracking-uri or MLFLOW_TRACKING_URI, "
                              "and drop --no-mlflow or mlflow.enabled: false")
    if effective.model_uri and log_to is None and not _uri_given(effective):
        raise UsageError(f"{effective.model_uri} is read from an MLflow registry, and no tracking URI is given",
                         hint="pass --tracking-uri URI or set MLFLOW_TRACKING_URI")
    if log_to is not None or effective.model_uri:
        from advisor.tracking.connection import require_store

        require_store(log_to or effective.mlflow.tracking_uri)  # before any work: one line naming the extra

    report = run_policy(effective)
    summary = _outputs(report, junit_path, markdown_path, as_json)
    if log_to is None:
        why = "logging is off: --no-mlflow or mlflow.enabled: false" if effective.mlflow.enabled is False else \
            "no tracking URI; give --tracking-uri or MLFLOW_TRACKING_URI to log"
        summary.print(f"MLflow: not logged ({why})", soft_wrap=True, highlight=False, markup=False)
        return report.exit_code
    from advisor.check.junit import to_junit
    from advisor.check.report import to_markdown
    from advisor.check.tracking import track
    from advisor.tracking.connection import redact, resolve_experiment

    folder, run_id = track(report, tracking_uri=log_to, experiment=effective.mlflow.experiment,
                           files={"junit.xml": to_junit(report), "report.md": to_markdown(report)})
    summary.print(f"MLflow: logged as run {run_id} at {redact(log_to)}, experiment "
                  f"{resolve_experiment(effective.mlflow.experiment)} (report in {folder})",
                  soft_wrap=True, highlight=False, markup=False)
    return report.exit_code


def _uri_given(policy) -> bool:
    from advisor.tracking.connection import tracking_uri_given

    return tracking_uri_given(policy.mlflow.tracking_uri) is not None


def _outputs(report, junit_path, markdown_path, as_json):
    """Every local output is written before MLflow is contacted; returns the summary's console."""
    from advisor.check.report import print_summary, to_markdown

    if junit_path:
        from advisor.check.junit import to_junit

        _write(junit_path, to_junit(report), "JUnit XML")
    markdown = None
    if markdown_path or os.environ.get("GITHUB_STEP_SUMMARY"):
        markdown = to_markdown(report)
    if markdown_path:
        _write(markdown_path, markdown, "Markdown report")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        _write(os.environ["GITHUB_STEP_SUMMARY"], markdown + "\n", "GitHub step summary", append=True)
    out = console(stderr=as_json)   # with --json the summary goes to stderr, stdout is the JSON
    if as_json:
        from advisor.cli.common import print_json

        print_json(report)
    print_summary(report, out)
    return out

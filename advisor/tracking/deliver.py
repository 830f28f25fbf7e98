"""Send one saved report folder to MLflow, exactly once.

Every run carries the tag advisor.report_id. Before creating a run, the experiment is searched for
a FINISHED run with that id and advisor.complete=true; when there is one, its id is returned and
nothing is logged again. Runs with that id that died mid-way (still RUNNING, or never marked
complete) are ended as FAILED with advisor.complete=false, so they never look complete. A new run
is logged by the kind's logger, ended FINISHED, and tagged advisor.complete=true as the last step.

Loggers are looked up lazily by kind; each is `fn(client, run_id, folder, payload: dict) -> None`.
Two deliveries of the same folder at the very same moment can still race; a later `advisor log`
never duplicates a complete run.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import AdvisorError, InfraError, UsageError
from advisor.tracking import connection, outbox

KIND_LOGGERS: dict[str, str] = {
    "recommendation": "advisor.tracking.recommendation_run:log_recommendation",
    "check": "advisor.check.tracking:log_check",
    "estimate": "advisor.tracking.simple_runs:log_estimate",
    "probe": "advisor.tracking.simple_runs:log_probe",
}

EXPERIMENT_DESCRIPTION = (
    "model-advisor: which language model to deploy on which hardware.\n\n"
    "- one run per `advisor recommend`: the run's name is the pick; its description says where every figure "
    "comes from (basis, runtime, probing, catalog); the `candidates.json` table has every candidate with "
    "status and reason; `pareto.png` plots quality proxy against p95 latency for each target\n"
    "- one run per `advisor check` (the pre-deployment gate): params are the policy, `passed` is 1 or 0\n"
    "- `advisor.gpu.*` / `advisor.cpu.*` tags describe the machine the advisor ran on; `advisor.target.*` the "
    "hardware the figures are for\n"
    "- `advisor compare` shows the latest pick per machine and target side by side")
TAG_REPORT_ID = "advisor.report_id"
TAG_KIND = "advisor.kind"
TAG_COMPLETE = "advisor.complete"
_REPORT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Delivery:
    folder: Path
    report_id: str
    kind: str
    run_id: str
    already_sent: bool
    tracking_uri: str          # redacted
    experiment: str


def logger_for(kind: str):
    target = KIND_LOGGERS.get(kind)
    if target is None:
        raise UsageError(f"cannot send a report of kind '{kind}'", hint=f"known kinds: {', '.join(KIND_LOGGERS)}")
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"reports of kind '{kind}' cannot be sent by this install ({module}: {exc})") from None


def deliver(folder: Path, *, tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """Send the folder; return the run id (an existing complete run's id when already sent)."""
    return send(folder, tracking_uri=tracking_uri, experiment=experiment).run_id


def send(folder: Path | str, *, tracking_uri: str | None = None, experiment: str | None = None) -> Delivery:
    folder = outbox.resolve_folder(folder)
    manifest = outbox.read_manifest(folder)
    payload = outbox.read_payload(folder, manifest)
    kind, report_id = manifest["kind"], str(manifest["report_id"])
    if not _REPORT_ID.match(report_id):
        raise UsageError(f"{folder}: invalid report_id '{report_id[:80]}'")
    log_fn = logger_for(kind)
    uri = connection.resolve_tracking_uri(tracking_uri)
    exp_name = connection.resolve_experiment(experiment)

    run_id = None
    mlflow_client = None
    try:
        # MLflow prints the run's URL on stdout when a run ends; stdout belongs to --json.
        with connection.bounded_http(), contextlib.redirect_stdout(sys.stderr):
            mlflow_client = connection.client(uri)
            exp_id = connection.ensure_experiment(mlflow_client, exp_name)
            describe_experiment(mlflow_client, exp_id)
            done = _settle_previous(mlflow_client, exp_id, report_id)
            if done is None:
                run_id = _create_run(mlflow_client, exp_id, manifest, payload)
                log_fn(mlflow_client, run_id, folder, payload)
                mlflow_client.set_terminated(run_id, "FINISHED")
                mlflow_client.set_tag(run_id, TAG_COMPLETE, "true")   # the last step
    except AdvisorError:
        with connection.bounded_http():  # marking the run FAILED must not wait out MLflow's long retries
            _fail(mlflow_client, run_id)
        raise
    except Exception as exc:
        with connection.bounded_http():
            _fail(mlflow_client, run_id)
        raise infra_error(uri, folder, exc) from exc

    final_id = done or run_id
    try:
        outbox.mark_sent(folder, final_id, tracking_uri=connection.redact(uri), experiment=exp_name)
    except (OSError, AdvisorError) as exc:   # sent; a re-send finds the run and does not duplicate
        warnings.warn(f"sent as run {final_id} but could not update {folder}/manifest.json: {exc}")
    return Delivery(folder, report_id, kind, final_id, done is not None, connection.redact(uri), exp_name)


def describe_experiment(mlflow_client, exp_id: str) -> None:
    """Give the experiment a description (shown above its runs table) unless it has one already."""
    from mlflow.exceptions import MlflowException

    exp = mlflow_client.get_experiment(exp_id)
    if (exp.tags or {}).get("mlflow.note.content"):
        return
    try:
        mlflow_client.set_experiment_tag(exp_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)
    except MlflowException:
        # Two first reports racing: on PostgreSQL the loser's INSERT hits the tag's primary key
        # (UniqueViolation, BAD_REQUEST). The winner described it; only a still-missing tag is a failure.
        if not (mlflow_client.get_experiment(exp_id).tags or {}).get("mlflow.note.content"):
            raise


def infra_error(uri: str, folder: Path, exc: BaseException) -> InfraError:
    cause = connection.redact(" ".join(f"{type(exc).__name__}: {exc}".split()))
    if len(cause) > 240:
        cause = cause[:237] + "..."
    return InfraError(
        f"MLflow unreachable or failing at {connection.redact(uri)}: report kept at {folder}; "
        f"send it later with `advisor log {folder}`", hint=cause)


def _settle_previous(mlflow_client, exp_id: str, report_id: str) -> str | None:
    """The id of a complete run for this report, else None after failing any half-logged ones."""
    runs = mlflow_client.search_runs(
        [exp_id], filter_string=f"tags.`{TAG_REPORT_ID}` = '{report_id}'", order_by=["attributes.start_time DESC"])
    for run in runs:
        if run.info.status == "FINISHED" and run.data.tags.get(TAG_COMPLETE) == "true":
            return run.info.run_id
    for run in runs:
        if run.info.status != "FAILED" or run.data.tags.get(TAG_COMPLETE) != "false":
            mlflow_client.set_tag(run.info.run_id, TAG_COMPLETE, "false")
            mlflow_client.set_terminated(run.info.run_id, "FAILED")
    return None


def _create_run(mlflow_client, exp_id: str, manifest: dict, payload: dict) -> str:
    from mlflow.tracking.context.registry import resolve_tags

    from advisor import __version__

    # MLflow's context tags (user, source, git) but not our own provider's: each kind's logger
    # sets the hardware tags that belong to its report (a recommendation's may be another machine's).
    tags = resolve_tags({
        TAG_REPORT_ID: str(manifest["report_id"]),
        TAG_KIND: manifest["kind"],
        TAG_COMPLETE: "false",
        "advisor.version": str(payload.get("advisor_version") or __version__),
        "advisor.created_at": str(manifest.get("created_at") or ""),
    }, ignore=_own_providers())
    run = mlflow_client.create_run(exp_id, tags=tags, run_name=f"{manifest['kind']}-{str(manifest['report_id'])[:8]}")
    return run.info.run_id


def _own_providers() -> list:
    try:
        from advisor_plugins.run_context import AdvisorRunContextProvider

        return [AdvisorRunContextProvider]
    except Exception:  # plugins not installed: nothing to ignore
        return []


def _fail(mlflow_client, run_id: str | None) -> None:
    """Best effort: a run that died mid-way is FAILED and never looks complete."""
    if mlflow_client is None or run_id is None:
        return
    try:
        mlflow_client.set_tag(run_id, TAG_COMPLETE, "false")
        mlflow_client.set_terminated(run_id, "FAILED")
    except Exception:  # the server is gone; the next delivery fails the run instead
        pass

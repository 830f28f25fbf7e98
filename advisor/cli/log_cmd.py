"""`advisor log`: send saved report folders to MLflow (after an outage, or from an offline machine)."""

from __future__ import annotations

import click

from advisor.cli.common import info, json_option, print_json


@click.command("log")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--all", "send_all", is_flag=True, help="Send every saved report not yet sent.")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI [MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")
@click.option("--experiment", metavar="NAME", help="MLflow experiment [model-advisor].")
@json_option
def log(paths: tuple[str, ...], send_all: bool, tracking_uri: str | None, experiment: str | None, as_json: bool):
    """Send saved reports to MLflow, each exactly once.

    \b
    Every report (recommend, check, estimate, probe) is written to a local folder before
    anything is sent; when MLflow was unreachable the folder is kept. PATH is such a folder,
    or a file inside it (recommendation.json). A report already in MLflow is reported as
    such and not logged again (runs carry the tag advisor.report_id).

    \b
    Examples:
      advisor log --all
      advisor log ~/.local/share/model-advisor/reports/recommendation-20261122T160000Z-0f6d3c1e
      advisor log --all --tracking-uri http://mlflow.internal:5000 --json
    Exit codes: 0 all sent, 2 bad PATH or report, 3 MLflow unreachable (the folders stay pending).
    """
    from advisor.errors import AdvisorError, UsageError
    from advisor.tracking import outbox
    from advisor.tracking.deliver import send

    if not paths and not send_all:
        waiting = len(outbox.pending())
        raise UsageError("give report folders to send, or --all",
                         hint=f"{waiting} report(s) waiting under {outbox.reports_dir()}")
    folders = [outbox.resolve_folder(p) for p in paths]          # bad paths fail before anything is sent
    if send_all:
        folders += [f for f in outbox.pending() if f not in folders]
    if not folders:
        if as_json:
            print_json([])
        else:
            info(f"nothing to send: no pending reports under {outbox.reports_dir()}")
        return 0

    results, codes = [], [0]
    for folder in folders:
        entry = {"folder": str(folder), "status": "failed", "run_id": None, "error": None}
        try:
            d = send(folder, tracking_uri=tracking_uri, experiment=experiment)
        except AdvisorError as exc:                           # keep going: one bad folder blocks no other
            codes.append(exc.exit_code)
            entry["error"] = exc.one_line()
            if not as_json:
                info(f"error: {exc.one_line()}")
        else:
            entry.update(status="already-sent" if d.already_sent else "sent", run_id=d.run_id, kind=d.kind,
                         report_id=d.report_id, experiment=d.experiment, tracking_uri=d.tracking_uri)
            if not as_json:
                word = "already sent" if d.already_sent else "sent"
                click.echo(f"{word}: {folder.name} -> run {d.run_id} (experiment {d.experiment} at {d.tracking_uri})")
        results.append(entry)
    if as_json:
        print_json(results)
    return max(codes)

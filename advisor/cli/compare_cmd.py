"""`advisor compare`: the pick on each machine, side by side, read back from MLflow."""

from __future__ import annotations

import click

from advisor.cli.common import console, info, json_option, print_json


@click.command("compare")
@click.option("--experiment", metavar="NAME", help="MLflow experiment [model-advisor].")
@click.option("--task", metavar="TASK", help="Only recommendations for this task.")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI [MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")
@click.option("--plot", "plot_path", metavar="PATH", help="Also write a bar chart (PNG) to PATH.")
@json_option
def compare(experiment: str | None, task: str | None, tracking_uri: str | None, plot_path: str | None,
            as_json: bool):
    """Compare recommendations across machines (one row per machine, target and task).

    \b
    Every machine runs `advisor recommend` with MLFLOW_TRACKING_URI pointing at the shared
    server; compare shows each machine's latest pick and its figures, its own (target local)
    and any what-if on a named target apart. Without --task, one table per task.

    \b
    Examples:
      advisor compare
      advisor compare --task summarization --plot picks.png
      advisor compare --tracking-uri http://mlflow.internal:5000 --json
    Exit codes: 0 shown, 1 no recommendation runs found, 2 usage error, 3 MLflow unreachable.
    """
    import os

    from advisor.errors import EXIT_FAILED
    from advisor.tracking import connection
    from advisor.tracking.readback import load_picks

    if plot_path:
        from advisor.extras import require

        require("matplotlib", "--plot")
    rows = load_picks(experiment=experiment, task=task, tracking_uri=tracking_uri)
    if as_json:
        print_json(rows)
    if not rows:
        from advisor.tracking.readback import sqlite_path

        uri = connection.resolve_tracking_uri(tracking_uri)
        where = f"experiment '{connection.resolve_experiment(experiment)}' at {connection.redact(uri)}"
        db = sqlite_path(uri)
        if db is not None and not db.is_file():
            where += (" (no such store here yet"
                      + ("; set MLFLOW_TRACKING_URI or --tracking-uri to the shared server" if not tracking_uri
                         and not os.environ.get("MLFLOW_TRACKING_URI") else "") + ")")
        info(f"no advisor recommendations{f' for task {task!r}' if task else ''} in {where}; "
             "run `advisor recommend` on each machine with MLFLOW_TRACKING_URI set to the shared server")
        return EXIT_FAILED
    if not as_json:
        render(rows)
    if plot_path:
        from advisor.tracking.compare_plot import compare_png

        try:
            compare_png(rows, plot_path)
        except OSError as exc:
            from advisor.errors import UsageError

            raise UsageError(f"cannot write {plot_path}: {exc.strerror or exc}") from None
        info(f"chart written to {plot_path}")
    return 0


def _num(value, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _pick(r: dict) -> str:
    """model:format (the target has its own column)."""
    from rich.markup import escape as e

    if not r.get("pick"):
        return "[red]none[/red]"
    return e(r["pick"].rsplit("@", 1)[0])


def _target(r: dict) -> str:
    from rich.markup import escape as e

    if r.get("target") in (None, "local"):
        return "local"
    return e(r["target"]) + " [dim](what-if)[/dim]"


def render(rows: list[dict]) -> None:
    """One table per task; a named-target row is a what-if run from that machine, said so."""
    from rich.markup import escape as e

    from advisor.cli.fit import Column, fitted_table

    out = console()
    columns = [Column("machine", wraps=True, min_width=14), Column("fingerprint", keep=45), Column("target"),
               Column("pick"), Column("p95 ms", "right"),
               Column("TTFT ms", "right", keep=40), Column("tok/s", "right", keep=50),
               Column("mem GB", "right", keep=70), Column("quality proxy", "right", keep=80),
               Column("$/Mtok", "right", keep=30), Column("logged", keep=20)]
    tasks = list(dict.fromkeys(r["task"] or "-" for r in rows))
    for task in tasks:
        group = [r for r in rows if (r["task"] or "-") == task]
        cells = [[e(r["profile"]), e((r.get("fingerprint") or "-")[:8]), _target(r), _pick(r), _num(r["e2e_p95_ms"]),
                  _num(r["ttft_ms"]), _num(r["tokens_per_s"], "{:,.1f}"), _num(r["memory_gb"], "{:,.1f}"),
                  _num(r["quality_proxy"], "{:,.1f}"), _num(r["cost_per_mtok_usd"], "{:,.2f}"), r["started"][:16]]
                 for r in group]
        table, dropped = fitted_table(columns, cells, out.width,
                                      title=f"{e(task)}: the pick on each machine (latest run per machine and target)")
        out.print(table)
        if dropped:
            out.print(f"[dim]not shown at {out.width} columns: {', '.join(dropped)} (--json has every figure)[/dim]")
        for r in group:
            if r.get("verdict"):
                out.print(f"[bold]{e(r['profile'])}[/bold] ({e(r['target'] or 'local')}): {e(r['verdict'])}")
        out.print("")

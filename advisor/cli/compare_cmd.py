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
    """Compare recommendations across machines (one row per hardware profile and task).

    \b
    Every machine runs `advisor recommend` with MLFLOW_TRACKING_URI pointing at the shared
    server; compare shows each machine's latest pick and its figures.

    \b
    Examples:
      advisor compare
      advisor compare --task summarization --plot picks.png
      advisor compare --tracking-uri http://mlflow.internal:5000 --json
    Exit codes: 0 shown, 1 no recommendation runs found, 2 usage error, 3 MLflow unreachable.
    """
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
        where = f"experiment '{connection.resolve_experiment(experiment)}' at " \
                f"{connection.redact(connection.resolve_tracking_uri(tracking_uri))}"
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


def render(rows: list[dict]) -> None:
    from rich.markup import escape as e
    from rich.table import Table

    table = Table(title="The pick on each machine (latest run per profile and task)", title_justify="left")
    for col, justify in (("hardware", "left"), ("task", "left"), ("pick", "left"), ("p95 ms", "right"),
                         ("TTFT ms", "right"), ("tok/s", "right"), ("mem GB", "right"), ("quality proxy", "right"),
                         ("$/Mtok", "right"), ("logged", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows:
        hw = e(r["profile"]) + (f"\n[dim]{e(r['fingerprint'][:12])}[/dim]" if r.get("fingerprint") else "")
        table.add_row(hw, e(r["task"] or "-"), e(r["pick"]) if r["pick"] else "[red]none[/red]", _num(r["e2e_p95_ms"]),
                      _num(r["ttft_ms"]), _num(r["tokens_per_s"], "{:,.1f}"), _num(r["memory_gb"], "{:,.1f}"),
                      _num(r["quality_proxy"], "{:,.1f}"), _num(r["cost_per_mtok_usd"], "{:,.2f}"), r["started"][:16])
    out = console()
    out.print(table)
    for r in rows:
        if r.get("verdict"):
            out.print(f"[bold]{e(r['profile'])}[/bold] ({e(r['task'] or '-')}): {e(r['verdict'])}")

"""The check report for people: a short terminal summary (one line per check per target) and Markdown."""

from __future__ import annotations

from advisor.check.schema import CheckReport, CheckResult

BASIS_NOTE = ("basis: spec = datasheet peaks x documented efficiencies; calibrated = formulas fed with rates "
              "probed on this machine; measured = timed here; catalog = catalog entry; proxy = weighted "
              "published benchmarks, not a task measurement")
_MARK = {"pass": "PASS", "fail": "FAIL", "unknown": "UNKNOWN"}
_EMOJI = {"pass": "✅", "fail": "❌", "unknown": "❔"}


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        text = f"{value:,.2f}" if unit == "GB" else f"{value:,.1f}"
        return f"{text} {unit}".strip()
    return str(value)


def headline(report: CheckReport) -> str:
    targets = ", ".join(t.target for t in report.targets)
    results = report.results()
    unknown = sum(c.status == "unknown" for c in results)
    extra = f", {unknown} unknown" if unknown else ""
    if report.passed:
        return f"PASSED: {report.model.label} on {targets}: {len(results) - unknown} checks passed{extra}"
    return (f"FAILED: {report.model.label} on {targets}: {len(report.failed)} of {len(results)} checks failed{extra} "
            f"({', '.join(report.failed)})")


def _shape(report: CheckReport) -> str:
    from advisor.check.schema import borrowed_from

    source = borrowed_from(report.model.model_dump())
    task = (f"licence and scores of catalog entry {source}, " if source else "") + (
        f"task {report.task}, " if report.task else "")
    return (f"{task}{report.format}, {report.prompt_tokens} prompt + {report.new_tokens} new tokens, "
            f"batch {report.batch}")


def print_summary(report: CheckReport, console) -> None:
    """One line per check per target, then the verdict; rich markup, no tables (CI logs wrap)."""
    from rich.markup import escape

    out = lambda text: console.print(text, soft_wrap=True)  # noqa: E731 - CI logs: never wrap a line
    out(f"advisor check {escape(report.model.label)} ({escape(_shape(report))})")
    colour = {"pass": "green", "fail": "red", "unknown": "yellow"}
    width = max((len(t.target) for t in report.targets), default=5)
    for t in report.targets:
        for c in t.checks:
            out(f"  [{colour[c.status]}]{_MARK[c.status]:<7}[/] {escape(t.target):<{width}}  "
                          f"{c.name:<15} {escape(c.message)} [dim]\\[{c.basis}][/]")
    for note in report.notes:
        out(f"  [dim]note: {escape(note)}[/]")
    out(f"[dim]{escape(BASIS_NOTE)}[/]")
    out(f"[bold {'green' if report.passed else 'red'}]{escape(headline(report))}[/]")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(c: CheckResult) -> str:
    return "| " + " | ".join(_cell(x) for x in (
        c.target, c.name, f"{_EMOJI[c.status]} {c.status}", _fmt(c.value, c.unit), _fmt(c.limit, c.unit),
        c.basis, c.message)) + " |"


def to_markdown(report: CheckReport) -> str:
    lines = [f"### {_EMOJI[report.status]} advisor check: {_cell(report.model.label)} — {report.status.upper()}", "",
             f"{_shape(report)}; model from {report.model.kind}"
             + (f" `{report.model.uri}`" if report.model.uri else "") + ".", "",
             "| Target | Check | Status | Value | Limit | Basis | Detail |",
             "|---|---|---|---|---|---|---|"]
    lines += [_row(c) for c in report.results()]
    lines.append("")
    lines += [f"- {_cell(n)}" for n in report.notes]
    lines += ["", f"*{BASIS_NOTE}.*", "", f"**{_cell(headline(report))}**", ""]
    return "\n".join(lines)

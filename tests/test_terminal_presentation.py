"""Issue 18, terminal: output rendered at COLUMNS=80 as a user's terminal shows it: no id broken across
lines, no cell cut to an ellipsis, markup never eats text, and no library warnings in the middle."""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path

import pytest
from conftest import run_advisor

ELLIPSIS = ("…", "...")
NARROW = {"COLUMNS": "80"}


def _lines_fit(text: str, width: int = 80) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)


def _table_rows(text: str, first_cells: set[str]) -> list[str]:
    """The lines of a table whose first cell is one of `first_cells` (the row starts there)."""
    return [line for line in text.splitlines() if line.split(" ", 1)[0] in first_cells]


def test_recommend_table_fits_80_columns_and_never_breaks_an_id():
    args = ("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe", "--no-mlflow")
    data = json.loads(run_advisor(*args, "--json").stdout)
    r = run_advisor(*args, "--all", env=NARROW)
    assert r.returncode == 0, r.stderr
    _lines_fit(r.stdout)
    assert not any(e in r.stdout for e in ELLIPSIS), r.stdout
    ids = {c["model"] for c in data["candidates"]}
    rows = _table_rows(r.stdout, ids)
    assert len(rows) == len(data["candidates"])          # --all: one row per candidate, each starting with its id
    for c, row in zip(data["candidates"], rows):         # the table order is the JSON's (rank 1 first)
        assert [row.split()[0], row.split()[1].rstrip("†")] == [c["model"], c["format"]], row
    # a column that does not fit is named, never squeezed into fragments
    assert "not shown at 80 columns:" in r.stdout


def test_the_verdict_quotes_the_pick_row_of_the_table():
    from advisor.rules.table import gb, secs

    args = ("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe", "--no-mlflow")
    data = json.loads(run_advisor(*args, "--json").stdout)
    pick = data["targets"][0]["pick"]
    r = run_advisor(*args, env=NARROW)
    [row] = [line for line in r.stdout.splitlines() if line.startswith(f"{pick['model']} ") and "PICK" in line]
    verdict = " ".join(r.stdout[r.stdout.index("verdict"):].replace("│", " ").split())
    dropped = next((line for line in r.stdout.splitlines() if line.startswith("not shown at 80 columns:")), "")
    for figure, column in ((secs(pick["e2e_p95_ms"]), "p95 e2e"), (gb(pick["memory_bytes"]), "memory")):
        assert figure in verdict, (figure, verdict)
        # the row shows the same figure, unless its whole column did not fit (and the screen says so)
        assert figure in row or column in dropped, (figure, row, dropped)
    assert f"Use {pick['model']} ({pick['format']})" in verdict and row.split()[1].rstrip("†") == pick["format"]


def test_catalog_list_fits_80_columns_without_ellipses():
    data = json.loads(run_advisor("catalog", "list", "--task", "summarization", "--json").stdout)
    r = run_advisor("catalog", "list", "--task", "summarization", env=NARROW)
    assert r.returncode == 0, r.stderr
    _lines_fit(r.stdout)
    assert not any(e in r.stdout for e in ELLIPSIS), r.stdout
    ids = {m["id"] for m in data["models"]}
    rows = _table_rows(r.stdout, ids)
    assert [row.split()[0] for row in rows] == [m["id"] for m in data["models"]]
    for m, row in zip(data["models"], rows):              # the licence id whole, the proxy shown
        assert f" {m['license']} " in row
        assert row.rstrip().endswith("unscored" if m["quality_proxy"] is None else f"{m['quality_proxy']:.1f}")


def test_markup_in_notes_verdicts_and_reasons_is_printed_as_text(capsys, monkeypatch):
    """rich ate `[probe]` from the install hint: every message with user or package text is escaped."""
    from advisor.cli.recommend_cmd import _show
    from advisor.recommend.engine import recommend

    monkeypatch.setenv("COLUMNS", "80")
    rec = recommend("summarization", targets=["a10g-24gb"], probe=False)
    hint = "torch is not installed: probes skipped (pip install 'model-advisor[probe]')"
    target = rec.primary.model_copy(update={"warnings": ["a [bold]user[/bold] string"],
                                            "verdict": rec.primary.verdict + " [red]x[/red]"})
    rec = rec.model_copy(update={"notes": [*rec.notes, hint], "targets": [target]})
    capsys.readouterr()
    _show(rec, show_all=False)
    out = " ".join(capsys.readouterr().out.split())     # lines wrap at 80
    assert "pip install 'model-advisor[probe]')" in out
    assert "a [bold]user[/bold] string" in out and "[red]x[/red]" in out


def test_probe_code_uses_the_current_cache_api_without_deprecation_warnings(caplog):
    """transformers 5 renamed `past_key_values` to `cache` and warns (in the middle of the progress bar)
    on the old name; the probes call whichever name the installed transformers takes."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    from advisor.catalog.loader import get_catalog
    from advisor.probe.build import build_body

    arch = get_catalog().model("smollm2-135m").arch
    body = build_body(arch, 1, "fp32", "cpu", min_positions=16)
    assert body.backend == "transformers"
    ids = torch.zeros((1, 8), dtype=torch.long)
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING, logger="transformers"):
        warnings.simplefilter("always")
        with torch.inference_mode():
            _, cache = body.forward(ids, None)
            body.forward(ids[:, :1], cache)
    said = [str(w.message) for w in seen] + [r.getMessage() for r in caplog.records]
    assert not [s for s in said if "deprecated" in s], said


def test_a_probe_run_prints_no_library_warnings(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    r = run_advisor("probe", "smollm2-135m", "--prompt-tokens", "16", "--new-tokens", "2", "--refresh",
                    env={"ADVISOR_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "deprecated" not in r.stderr and "[transformers]" not in r.stderr, r.stderr


# --- errors that keep the README's promises -------------------------------------------------------

TAB = "models:\n  - id: tabbed\n\tname: x\n"


@pytest.mark.parametrize("args, file_name", [
    (("catalog", "validate", "{f}"), "c.yaml"),
    (("catalog", "list", "--catalog", "{f}"), "c.yaml"),
    (("recommend", "--task", "chat", "--catalog", "{f}", "--no-probe", "--no-mlflow"), "c.yaml"),
    (("recommend", "--config", "{f}", "--no-probe", "--no-mlflow"), "advisor.yaml"),
    (("check", "--policy", "{f}", "--no-mlflow"), "policy.yaml"),
])
def test_a_tab_in_any_yaml_file_is_file_line_reason(tmp_path, args, file_name):
    f = tmp_path / file_name
    f.write_text(TAB if file_name == "c.yaml" else "task: chat\nthresholds:\n\tmax_latency_ms: 3\n")
    r = run_advisor(*(a.format(f=f) for a in args))
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    line_no = 3
    assert re.match(rf"error: {re.escape(str(f))}:{line_no}: malformed YAML \(.*tabs?\b", line), line


def test_vllm_on_a_cpu_only_machine_is_refused_in_one_line(fixtures):
    cpu = {"ADVISOR_HARDWARE_FIXTURE": str(fixtures / "hardware" / "cpu-16gb.json")}
    r = run_advisor("recommend", "--task", "summarization", "--runtime", "vllm", "--no-probe", "--no-mlflow", env=cpu)
    assert r.returncode == 2 and r.stdout == ""
    [line] = r.stderr.strip().splitlines()
    assert (line.startswith("error: --runtime vllm cannot run on this machine (no GPU found)")
            and "--runtime transformers" in line)
    r = run_advisor("recommend", "--task", "summarization", "--runtime", "vllm", "--target", "a10g-24gb",
                    "--target", "cpu-server", "--no-probe", "--no-mlflow", "--json")
    assert r.returncode == 2 and r.stdout == "" and "cannot run on cpu-server" in r.stderr
    # a GPU target with vllm still works
    r = run_advisor("recommend", "--task", "summarization", "--runtime", "vllm", "--target", "a10g-24gb",
                    "--no-probe", "--no-mlflow", "--json")
    assert r.returncode in (0, 1), r.stderr
    assert json.loads(r.stdout)["runtime"] == "vllm"


def test_readme_links_the_screenshots():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in ("mlflow-run-page.png", "mlflow-runs-table.png", "mlflow-pareto.png"):
        assert f"(docs/{name})" in readme
        assert (Path(__file__).resolve().parents[1] / "docs" / name).stat().st_size > 10_000

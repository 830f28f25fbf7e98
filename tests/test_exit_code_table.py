"""Issue 18: the exit codes the code returns are the ones the README documents, for every command and
every kind of error (one table, run through the real CLI entry point)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow_server import closed_port_uri

from advisor.cli.app import COMMANDS, cli
from advisor.cli.guard import run_cli

REPO = Path(__file__).resolve().parents[1]
CAT = REPO / "tests" / "fixtures" / "catalog"
NAMED = ("--target", "a10g-24gb", "--no-probe")

# (kind of outcome, the words of the README row that must describe it, exit code)
KINDS = {
    "ok": ("success", 0),
    "nothing qualifies": ("no model meets the constraints", 1),
    "check failed": ("a check failed", 1),
    "bad flag": ("bad flag", 2),
    "bad file": ("bad catalog/policy/config file", 2),
    "unknown id": ("unknown model/target/task", 2),
    "impossible pair": ("a runtime/target pair that cannot work", 2),
    "mlflow down": ("MLflow unreachable", 3),
    "internal": ("internal error", 70),
}

CASES = [
    (("profile", "--target", "a10g-24gb", "--json"), "ok"),
    (("profile", "--target", "a10g-24gbb"), "unknown id"),
    (("catalog", "list", "--json"), "ok"),
    (("catalog", "list", "--catalog", str(CAT / "malformed.yaml")), "bad file"),
    (("catalog", "show", "qwen2.5-05b"), "unknown id"),
    (("catalog", "validate", str(CAT / "good.yaml")), "ok"),
    (("catalog", "validate", str(CAT / "bad.yaml")), "bad file"),
    (("catalog", "validate", str(CAT / "malformed.yaml")), "bad file"),
    (("catalog", "validate", str(CAT / "bad.yaml"), "--json"), "bad file"),
    (("catalog", "import-hf-config", "nope.json", "--id", "x"), "bad file"),
    (("estimate", "qwen2.5-0.5b", "--target", "a10g-24gb", "--json"), "ok"),
    (("estimate", "qwen2.5-0.5b", "--bogus"), "bad flag"),
    (("estimate", "qwen2.5-0.5b", "--target", "nope"), "unknown id"),
    (("probe", "nope-model"), "unknown id"),
    (("recommend", "--task", "summarization", *NAMED, "--no-mlflow", "--json"), "ok"),
    (("recommend", "--task", "summarisation", *NAMED, "--no-mlflow"), "unknown id"),
    (("recommend", "--task", "summarization", *NAMED, "--no-mlflow", "--max-latency-ms", "1"), "nothing qualifies"),
    (("recommend", "--task", "summarization", "--runtime", "vllm", "--target", "cpu-server", "--no-probe",
      "--no-mlflow"), "impossible pair"),
    (("recommend", "--task", "summarization", *NAMED, "--tracking-uri", "{down}"), "mlflow down"),
    (("check", "qwen2.5-3b", "--target", "a10g-24gb", "--no-mlflow"), "ok"),
    (("check", "qwen2.5-3b", "--target", "a10g-24gb", "--no-mlflow", "--max-latency-ms", "1"), "check failed"),
    (("check", "--policy", "{tmp}/missing.yaml", "--no-mlflow"), "bad file"),
    (("check", "qwen2.5-3b", "--target", "a10g-24gb", "--tracking-uri", "{down}"), "mlflow down"),
    (("log", "{tmp}/no-such-folder"), "bad file"),
    (("log", "--all"), "ok"),
    (("compare", "--tracking-uri", "{down}"), "mlflow down"),
    (("no-such-command",), "bad flag"),
]


def readme_exit_codes() -> dict[int, str]:
    """The README's 'Exit codes (all commands)' table: code -> meaning."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Exit codes (all commands)"):]
    section = section[:section.index("\n\n", section.index("|"))]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M)
    return {int(code): meaning for code, meaning in rows}


@pytest.mark.parametrize("args, kind", CASES, ids=[f"{a[0]}-{k}-{i}" for i, (a, k) in enumerate(CASES)])
def test_every_command_exits_with_the_documented_code(args, kind, capsys, tmp_path):
    words, code = KINDS[kind]
    documented = readme_exit_codes()
    assert code in documented and words in documented[code], (code, documented)
    argv = [a.format(down=closed_port_uri(), tmp=tmp_path) for a in args]
    got = run_cli(cli, argv, "advisor")
    err = capsys.readouterr().err
    assert got == code, (argv, err)
    if code == 2:   # a usage or input error is exactly one error line
        assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1, err


def test_an_internal_error_is_exit_70_with_one_line(capsys, monkeypatch):
    from advisor.hardware import profile

    def broken(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(profile, "detect_profile", broken)
    monkeypatch.delenv("ADVISOR_DEBUG", raising=False)
    assert run_cli(cli, ["profile"], "advisor") == KINDS["internal"][1] == 70
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: internal error: RuntimeError: a bug")


def test_every_code_a_help_text_names_is_in_the_readme_table():
    """`--help` texts say 'Exit codes: 0 ..., 1 ...' too: they must not promise another code."""
    from click.testing import CliRunner

    documented = readme_exit_codes()
    runner = CliRunner()
    helps = {"advisor": runner.invoke(cli, ["--help"]).output}
    for name in COMMANDS:
        helps[name] = runner.invoke(cli, [name, "--help"]).output
    helps["catalog validate"] = runner.invoke(cli, ["catalog", "validate", "--help"]).output
    for name, text in helps.items():
        flat = " ".join(text.split())
        for part in re.findall(r"Exit(?: codes)?:? (.+?)(?:\.(?: |$)|$)", flat):
            for code in re.findall(r"(?:^|[ ,;])(\d{1,3}) (?=[a-z])", part):
                assert int(code) in documented, (name, code, part)
    assert "2 when any problem is found" in " ".join(helps["catalog validate"].split())

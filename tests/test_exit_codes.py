"""Exit codes: a bug (internal error) has its own code, never 1 ("a check failed"); a database store
without full MLflow is one line that names the extra (exit 2). The codes are documented alike in
advisor/errors.py, `advisor --help` and README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from advisor import errors

REPO = Path(__file__).resolve().parents[1]
CHECK = Path(__file__).parent / "fixtures" / "check"


@pytest.fixture
def broken_profile(monkeypatch):
    """`advisor profile` replaced by a command with a bug in it."""
    from advisor.cli import app

    @click.command()
    def boom():
        {}["missing"]   # noqa: B018 - the injected bug

    real = app.LazyGroup.get_command
    monkeypatch.setattr(app.LazyGroup, "get_command",
                        lambda self, ctx, name: boom if name == "profile" else real(self, ctx, name))


def test_internal_error_exits_70_with_one_line(broken_profile, capsys, monkeypatch):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    monkeypatch.delenv("ADVISOR_DEBUG", raising=False)
    assert errors.EXIT_INTERNAL == 70 and errors.EXIT_INTERNAL not in (errors.EXIT_FAILED, errors.EXIT_USAGE,
                                                                      errors.EXIT_INFRA)
    assert run_cli(cli, ["profile"], prog_name="advisor") == 70
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: internal error: KeyError: 'missing' (set ADVISOR_DEBUG=1 for the traceback)"]


def test_advisor_debug_shows_the_traceback(broken_profile, monkeypatch):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    monkeypatch.setenv("ADVISOR_DEBUG", "1")
    with pytest.raises(KeyError, match="missing"):
        run_cli(cli, ["profile"], prog_name="advisor")


def test_a_failed_check_is_still_1_and_usage_still_2(capsys, monkeypatch):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    gate = ["check", "gate-large", "--target", "gate-gpu-24gb", "--catalog", str(CHECK / "catalog.yaml"),
            "--no-mlflow"]
    assert run_cli(cli, [*gate, "--max-latency-ms", "3000"], prog_name="advisor") == 1
    assert run_cli(cli, [*gate, "--max-latency-ms", "-5"], prog_name="advisor") == 2


@pytest.fixture
def skinny(monkeypatch):
    """This process as the core install sees it: no SQLAlchemy, no alembic, no matplotlib."""
    from advisor import extras

    real = extras.have
    monkeypatch.setattr(extras, "have", lambda m: False if m in ("sqlalchemy", "alembic", "matplotlib") else real(m))


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "postgresql+psycopg2://u@db/mlflow", "mysql://u@db/m"])
def test_database_store_without_full_mlflow_names_the_extra(skinny, uri):
    from advisor.tracking.connection import require_store

    with pytest.raises(errors.UsageError) as info:
        require_store(uri)
    line = info.value.one_line()
    assert line.startswith(f"the MLflow store {uri.replace('u@', '***@')} needs full MLflow (sqlalchemy, alembic")
    assert "pip install 'model-advisor[mlflow]'" in line and "\n" not in line


def test_http_store_needs_no_extra(skinny):
    from advisor.tracking.connection import require_store

    assert require_store("http://mlflow.internal:5000") == "http://mlflow.internal:5000"


def test_commands_stop_before_any_work_on_a_store_they_cannot_open(skinny, capsys, tmp_path, monkeypatch):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    gate = ["check", "gate-small", "--target", "gate-gpu-24gb", "--catalog", str(CHECK / "catalog.yaml")]
    for argv in ([*gate, "--mlflow"], ["recommend", "--task", "summarization", "--target", "gate-gpu-24gb",
                                       "--catalog", str(CHECK / "catalog.yaml"), "--no-probe"]):
        assert run_cli(cli, argv, prog_name="advisor") == 2
        captured = capsys.readouterr()
        assert captured.out == ""   # nothing was checked or recommended
        [line] = captured.err.splitlines()
        assert "needs full MLflow" in line and "pip install 'model-advisor[mlflow]'" in line
    assert not any(tmp_path.iterdir())
    assert run_cli(cli, ["recommend", "--task", "summarization", "--target", "gate-gpu-24gb", "--no-mlflow",
                         "--catalog", str(CHECK / "catalog.yaml"), "--no-probe", "--plot", "p.png"],
                   prog_name="advisor") == 2
    assert "error: --plot needs matplotlib, which this install lacks (pip install 'model-advisor[mlflow]')" \
        in capsys.readouterr().err


def test_exit_codes_are_documented_alike():
    from advisor.cli.app import EPILOG

    codes = {0, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_INFRA, errors.EXIT_INTERNAL,
             errors.EXIT_INTERRUPTED}
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Exit codes"):]
    table = table[:table.index("\n\n", table.index("|---"))]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == codes, documented
    assert "| 70 | internal error" in table
    assert {int(m) for m in re.findall(r"^\s+(\d+)\s", errors.__doc__, re.M)} == codes
    assert all(str(c) in EPILOG for c in codes - {0}) and "70 internal error" in " ".join(EPILOG.split())


def test_estimate_mlflow_on_a_store_it_cannot_open_keeps_nothing(skinny, capsys, tmp_path, monkeypatch):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = run_cli(cli, ["estimate", "gate-small", "--target", "gate-gpu-24gb", "--catalog",
                         str(CHECK / "catalog.yaml"), "--mlflow"], prog_name="advisor")
    assert code == 2
    assert "pip install 'model-advisor[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_group_without_a_command_is_one_usage_line(capsys):
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    assert run_cli(cli, [], prog_name="advisor") == 2
    assert capsys.readouterr().err.splitlines() == ["error: no command given (see 'advisor --help')"]
    assert run_cli(cli, ["catalog"], prog_name="advisor") == 2
    assert capsys.readouterr().err.splitlines() == ["error: no command given (see 'advisor catalog --help')"]


def test_one_line_folds_whitespace_and_cuts_only_the_message():
    from advisor.errors import one_line

    exc = ValueError("first line\n   second\tline " + "x" * 50)
    assert one_line(exc) == "ValueError: first line second line " + "x" * 50
    assert one_line(exc, 10) == "ValueError: first line"

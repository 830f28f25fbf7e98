"""Load: 20 concurrent `advisor recommend` processes logging to one real MLflow server.

PostgreSQL backend (a throwaway cluster started by the fixture; skipped, with the reason, only
when the server binaries or psycopg2 are missing) and sqlite backend. Every run must arrive
complete (FINISHED, advisor.complete=true, params/tags/metrics/artifacts matching the report that
process saved), none mixed, none lost, none duplicated. benchmarks/load_mlflow.py is the same
harness with timings printed.

ADVISOR_LOAD_PROCESSES changes the number of processes (default 20); ADVISOR_LOAD_BACKENDS
(comma-separated) picks the backends: by default PostgreSQL, plus sqlite when PostgreSQL is missing
(the CI budget holds one 20-process batch); benchmarks/load_mlflow.py always runs both.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import REPO
from tests.pg_server import missing_reason, postgres  # noqa: F401 - the session fixture

sys.path.insert(0, str(REPO))
from benchmarks.load_mlflow import load_test  # noqa: E402

PROCESSES = int(os.environ.get("ADVISOR_LOAD_PROCESSES", "20"))
# PostgreSQL is the load test; sqlite runs too where PostgreSQL cannot (and on request), so a
# machine without PostgreSQL still gets a load test. benchmarks/load_mlflow.py runs both.
_DEFAULT = "postgresql" if missing_reason() is None else "postgresql,sqlite"
BACKENDS = [b.strip() for b in os.environ.get("ADVISOR_LOAD_BACKENDS", _DEFAULT).split(",") if b.strip()]


def _report(res) -> str:
    return res.line() + "".join(f"\n  problem: {p}" for p in res.problems[:20])


@pytest.mark.slow
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="ADVISOR_LOAD_BACKENDS excludes postgresql")
def test_concurrent_recommendations_all_arrive_on_postgresql(postgres, tmp_path):  # noqa: F811 - the fixture
    res = load_test("postgresql", tmp_path, processes=PROCESSES, workers=2, pg=postgres)
    print(res.line())
    assert res.ok, _report(res)
    assert res.complete == PROCESSES


@pytest.mark.slow
@pytest.mark.skipif("sqlite" not in BACKENDS, reason="PostgreSQL is available and runs the load test; "
                    "ADVISOR_LOAD_BACKENDS=postgresql,sqlite runs sqlite too (benchmarks/load_mlflow.py does)")
def test_concurrent_recommendations_all_arrive_on_sqlite(tmp_path):
    res = load_test("sqlite", tmp_path, processes=PROCESSES, workers=2)
    print(res.line())
    assert res.ok, _report(res)
    assert res.complete == PROCESSES


def test_the_postgres_fixture_says_why_it_skips(monkeypatch):
    """A machine without PostgreSQL gets a clear skip reason, never a failure."""
    import tests.pg_server as pg

    monkeypatch.setattr(pg, "pg_binaries", lambda: None)
    assert "postgresql" in missing_reason().lower()
    monkeypatch.undo()
    import builtins

    real_import = builtins.__import__

    def no_psycopg2(name, *a, **k):
        if name == "psycopg2":
            raise ImportError("no psycopg2")
        return real_import(name, *a, **k)

    monkeypatch.setattr(pg, "pg_binaries", lambda: REPO)  # pretend the binaries exist
    monkeypatch.setattr(builtins, "__import__", no_psycopg2)
    assert "psycopg2" in pg.missing_reason()

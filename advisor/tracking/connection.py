"""Where MLflow is, whether this install can open it, and how long we wait for it.

The tracking URI comes from the argument, else MLFLOW_TRACKING_URI, else MLflow 3's embedded
default `sqlite:///mlflow.db` (in the current directory). Credentials travel only through MLflow's
own env vars (MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN...); URIs are redacted before they are shown.

The core install ships mlflow-skinny, the client for a tracking server (http/https, databricks).
Database stores (sqlite, PostgreSQL, MySQL, SQL Server) need full MLflow, the `mlflow` extra;
`require_store()` says so in one line (exit 2) before any work is done.

MLflow's HTTP client retries 7 times with exponential back-off and a 120 s timeout by default, so
an unreachable server would hang a command for minutes. `bounded_http()` sets short defaults for
the duration of one delivery; values the user exported themselves win.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "model-advisor"

# MLflow's own knobs, read at call time by mlflow.utils.rest_utils and the HTTP artifact repo.
BOUNDED_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

# URI schemes MLflow serves through its SQLAlchemy store (a "+driver" suffix is allowed).
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# What full MLflow adds that a database store imports (mlflow-skinny has neither).
DATABASE_STORE_MODULES = ("sqlalchemy", "alembic")

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def tracking_uri_given(tracking_uri: str | None = None) -> str | None:
    """The URI the user named (argument or MLFLOW_TRACKING_URI), or None: no embedded default."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def is_database_uri(uri: str) -> bool:
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    return scheme.split("+", 1)[0] in DATABASE_SCHEMES


def missing_store_modules(uri: str) -> list[str]:
    """Modules this install lacks to open `uri` ([] when it can)."""
    from advisor.extras import have

    if not is_database_uri(uri):
        return []
    return [m for m in DATABASE_STORE_MODULES if not have(m)]


def require_store(tracking_uri: str | None = None) -> str:
    """The resolved URI; UsageError (exit 2, one line) when this install cannot open that store."""
    uri = resolve_tracking_uri(tracking_uri)
    missing = missing_store_modules(uri)
    if missing:
        from advisor.errors import UsageError
        from advisor.extras import MLFLOW_EXTRA

        raise UsageError(f"the MLflow store {redact(uri)} needs full MLflow ({', '.join(missing)} not installed)",
                         hint=f"{MLFLOW_EXTRA}, or log to a tracking server with --tracking-uri http://HOST:5000")
    return uri


def resolve_experiment(experiment: str | None = None) -> str:
    return experiment or DEFAULT_EXPERIMENT


def redact(uri: str) -> str:
    """Drop user:password@ from a URI before it is printed or stored."""
    return _USERINFO.sub(lambda m: m.group("scheme") + "***@", uri or "")


@contextlib.contextmanager
def bounded_http() -> Iterator[None]:
    """Short MLflow HTTP retries/timeouts for the enclosed calls; restores the environment after."""
    saved = {k: os.environ.get(k) for k in BOUNDED_HTTP_ENV}
    for key, value in BOUNDED_HTTP_ENV.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client(tracking_uri: str | None = None):
    """An MlflowClient bound to the resolved URI (imports mlflow: call only when sending)."""
    uri = require_store(tracking_uri)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(mlflow_client, name: str) -> str:
    """The experiment's id, created when missing (tolerates a concurrent creator)."""
    from mlflow.exceptions import MlflowException

    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            from advisor.errors import UsageError

            raise UsageError(f"MLflow experiment '{name}' is deleted",
                             hint="restore it with `mlflow experiments restore` or pass --experiment")
        return exp.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except MlflowException:
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id

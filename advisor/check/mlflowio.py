"""MLflow plumbing for the gate: a client with a quick reachability test, and errors mapped to exit codes.

An unreachable server is found with one socket connect (seconds) instead of MLflow's retry loop
(minutes), so a CI job fails fast with exit 3.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from urllib.parse import urlparse

from advisor.errors import AdvisorError, InfraError, UsageError

CONNECT_TIMEOUT_S = 5.0
# MLflow error codes that mean "you named something that is not there", not "MLflow is down".
_USER_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST"}


def effective_uri(tracking_uri: str | None) -> str:
    from advisor.tracking.connection import resolve_tracking_uri

    return resolve_tracking_uri(tracking_uri)


def preflight(tracking_uri: str) -> None:
    """Raise InfraError at once when an http(s) tracking server does not accept connections."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        from advisor.tracking.connection import redact

        raise InfraError(f"MLflow at {redact(tracking_uri)} is unreachable ({exc.strerror or exc})") from None


def client_for(tracking_uri: str | None):
    from advisor.tracking.connection import require_store

    uri = require_store(tracking_uri)   # a database store without full MLflow: one line, exit 2
    preflight(uri)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split())[:300] if text else type(exc).__name__


@contextmanager
def mlflow_errors(what: str, tracking_uri: str | None, *, report_at: str | None = None):
    """Turn MLflow failures into UsageError (a name that does not exist) or InfraError (the rest)."""
    from advisor.tracking.connection import bounded_http, redact

    kept = f"; the report is kept at {report_at} (send it later with 'advisor log')" if report_at else ""
    try:
        with bounded_http():  # short retries: a CI job must not hang on a dead server
            yield
    except AdvisorError as exc:
        if isinstance(exc, InfraError) and kept and "report is kept" not in exc.message:
            raise InfraError(exc.message + kept, hint=exc.hint) from None
        raise
    except Exception as exc:  # MLflow raises many types (MlflowException, requests, sqlalchemy)
        code = getattr(exc, "error_code", None)
        if code in _USER_CODES and not kept:
            raise UsageError(f"{what}: {_first_line(exc)}") from None
        raise InfraError(f"{what} at {redact(effective_uri(tracking_uri))}: "
                         f"{_first_line(exc)}{kept}") from None

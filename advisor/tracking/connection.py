"""Where MLflow is, and how long we wait for it.

The tracking URI comes from the argument, else MLFLOW_TRACKING_URI, else MLflow 3's embedded
default `sqlite:///mlflow.db` (in the current directory). Credentials travel only through MLflow's
own env vars (MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN...); URIs are redacted before they are shown.

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

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


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

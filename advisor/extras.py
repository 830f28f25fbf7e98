"""Optional dependencies: is one installed, and the one line that says how to get it.

The core install (`pip install model-advisor`) is what a CI gate needs: mlflow-skinny talks to a
tracking server over HTTP. The `mlflow` extra adds full MLflow (the embedded sqlite:///mlflow.db
store, `mlflow server`/`mlflow ui`, pandas for tables, mlflow.models.evaluate) and matplotlib for
the plots.
"""

from __future__ import annotations

import importlib.util

MLFLOW_EXTRA = "pip install 'model-advisor[mlflow]'"


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, what: str, install: str = MLFLOW_EXTRA) -> None:
    """UsageError (exit 2, one line) when `module` is missing; `what` names the feature that needs it."""
    if not have(module):
        from advisor.errors import UsageError

        raise UsageError(f"{what} needs {module}, which this install lacks", hint=install)

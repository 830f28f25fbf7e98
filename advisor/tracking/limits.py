"""MLflow's size limits applied to values before they are logged (truncate, never fail)."""

from __future__ import annotations

import time

MAX_PARAM_VAL_LENGTH = 6000   # mlflow.utils.validation
MAX_TAG_VAL_LENGTH = 8000


def _clip(value, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def param(value) -> str:
    return _clip(value, MAX_PARAM_VAL_LENGTH)


def tag(value) -> str:
    return _clip(value, MAX_TAG_VAL_LENGTH)


def now_ms() -> int:
    return int(time.time() * 1000)

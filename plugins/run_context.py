"""Run-context provider: tags every run started by mlflow.start_run() with this machine's
static hardware inventory (advisor.gpu.*, advisor.cpu.*, advisor.ram_gb, advisor.hardware.fingerprint).

Off when ADVISOR_RUN_CONTEXT is 0/off/false/no. Detection runs once per process (no torch import)
and never raises: a failure yields a single advisor.error tag.
"""

from __future__ import annotations

import os

_OFF = {"0", "off", "false", "no"}
_cache: dict[str, str] | None = None


def enabled() -> bool:
    return os.environ.get("ADVISOR_RUN_CONTEXT", "1").strip().lower() not in _OFF


def hardware_tags() -> dict[str, str]:
    global _cache
    if _cache is None:
        try:
            from advisor.tracking.hardware_tags import local_inventory_tags

            _cache = local_inventory_tags()
        except Exception as exc:  # noqa: BLE001 - a plugin must never break start_run
            _cache = {"advisor.error": f"hardware detection failed: {type(exc).__name__}: {exc}"[:500]}
    return dict(_cache)


def _build():
    from mlflow.tracking.context.abstract_context import RunContextProvider

    class AdvisorRunContextProvider(RunContextProvider):
        def in_context(self):
            try:
                return enabled()
            except Exception:  # noqa: BLE001
                return False

        def tags(self):
            try:
                return hardware_tags()
            except Exception:  # noqa: BLE001
                return {}

    return AdvisorRunContextProvider


def __getattr__(name: str):
    if name == "AdvisorRunContextProvider":
        cls = globals()[name] = _build()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

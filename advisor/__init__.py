"""model-advisor: which language model to deploy on the hardware you have.

The Python API mirrors the CLI; heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "estimate": ("advisor.estimate.engine", "estimate"),
    "recommend": ("advisor.recommend.engine", "recommend"),
    "check": ("advisor.check.engine", "check"),
    "profile": ("advisor.hardware.profile", "detect_profile"),
    "get_catalog": ("advisor.catalog.loader", "get_catalog"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")

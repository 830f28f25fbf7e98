"""model-advisor: which language model to deploy on the hardware you have.

The Python API mirrors the CLI; heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

# estimate, recommend and check are subpackages whose modules are callable (advisor._callable).
_API = {
    "estimate": ("advisor.estimate", None),
    "recommend": ("advisor.recommend", None),
    "check": ("advisor.check", None),
    "profile": ("advisor.hardware.profile", "detect_profile"),
    "get_catalog": ("advisor.catalog.loader", "get_catalog"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")

"""model-advisor: which language model to deploy on the hardware you have.

The Python API (advisor/api.py) mirrors the CLI; heavy modules load on first use.
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"

from advisor.api import check, estimate, get_catalog, profile, recommend  # noqa: E402

__all__ = ["__version__", "check", "estimate", "get_catalog", "profile", "recommend"]

_API_NAMES = frozenset({"check", "estimate", "recommend"})


class _Package(types.ModuleType):  # noqa: D101
    """`import advisor.estimate.engine` binds the subpackage to `advisor.estimate`, which would replace
    the API function of the same name; the functions stay (the subpackages live on in sys.modules)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _API_NAMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

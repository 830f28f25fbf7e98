"""The Python API: the same functions and pydantic results as the CLI's --json.

    import advisor
    est = advisor.estimate("llama-3.1-8b", target="a10g-24gb", format="int8")
    rec = advisor.recommend("summarization", targets=["a10g-24gb"], max_latency_ms=3000)
    report = advisor.check("qwen2.5-3b", targets=["a10g-24gb"], task="summarization")

Type checkers and IDEs see the engine functions themselves (their signatures and docs). At run time each
name is a thin stand-in that imports its engine on first use, so `import advisor` (and `advisor --help`)
stays cheap; `inspect.signature` and `help()` show the engine's real signature.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any


class _Deferred:
    """A function that lives in a module imported on first use."""

    def __init__(self, module: str, name: str):
        self._module, self._name = module, name
        self.__name__ = self.__qualname__ = name
        self.__module__ = __name__

    def _target(self):
        return getattr(importlib.import_module(self._module), self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._target())

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._target().__doc__

    def __repr__(self) -> str:
        return f"<advisor API function {self._name} (from {self._module})>"


if TYPE_CHECKING:
    from advisor.catalog.loader import get_catalog as get_catalog
    from advisor.check.engine import check as check
    from advisor.estimate.engine import estimate as estimate
    from advisor.hardware.profile import detect_profile as profile
    from advisor.recommend.engine import recommend as recommend
else:
    estimate = _Deferred("advisor.estimate.engine", "estimate")
    recommend = _Deferred("advisor.recommend.engine", "recommend")
    check = _Deferred("advisor.check.engine", "check")
    profile = _Deferred("advisor.hardware.profile", "detect_profile")
    get_catalog = _Deferred("advisor.catalog.loader", "get_catalog")

__all__ = ["check", "estimate", "get_catalog", "profile", "recommend"]

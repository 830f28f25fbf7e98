"""The pre-deployment gate. `advisor.check(...)` is advisor.check.engine.check.

`advisor.check` names both this package and the API function: once the package is imported,
Python binds the attribute to the package, so the package itself is made callable.
"""

from __future__ import annotations

import sys
import types


def check(*args, **kwargs):
    """advisor.check.engine.check (imported lazily: no pydantic work at import time)."""
    from advisor.check.engine import check as _check

    return _check(*args, **kwargs)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return check(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

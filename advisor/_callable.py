"""Lets `advisor.estimate(...)` work although `advisor.estimate` is also a subpackage.

Once a subpackage is imported, Python binds its module to the parent's attribute, shadowing any
function of the same name; giving the module a __call__ keeps the documented API working.
"""

from __future__ import annotations

import importlib
import sys
import types


def make_module_callable(module_name: str, target_module: str, attr: str) -> None:
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(target_module), attr)(*args, **kwargs)

    module.__class__ = _CallableModule

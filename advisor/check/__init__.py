"""The pre-deployment gate: `advisor.check(...)` calls advisor.check.engine.check."""

from advisor._callable import make_module_callable

make_module_callable(__name__, "advisor.check.engine", "check")

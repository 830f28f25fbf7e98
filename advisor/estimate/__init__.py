"""Estimate: `advisor.estimate(...)` calls advisor.estimate.engine.estimate."""

from advisor._callable import make_module_callable

make_module_callable(__name__, "advisor.estimate.engine", "estimate")

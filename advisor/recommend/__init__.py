"""Recommend: `advisor.recommend(...)` calls advisor.recommend.engine.recommend."""

from advisor._callable import make_module_callable

make_module_callable(__name__, "advisor.recommend.engine", "recommend")

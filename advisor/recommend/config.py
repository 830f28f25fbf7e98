"""`--config advisor.yaml`: the same keys as the recommend flags, validated, with file:line errors."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from advisor.recommend.schema import Constraints
from advisor.yamlio import load_model


class RecommendConfig(Constraints):
    model_config = ConfigDict(extra="forbid")

    task: str | None = None
    targets: list[str] | None = None
    prompt_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    new_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    batch: int | None = Field(default=None, gt=0, le=100_000)
    runtime: str | None = Field(default=None, min_length=1, max_length=64)   # catalog/runtimes.yaml id or alias
    allow_unscored: bool | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1_000_000)   # closed-loop clients (--concurrency)


def load_config(path: str | Path) -> RecommendConfig:
    return load_model(path, RecommendConfig, what="a settings file (task, targets, max_latency_ms, ...)")

"""`--config advisor.yaml`: the same keys as the recommend flags, validated, with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from advisor.errors import CatalogError
from advisor.recommend.schema import Constraints
from advisor.yamlio import load_yaml, strip_lines


class RecommendConfig(Constraints):
    model_config = ConfigDict(extra="forbid")

    task: str | None = None
    targets: list[str] | None = None
    prompt_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    new_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    batch: int | None = Field(default=None, gt=0, le=100_000)
    runtime: str | None = Field(default=None, min_length=1, max_length=64)   # catalog/runtimes.yaml id or alias


def load_config(path: str | Path) -> RecommendConfig:
    doc = load_yaml(Path(path), with_lines=True)
    if doc is None:
        return RecommendConfig()
    if not isinstance(doc, dict):
        raise CatalogError(f"{path}: expected a mapping of settings (task, targets, max_latency_ms, ...)")
    lines = doc.get("__lines__", {})
    try:
        return RecommendConfig.model_validate(strip_lines(doc))
    except ValidationError as exc:
        try:  # rendering the errors walks the input, which can itself nest too deeply
            err = exc.errors(include_input=False)[0]
        except RecursionError:
            raise CatalogError(f"{path}: nested too deeply to be a settings file") from None
        field = ".".join(str(p) for p in err["loc"])
        line = lines.get(err["loc"][0]) if err["loc"] else None
        where = f"{path}:{line}" if line else str(path)
        raise CatalogError(f"{where}: field '{field}': {err['msg'].removeprefix('Value error, ')}") from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to be a settings file") from None

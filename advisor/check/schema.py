"""The check report's JSON schema (schema_version 1): one result per rule per target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CHECK_SCHEMA_VERSION = 1

# The names of the shared rule table's results (advisor.rules.table); a test keeps the two in step.
CheckName = Literal["fits-memory", "memory-headroom", "latency-p95", "ttft", "tokens-per-s", "license", "quality-proxy",
                    "params", "format", "tpot", "rps", "cost-per-hour"]
CHECK_NAMES: tuple[str, ...] = CheckName.__args__  # type: ignore[attr-defined]
# measured/calibrated/spec for estimator figures; catalog for the licence; proxy for the quality
# proxy; unknown when the model is not in the catalog.
CheckBasis = Literal["measured", "calibrated", "spec", "catalog", "proxy", "user", "unknown"]


class CheckResult(BaseModel):
    name: CheckName
    target: str
    # "unknown": the figure cannot be known (model not in the catalog, quality unscored) and the
    # policy does not require it; it does not fail the gate.
    status: Literal["pass", "fail", "unknown"]
    value: float | str | None = None
    limit: float | str | list[str] | None = None
    unit: str = ""
    basis: CheckBasis
    message: str                      # one line with the numbers, e.g. "2,345 ms <= 3,000 ms"

    @property
    def passed(self) -> bool:
        return self.status != "fail"


class TargetResult(BaseModel):
    target: str
    target_name: str
    status: Literal["pass", "fail"]
    memory_basis: str
    latency_basis: str
    runtime: str | None = None                                  # the runtime the figures model
    runtime_version: str | None = None
    figures: dict[str, float] = Field(default_factory=dict)   # the estimate's figures, for MLflow
    checks: list[CheckResult]
    notes: list[str] = Field(default_factory=list)


class ModelSource(BaseModel):
    kind: Literal["catalog", "path", "mlflow"]
    id: str                                   # catalog id, or the id given to an external model
    name: str
    in_catalog: bool                          # licence and benchmarks known
    config_path: str | None = None            # config.json the architecture came from
    uri: str | None = None                    # models:/NAME/VERSION as given
    registered_model: str | None = None
    version: str | None = None
    params_total: int

    @property
    def label(self) -> str:
        """What was checked, as a reader names it: the registered model and version when there is one
        (never the catalog id whose licence and scores it borrowed)."""
        return label_of(self.model_dump())


def label_of(model: dict) -> str:
    """ModelSource.label for a report read back as a dict."""
    if model.get("registered_model"):
        return f"{model['registered_model']} v{model.get('version')}"
    return str(model.get("id"))


def borrowed_from(model: dict) -> str | None:
    """The catalog entry a registered or local model took its licence and scores from, if any."""
    if model.get("kind") != "catalog" and model.get("in_catalog") and model.get("id"):
        return str(model["id"])
    return None


class CheckReport(BaseModel):
    schema_version: int = CHECK_SCHEMA_VERSION
    report_id: str                            # uuid; makes re-sending to MLflow idempotent
    created_at: str                           # ISO 8601 UTC
    advisor_version: str
    status: Literal["pass", "fail"]
    model: ModelSource
    task: str | None
    format: str
    prompt_tokens: int
    new_tokens: int
    batch: int
    policy: dict                              # the effective policy (file + flags + defaults)
    targets: list[TargetResult]
    failed: list[str] = Field(default_factory=list)   # "target:check" for every failed check
    notes: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def results(self) -> list[CheckResult]:
        return [c for t in self.targets for c in t.checks]

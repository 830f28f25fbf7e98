"""The gate's policy: a YAML file validated by pydantic, merged with CLI flags.

Precedence: CLI flags > per-target overrides in the file > the file's thresholds > defaults.
A threshold given as a flag applies to every target (it replaces per-target file values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advisor.errors import CatalogError
from advisor.rules.limits import DEFAULT_HEADROOM, LIMIT_KEYS, Limits
from advisor.yamlio import field_errors, load_model

THRESHOLD_KEYS = LIMIT_KEYS
DEFAULT_FORMAT = "bf16"
# Request shape when neither the policy, the flags nor a task give one (the estimator's defaults).
DEFAULT_PROMPT_TOKENS = 512
DEFAULT_NEW_TOKENS = 128


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Thresholds(Limits):
    """The numeric limits of advisor.rules.limits (one definition for check, recommend and config files)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TargetPolicy(Thresholds):
    """One target with optional overrides: `- a10g-24gb` or `- {id: a10g-24gb, max_latency_ms: 3000}`
    (or, as a mapping, `a10g-24gb: {max_latency_ms: 3000}`)."""

    id: str = Field(min_length=1)
    gpus: int | None = Field(default=None, ge=1, le=1024)

    def overrides(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in THRESHOLD_KEYS if getattr(self, k) is not None}


class RequestPolicy(_Strict):
    prompt_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    new_tokens: int | None = Field(default=None, gt=0, le=10_000_000)
    batch: int | None = Field(default=None, gt=0, le=100_000)


class MlflowPolicy(_Strict):
    # None: log only when a tracking URI is given (here, --tracking-uri or MLFLOW_TRACKING_URI), so a
    # gate never writes mlflow.db into the repository it checks; true: log (the embedded store if no URI).
    enabled: bool | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    set_alias_on_pass: str | None = Field(default=None, min_length=1)


class Policy(_Strict):
    model: str | None = Field(default=None, description="catalog id (licence, benchmarks)")
    model_path: str | None = Field(default=None, description="local config.json or model folder")
    model_uri: str | None = Field(default=None, description="models:/NAME/VERSION or models:/NAME@ALIAS")
    task: str | None = None
    format: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*$",
                               description="format id (catalog/formats.yaml)")
    runtime: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$",
                                description="serving runtime (catalog/runtimes.yaml id or alias); default per target")
    request: RequestPolicy = Field(default_factory=RequestPolicy)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    license: list[str] | None = Field(default=None, description="allow-list of licence ids")
    # Facts that must be known: a model outside the catalog has no licence or benchmarks, and
    # those checks report "unknown" (not a failure) unless listed here.
    require_known: list[Literal["license", "quality"]] = Field(default_factory=list)
    targets: list[TargetPolicy] = Field(default_factory=list)
    probe: bool = True
    gpu_hour_cost: float | None = Field(default=None, ge=0, le=1e7,
                                        description="USD per GPU-hour for the cost check (default: the target's price)")
    catalog: list[str] = Field(default_factory=list, description="extra catalog files")
    mlflow: MlflowPolicy = Field(default_factory=MlflowPolicy)

    @field_validator("targets", mode="before")
    @classmethod
    def _target_strings(cls, value):
        # "- a10g-24gb" is short for "- {id: a10g-24gb}"; a mapping {a10g-24gb: {max_latency_ms: 3000}}
        # is accepted too
        if isinstance(value, dict) and "id" not in value:
            value = [{"id": k, **(v if isinstance(v, dict) else {})} if v is None or isinstance(v, dict) else v
                     for k, v in value.items()]
        if isinstance(value, (str, dict)):
            value = [value]
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("license", "catalog", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("model_uri")
    @classmethod
    def _models_uri(cls, value):
        if value is not None:
            parse_model_uri(value)
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.model_path and self.model_uri:
            raise ValueError("give 'model_path' or 'model_uri', not both")
        ids = [t.id for t in self.targets]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"target listed twice: {', '.join(dup)}")
        return self

    def effective_thresholds(self, target: str) -> dict[str, float | None]:
        """The thresholds that apply on one target (global, then the target's overrides)."""
        out: dict[str, float | None] = self.thresholds.model_dump()
        for t in self.targets:
            if t.id == target:
                out.update(t.overrides())
        if out["memory_headroom"] is None:
            out["memory_headroom"] = DEFAULT_HEADROOM
        return out

    def gpus_for(self, target: str) -> int | None:
        return next((t.gpus for t in self.targets if t.id == target), None)

    def to_yaml(self) -> str:
        import yaml

        data = self.model_dump(mode="json", exclude_none=True)
        data["targets"] = [t["id"] if set(t) == {"id"} else t for t in data["targets"]]
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/NAME/VERSION -> (name, version, None); models:/NAME@ALIAS -> (name, None, alias)."""
    if not uri.startswith("models:/"):
        raise ValueError(f"'{uri}' is not a registry URI (expected models:/NAME/VERSION or models:/NAME@ALIAS)")
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in alias:
            return name, None, alias
    else:
        name, _, version = rest.rpartition("/")
        if name and version.isdigit():
            return name, version, None
    raise ValueError(f"'{uri}' is not models:/NAME/VERSION or models:/NAME@ALIAS")


def validation_problem(path: Path | str, raw: Any, exc: ValidationError) -> CatalogError:
    """A policy given as a dict (the Python API): the first error as for a file."""
    try:
        errors = field_errors(exc, raw, Policy)
    except RecursionError:
        return CatalogError(f"{path}: nested too deeply to be a policy")
    first = errors[0]
    text = f"{path}: field '{first.field}': {first.message}" if first.field else f"{path}: {first.message}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return CatalogError(text, hint=first.hint)


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file; model_path and catalog paths become relative to it."""
    path = Path(path)
    policy = load_model(path, Policy, what="a policy (model, targets, thresholds, ...)")
    base = path.resolve().parent
    update: dict[str, Any] = {}
    if policy.model_path and not Path(policy.model_path).is_absolute():
        update["model_path"] = str(base / policy.model_path)
    if policy.catalog:
        update["catalog"] = [p if Path(p).is_absolute() else str(base / p) for p in policy.catalog]
    return policy.model_copy(update=update)


def merge(policy: Policy | None, **flags: Any) -> Policy:
    """The policy with every flag that was given (not None, not empty) laid over it.

    Accepted flags: model, model_path, model_uri, task, format, prompt_tokens, new_tokens,
    batch, gpu_hour_cost, the threshold keys, license, require_known, targets, probe, catalog, tracking_uri,
    experiment, set_alias_on_pass, mlflow (bool).
    """
    data = (policy or Policy()).model_dump()
    given = {k: v for k, v in flags.items() if v is not None and v != () and v != []}
    unknown = set(given) - set(Policy.model_fields) - set(THRESHOLD_KEYS) - set(RequestPolicy.model_fields) - {
        "tracking_uri", "experiment", "set_alias_on_pass"}
    if unknown:
        raise TypeError(f"unknown policy keys: {', '.join(sorted(unknown))}")
    if "model_path" in given or "model_uri" in given:
        # the two are exclusive: the one given on the command line replaces the file's
        data["model_path"] = data["model_uri"] = None
    for key in ("model", "model_path", "model_uri", "task", "format", "runtime", "probe", "gpu_hour_cost"):
        if key in given:
            data[key] = given[key]
    for key in RequestPolicy.model_fields:
        if key in given:
            data["request"][key] = given[key]
    for key in THRESHOLD_KEYS:
        if key in given:
            data["thresholds"][key] = given[key]
            for t in data["targets"]:
                t[key] = None  # a flag beats per-target file values
    if "license" in given:
        data["license"] = list(given["license"])
    if "require_known" in given:
        data["require_known"] = sorted(set(data["require_known"]) | set(given["require_known"]))
    if "catalog" in given:
        data["catalog"] = list(data["catalog"]) + list(given["catalog"])
    if "targets" in given:
        # flags choose the targets; the file's overrides for those ids are kept
        by_id = {t["id"]: t for t in data["targets"]}
        data["targets"] = [by_id.get(t, {"id": t}) for t in given["targets"]]
    if given.get("mlflow") is False:
        data["mlflow"]["enabled"] = False
    elif given.get("mlflow") is True or "tracking_uri" in given:
        data["mlflow"]["enabled"] = True  # naming a server on the command line asks for logging
    for key in ("tracking_uri", "experiment", "set_alias_on_pass"):
        if key in given:
            data["mlflow"][key] = given[key]
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        fld = ".".join(str(p) for p in err["loc"])
        from advisor.errors import UsageError

        raise UsageError(f"option '{fld}': {err['msg'].removeprefix('Value error, ')}") from None

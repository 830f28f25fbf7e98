"""The gate's policy: a YAML file validated by pydantic, merged with CLI flags.

Precedence: CLI flags > per-target overrides in the file > the file's thresholds > defaults.
A threshold given as a flag applies to every target (it replaces per-target file values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advisor.errors import CatalogError, did_you_mean
from advisor.yamlio import line_of, load_yaml, strip_lines

THRESHOLD_KEYS = ("max_latency_ms", "max_ttft_ms", "min_tokens_per_s", "memory_headroom", "min_quality")
DEFAULT_HEADROOM = 0.10
DEFAULT_FORMAT = "bf16"
# Request shape when neither the policy, the flags nor a task give one (the estimator's defaults).
DEFAULT_PROMPT_TOKENS = 512
DEFAULT_NEW_TOKENS = 128


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Thresholds(_Strict):
    max_latency_ms: float | None = Field(default=None, gt=0, description="end-to-end p95 budget")
    max_ttft_ms: float | None = Field(default=None, gt=0)
    min_tokens_per_s: float | None = Field(default=None, gt=0)
    memory_headroom: float | None = Field(default=None, ge=0, lt=1,
                                          description="fraction of device memory kept free (default 0.10)")
    min_quality: float | None = Field(default=None, ge=0, le=100, description="task quality proxy, 0-100")


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
    request: RequestPolicy = Field(default_factory=RequestPolicy)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    license: list[str] | None = Field(default=None, description="allow-list of licence ids")
    # Facts that must be known: a model outside the catalog has no licence or benchmarks, and
    # those checks report "unknown" (not a failure) unless listed here.
    require_known: list[Literal["license", "quality"]] = Field(default_factory=list)
    targets: list[TargetPolicy] = Field(default_factory=list)
    probe: bool = True
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


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at the place an unknown key was found (for 'did you mean')."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        ann = getattr(info, "annotation", None)
        inner = getattr(ann, "__args__", (ann,))[0] if ann is not None else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    return list(model.model_fields)


def validation_problem(path: Path | str, raw: Any, exc: ValidationError) -> CatalogError:
    """The first validation error as 'file:line: field 'a.b': message', plus how many more."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err["loc"])
    line = line_of(raw, loc)
    fld = ".".join(str(p) for p in loc)
    msg = err["msg"].removeprefix("Value error, ")
    hint = None
    if err["type"] == "extra_forbidden" and loc:
        hint = did_you_mean(str(loc[-1]), _field_names(Policy, loc))
    where = f"{path}:{line}" if line else str(path)
    text = f"{where}: field '{fld}': {msg}" if fld else f"{where}: {msg}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return CatalogError(text, hint=hint)


MAX_VALUES = 10_000  # a policy is a few dozen values; YAML aliases can expand a small file enormously


def _too_big(obj: Any, limit: int = MAX_VALUES) -> bool:
    """True when the document holds more than `limit` values once aliases are expanded."""
    stack, seen = [obj], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file; model_path and catalog paths become relative to it."""
    path = Path(path)
    raw = load_yaml(path, with_lines=True)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: expected a mapping (model, targets, thresholds, ...)")
    if _too_big(raw):
        raise CatalogError(f"{path}: more than {MAX_VALUES:,} values (YAML aliases expanding?): not a policy")
    try:
        policy = Policy.model_validate(strip_lines(raw))
    except ValidationError as exc:
        try:  # rendering the errors walks the input, which can itself nest too deeply
            problem = validation_problem(path, raw, exc)
        except RecursionError:
            problem = CatalogError(f"{path}: nested too deeply to be a policy")
        raise problem from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to be a policy") from None
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
    batch, the threshold keys, license, require_known, targets, probe, catalog, tracking_uri,
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
    for key in ("model", "model_path", "model_uri", "task", "format", "probe"):
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

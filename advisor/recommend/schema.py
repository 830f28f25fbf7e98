"""The recommendation's JSON schema (schema_version 1), shared by the CLI, MLflow logging and check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from advisor.estimate.schema import Basis
from advisor.rules.limits import Limits

RECOMMENDATION_SCHEMA_VERSION = 1


class Constraints(Limits):
    """What the user asks of a deployment: the numeric limits (advisor.rules.limits) plus allow-lists.
    The same keys are accepted from --config advisor.yaml."""

    model_config = {"extra": "forbid"}

    license: list[str] | None = None              # allow-list (canonical ids after resolution)
    formats: list[str] | None = None              # format ids (catalog/formats.yaml)
    gpu_hour_cost: float | None = Field(default=None, ge=0, description="USD per device-hour")
    # Under a load: the pick is the cheapest deployment within this many quality-proxy points (about three
    # times the band within which proxies tie) of the best
    # one that meets every limit (a choice of this tool: 100 picks the cheapest outright).
    quality_tolerance: float = Field(default=10.0, ge=0, le=100)


class RequestShape(BaseModel):
    prompt_tokens: int = Field(gt=0, le=10_000_000)
    new_tokens: int = Field(gt=0, le=10_000_000)
    batch: int = Field(default=1, gt=0, le=100_000)


class Candidate(BaseModel):
    """One (model, format, target) combination with every figure and why it passed or not."""

    key: str                                     # "qwen2.5-3b:int8@a10g-24gb"
    model: str
    name: str
    tier: str
    format: str
    target: str
    runtime: str | None = None                   # catalog/runtimes.yaml id the figures model
    format_origin: str | None = None             # official | community or self-quantised
    params_total: int
    params_active: int | None = None
    license: str
    # None: never estimated (e.g. the request is longer than the model's context); `reasons` says why.
    verdict: Literal["fits", "fits-with-offload", "does-not-fit"] | None = None
    memory_bytes: int | None = None              # per-device need (peak share + overhead)
    memory_limit_bytes: int | None = None        # device memory minus headroom
    memory_reserved_fraction: float | None = None  # an engine's own reserve (1 - gpu_memory_utilization)
    memory_basis: Basis | None = None
    ttft_ms: float | None = None
    decode_ms_per_token: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p95_ms: float | None = None
    tokens_per_s: float | None = None
    latency_basis: Basis | None = None
    latency_bound: str | None = None
    latency_reliable: bool = True                # False: a measurement on this machine contradicted its calibration
    quality_proxy: float | None                  # the task quality PROXY (lower bound); None = unscored
    quality_proxy_upper: float | None = None     # the proxy if every missing score were the catalog's best
    quality_band_points: float = 0.0             # differences below this are ties
    quality_base: float | None = None            # before the format's documented loss
    quality_format_delta: float = 0.0
    quality_benchmarks: list[str] = Field(default_factory=list)   # the scores used, with their positions
    quality_missing: list[str] = Field(default_factory=list)
    quality_coverage: float = 0.0                # share of the task's weight with a real score
    quality_variant: str = "instruct"
    quality_reason: str | None = None            # why unscored
    cost_per_mtok_usd: float | None = None       # per million generated tokens (with a load: at that load)
    energy_kwh_per_mtok: float | None = None     # measured only
    # --- capacity at a load (recommend --rps / --concurrency; None without one). With a load, the latency
    # figures above (ttft_ms, decode_ms_per_token: p50; e2e_p50/p95_ms; tokens_per_s: the deployment's
    # total) are those of the planned layout at that load, from the simulation (advisor/capacity).
    tensor_parallel: int | None = None           # GPUs per replica
    replicas: int | None = None
    gpus_total: int | None = None                # GPUs rented (instance targets: whole instances)
    instances: int | None = None                 # instance targets: machines rented
    cost_per_hour_usd: float | None = None
    cost_basis: str | None = None                # catalog (dated price) | user (--gpu-hour-cost)
    max_rps_per_replica: float | None = None     # highest Poisson rate one replica sustains within the SLOs
    max_clients_per_replica: int | None = None   # closed loop: most clients one replica serves within the SLOs
    saturation_rps_per_replica: float | None = None   # one replica kept full
    rps_sustained: float | None = None           # replicas x max_rps_per_replica
    load_bound: str | None = None                # kv-pool | max-num-seqs | slo-ttft | slo-tpot | slo-e2e | does-not-fit
    step_bound: str | None = None                # the decode step at that load: compute | memory-bandwidth | ...
    bound_detail: str | None = None
    ttft_p95_ms: float | None = None
    tpot_p95_ms: float | None = None
    serving_layout: str | None = None            # "vLLM with TP 2, 3 replicas behind a load balancer (...)"
    serve_commands: list[str] = Field(default_factory=list)   # one vLLM command line per replica
    layouts: list[LayoutFigures] = Field(default_factory=list)   # every tensor-parallel degree tried
    capacity_note: str | None = None             # why it was not planned, or what the plan assumes
    passed: bool
    reasons: list[str] = Field(default_factory=list)      # why rejected, with numbers
    binding: list[str] = Field(default_factory=list)      # constraint keys that rejected it
    on_frontier: bool = False
    rank: int | None = None                      # 1 = first in the target's table (advisor.recommend.select.table_key)
    role: str | None = None                      # "pick", "pick, best large", "best small", "closest large", ...

    @property
    def estimated(self) -> bool:
        return self.e2e_p95_ms is not None and self.memory_bytes is not None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Literal["pass", "rejected", "not-estimated"]:
        """pass; rejected (with figures and reasons); not-estimated (no figures: `reasons` says why)."""
        if self.passed:
            return "pass"
        return "rejected" if self.estimated else "not-estimated"


class LayoutFigures(BaseModel):
    """One parallel layout of a candidate under load (advisor.capacity.plan.LayoutPlan)."""

    tensor_parallel: int
    fits: bool
    reason: str = ""
    max_load_per_replica: float | None = None    # req/s (or clients, closed loop)
    saturation_rps_per_replica: float | None = None
    replicas: int | None = None
    gpus_total: int | None = None
    instances: int | None = None
    cost_per_hour_usd: float | None = None
    cost_per_mtok_usd: float | None = None
    ttft_p95_ms: float | None = None
    tpot_p95_ms: float | None = None
    e2e_p95_ms: float | None = None
    bound: str | None = None
    simulations: int = 0


class LoadPlan(BaseModel):
    """The load recommend planned for and the answer across every target (recommend --rps / --concurrency)."""

    rps: float | None = None                     # Poisson arrivals per second
    concurrency: int | None = None               # closed-loop clients
    max_ttft_ms: float | None = None             # the SLOs, p95
    max_tpot_ms: float | None = None
    max_latency_ms: float | None = None
    method: str                                  # how the figures were made
    pick: str | None = None                      # candidate key: the cheapest that meets everything
    best_quality: str | None = None              # the highest quality proxy among those that meet everything
    verdict: str
    notes: list[str] = Field(default_factory=list)


class GenerationAdvice(BaseModel):
    temperature: float
    top_p: float
    max_new_tokens: int
    rationale: str


class TargetRecommendation(BaseModel):
    """The answer for one target (local machine or a named hardware target)."""

    target: str
    target_name: str
    device_summary: str                          # "1 x NVIDIA A10G (24 GB)"
    hardware_fingerprint: str | None = None
    runtime: str | None = None                   # the serving runtime modelled on this target
    runtime_version: str | None = None           # the version its constants assume
    status: Literal["ok", "no-candidate"]
    pick: Candidate | None = None
    small: Candidate | None = None
    large: Candidate | None = None
    frontier: list[str] = Field(default_factory=list)     # candidate keys
    verdict: str                                  # one sentence a manager understands
    closest_large: Candidate | None = None       # the large candidate the verdict weighs against the pick
    closest_misses: list[Candidate] = Field(default_factory=list)
    to_relax: list[str] = Field(default_factory=list)     # what to relax when nothing passes
    what_it_would_take: list[str] = Field(default_factory=list)  # for closest_large
    unscored_passing: int = 0                     # candidates that pass but have no quality proxy (not eligible)
    probing: str | None = None                    # what probing did for this target
                                                  # (advisor.recommend.engine.probing_status)
    warnings: list[str] = Field(default_factory=list)   # what the screen must say about these figures


class Recommendation(BaseModel):
    schema_version: int = RECOMMENDATION_SCHEMA_VERSION
    report_id: str                               # uuid; makes re-sending to MLflow idempotent
    created_at: str                              # ISO 8601 UTC
    advisor_version: str
    task: str
    task_description: str
    shape: RequestShape
    constraints: Constraints
    latency_budget_ms: float                     # effective end-to-end p95 budget
    quality_proxy: str                           # the task profile's proxy description
    catalog_version: str
    # the serving runtime the estimates model: one id, or "target=id, ..." when targets differ
    runtime: str = "transformers"
    targets: list[TargetRecommendation]
    candidates: list[Candidate]                  # per target, in table order (rank 1 first)
    generation: GenerationAdvice
    notes: list[str] = Field(default_factory=list)
    hardware: dict | None = None                 # HardwareProfile (model_dump) of the local machine, if used
    probes: list[dict] = Field(default_factory=list)   # probe results used (LatencyMeasurement / MeasuredRates)
    load: LoadPlan | None = None                 # recommend --rps / --concurrency

    @property
    def primary(self) -> TargetRecommendation:
        return self.targets[0]


Candidate.model_rebuild()

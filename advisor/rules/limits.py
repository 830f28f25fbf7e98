"""The numeric deployment limits, defined once.

recommend's Constraints, check's policy thresholds (and per-target overrides) and `--config` files all
inherit these fields; the rule table (advisor.rules.table) says how each one is checked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HEADROOM = 0.10


class Limits(BaseModel):
    """Every field is optional: None means "no limit" (memory_headroom: the default, 10%)."""

    model_config = ConfigDict(extra="forbid")

    max_latency_ms: float | None = Field(default=None, gt=0, description="end-to-end p95 budget, ms")
    max_ttft_ms: float | None = Field(default=None, gt=0, description="time to first token, ms")
    min_tokens_per_s: float | None = Field(default=None, gt=0, description="generated tokens per second")
    memory_headroom: float | None = Field(default=None, ge=0, lt=1,
                                          description="fraction of device memory kept free (default 0.10)")
    min_quality: float | None = Field(default=None, ge=0, le=100, description="task quality proxy, 0-100")
    max_params: float | None = Field(default=None, gt=0, description="largest model, total parameters")
    max_tpot_ms: float | None = Field(default=None, gt=0, description="time per output token (p95 under load), ms")
    min_rps: float | None = Field(default=None, gt=0, le=1e7,
                                  description="request rate to serve within the latency limits, req/s")
    max_cost_per_hour_usd: float | None = Field(default=None, gt=0, description="USD per hour of the deployment")


LIMIT_KEYS: tuple[str, ...] = tuple(Limits.model_fields)

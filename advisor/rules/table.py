"""The rule table: one declarative row per limit, and one evaluator that both recommend and check use.

A rule reads one figure of a candidate (model x format x target) and one limit, and returns a
RuleResult with its status, the numbers, a one-line explanation and the violation amount (how far past
the limit, as a fraction of it) that ranks the closest misses. Adding a limit is adding a Limits field
(advisor.rules.limits) and a row here; the CLI options (advisor.cli.common.threshold_options), the
policy thresholds and the config keys follow from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from advisor.rules.limits import DEFAULT_HEADROOM, Limits

Status = Literal["pass", "fail", "unknown"]


def secs(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def gb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB"


def _billions(n: float) -> str:
    return f"{n / 1e9:.1f}B"


@dataclass(frozen=True)
class Figures:
    """What the rules read for one candidate. None = not known (not estimated, unscored, not in the catalog)."""

    format: str
    memory_verdict: str | None = None            # fits | fits-with-offload | does-not-fit
    memory_bytes: float | None = None            # per-device need
    memory_available_bytes: float | None = None  # what one device offers
    memory_basis: str = "spec"
    e2e_p95_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    latency_basis: str = "spec"
    quality: float | None = None                 # the task quality PROXY
    params_total: float | None = None
    license: str | None = None
    # A serving engine that preallocates a fraction of the device (vLLM gpu_memory_utilization): the
    # memory it offers already keeps the rest free, so the default headroom is not taken a second time.
    memory_reserved_fraction: float | None = None
    tpot_ms: float | None = None                 # time per output token (p95 at the planned load)
    rps: float | None = None                     # request rate the planned replicas sustain within the limits
    cost_per_hour_usd: float | None = None       # the planned deployment, USD per hour
    cost_basis: str = "catalog"                  # catalog (the target's dated price) | user (--gpu-hour-cost)


@dataclass(frozen=True)
class RuleResult:
    rule: str                 # the limit key that decides it ("max_latency_ms", "memory", "license", ...)
    check: str                # its name in check reports and JUnit ("latency-p95", "fits-memory", ...)
    status: Status
    value: float | str | None
    limit: float | str | list[str] | None
    unit: str
    basis: str
    message: str              # one line with the numbers
    violation: float = 0.0    # relative amount past the limit; 0 when it passes

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@dataclass(frozen=True)
class ThresholdRule:
    """A figure that must stay at most (max) or at least (min) a limit."""

    key: str                                      # the Limits field
    check: str                                    # report name
    figure: str                                   # the Figures attribute it reads
    bound: Literal["max", "min"]
    unit: str
    basis: Callable[[Figures], str]
    describe: Callable[[float], str]              # renders one value with its unit
    what: str                                     # "p95 end-to-end", "time to first token", ...
    unknown_means: str = "not estimated"
    cli_help: str = ""
    option: str = field(default="")               # CLI option name; derived from key when empty

    @property
    def option_name(self) -> str:
        return self.option or "--" + self.key.replace("_", "-")


def _latency_basis(f: Figures) -> str:
    return f.latency_basis


THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule("max_latency_ms", "latency-p95", "e2e_p95_ms", "max", "ms", _latency_basis, secs,
                  "p95 end-to-end", cli_help="End-to-end p95 budget in ms (default: the task's budget)."),
    ThresholdRule("max_ttft_ms", "ttft", "ttft_ms", "max", "ms", _latency_basis, secs, "time to first token",
                  cli_help="Time-to-first-token limit in ms."),
    ThresholdRule("min_tokens_per_s", "tokens-per-s", "tokens_per_s", "min", "tokens/s", _latency_basis,
                  lambda v: f"{v:,.1f} tokens/s", "throughput", cli_help="Minimum generated tokens per second."),
    ThresholdRule("min_quality", "quality-proxy", "quality", "min", "points", lambda f: "proxy",
                  lambda v: f"{v:.1f}", "quality proxy",
                  unknown_means="unscored: too few published scores for this task's quality proxy",
                  cli_help="Minimum task quality PROXY (0-100)."),
    ThresholdRule("max_params", "params", "params_total", "max", "parameters", lambda f: "catalog", _billions,
                  "parameters", cli_help="Largest model to consider, total parameters (e.g. 8e9 or 8b)."),
    ThresholdRule("max_tpot_ms", "tpot", "tpot_ms", "max", "ms", _latency_basis, lambda v: f"{v:,.1f} ms",
                  "time per output token", cli_help="Time-per-output-token limit in ms (p95 at the --rps load)."),
    ThresholdRule("min_rps", "rps", "rps", "min", "req/s", _latency_basis, lambda v: f"{v:,.2f} req/s",
                  "sustained request rate", option="--rps",
                  unknown_means="no capacity plan: the request rate was not simulated",
                  cli_help="Requests per second to serve (Poisson arrivals): plans the replicas, GPUs and cost "
                           "that sustain it within the latency limits."),
    ThresholdRule("max_cost_per_hour_usd", "cost-per-hour", "cost_per_hour_usd", "max", "USD/h",
                  lambda f: f.cost_basis, lambda v: f"${v:,.2f}/h", "cost",
                  unknown_means="not costed: the target has no price in the catalog (pass --gpu-hour-cost)",
                  cli_help="Most USD per hour the deployment may cost (at the --rps load)."),
)
RULES_BY_KEY = {r.key: r for r in THRESHOLD_RULES}


def threshold_result(rule: ThresholdRule, fig: Figures, limit: float, *, required: bool,
                     suffix: str = "") -> RuleResult:
    value = getattr(fig, rule.figure)
    basis = rule.basis(fig)
    if value is None:
        status: Status = "fail" if required else "unknown"
        tail = "" if required else f" (not a failure; require '{rule.check}' to fail)"
        return RuleResult(rule.key, rule.check, status, None, limit, rule.unit, "unknown",
                          f"{rule.unknown_means}{tail}", 1.0 if required else 0.0)
    ok = value <= limit if rule.bound == "max" else value >= limit
    if rule.bound == "max":
        word = "within" if ok else "exceeds"
        violation = 0.0 if ok else value / limit - 1
    else:
        word = "meets" if ok else "is below"
        violation = 0.0 if ok else limit / max(value, 1e-9) - 1
    noun = "the" + (" budget" if rule.key == "max_latency_ms" else " limit" if rule.bound == "max" else " minimum")
    msg = f"{rule.what} {rule.describe(value)} {word} {noun} of {rule.describe(limit)}"
    if rule.unit in ("ms", "tokens/s", "req/s") and basis:
        msg += f" ({basis})"
    return RuleResult(rule.key, rule.check, "pass" if ok else "fail", value, limit, rule.unit, basis,
                      msg + suffix, violation)


def memory_results(fig: Figures, headroom: float) -> list[RuleResult]:
    """fits-memory (the estimator's verdict) and memory-headroom (need <= memory less the headroom)."""
    need, have = fig.memory_bytes, fig.memory_available_bytes
    if need is None or have is None or fig.memory_verdict is None:
        return [RuleResult("memory", "fits-memory", "fail", None, None, "GB", "unknown",
                           "memory not estimated", 1.0)]
    limit = have * (1 - headroom)
    kept = f", {headroom:.0%} headroom kept free" if headroom else ""
    if not headroom and fig.memory_reserved_fraction:
        kept = f" (the engine uses {1 - fig.memory_reserved_fraction:.0%} of the device and keeps the rest free)"
    fits = fig.memory_verdict == "fits"
    if fig.memory_verdict == "fits-with-offload":
        fit_msg, fit_violation = (f"fits only with CPU offload of weights (slow): "
                                  f"needs {gb(need)} per device of {gb(have)}", 0.5)
    elif fits:
        fit_msg, fit_violation = f"needs {gb(need)} per device of {gb(have)}", 0.0
    else:
        fit_msg, fit_violation = f"needs {gb(need)} per device, the device offers {gb(have)}", need / max(have, 1) - 1
    head_ok = fits and need <= limit
    head_msg = (f"needs {gb(need)} per device, the limit is {gb(limit)}{kept}")
    return [
        RuleResult("memory", "fits-memory", "pass" if fits else "fail", round(need / 1e9, 3), round(have / 1e9, 3),
                   "GB", fig.memory_basis, fit_msg, fit_violation),
        RuleResult("memory", "memory-headroom", "pass" if head_ok else "fail", round(need / 1e9, 3),
                   round(limit / 1e9, 3), "GB", fig.memory_basis, head_msg,
                   0.0 if head_ok else max(need / max(limit, 1) - 1, fit_violation)),
    ]


def licence_result(fig: Figures, allow: list[str], licences: dict, *, required: bool) -> RuleResult:
    from advisor.rules.licences import matches

    if fig.license is None:
        status: Status = "fail" if required else "unknown"
        tail = "" if required else " (not a failure; require 'license' to fail)"
        return RuleResult("license", "license", status, None, allow, "", "unknown",
                          "licence unknown: the model is not in the catalog" + tail, 1.0 if required else 0.0)
    ok = matches(fig.license, allow, licences)
    return RuleResult("license", "license", "pass" if ok else "fail", fig.license, allow, "", "catalog",
                      f"licence {fig.license} {'is' if ok else 'is not'} in the allow-list ({', '.join(allow)})",
                      0.0 if ok else 1.0)


def format_result(fig: Figures, allow: list[str]) -> RuleResult:
    ok = fig.format in allow
    return RuleResult("formats", "format", "pass" if ok else "fail", fig.format, allow, "", "request",
                      f"format {fig.format} {'allowed' if ok else 'excluded'} (allowed: {', '.join(allow)})",
                      0.0 if ok else 1.0)


@dataclass(frozen=True)
class RuleSet:
    """The limits that apply to one target, resolved: what evaluate() checks."""

    limits: Limits
    license: list[str] | None = None      # canonical ids
    formats: list[str] | None = None
    require_known: frozenset[str] = frozenset()
    latency_note: str = ""                # e.g. " (the summarization task's default budget)"

    @property
    def headroom(self) -> float:
        h = self.limits.memory_headroom
        return DEFAULT_HEADROOM if h is None else h

    def headroom_for(self, fig: Figures) -> float:
        """The user's headroom when they set one; else the default, unless an engine already keeps memory free."""
        if self.limits.memory_headroom is None and fig.memory_reserved_fraction:
            return 0.0
        return self.headroom


def evaluate(fig: Figures, rules: RuleSet, licences: dict | None = None) -> list[RuleResult]:
    """Every rule that applies, in a fixed order; recommend keeps the failures, check shows them all."""
    out: list[RuleResult] = []
    if rules.formats is not None:
        out.append(format_result(fig, rules.formats))
    params = RULES_BY_KEY["max_params"]
    if rules.limits.max_params is not None:
        out.append(threshold_result(params, fig, rules.limits.max_params, required=True))
    if rules.license is not None:
        out.append(licence_result(fig, rules.license, licences or {}, required="license" in rules.require_known))
    out.extend(memory_results(fig, rules.headroom_for(fig)))
    for rule in THRESHOLD_RULES:
        if rule.key == "max_params":
            continue
        limit = getattr(rules.limits, rule.key)
        if limit is None:
            continue
        required = rule.key != "min_quality" or "quality" in rules.require_known
        out.append(threshold_result(rule, fig, limit, required=required,
                                    suffix=rules.latency_note if rule.key == "max_latency_ms" else ""))
    return out


def failures(results: list[RuleResult]) -> list[RuleResult]:
    """The failed results, one per rule key (memory's two checks count once: the worse)."""
    seen: dict[str, RuleResult] = {}
    for r in results:
        if r.failed and (r.rule not in seen or r.violation > seen[r.rule].violation):
            seen[r.rule] = r
    return [r for r in results if r.failed and seen.get(r.rule) is r]



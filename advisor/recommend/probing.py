"""Probe results for recommend on the local machine, within one time budget.

Phase 1 (prepare): the hardware microprobes (cached per machine) calibrate every candidate's
formulas -> `calibrated`. Phase 2 (refine): with the budget left, the architecture probe times the
candidates that matter most (the small and large leaders) -> `measured`. Cached measurements are
used for any candidate that has one. Without torch nothing runs and the notes say so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from advisor.errors import AdvisorError, one_line
from advisor.recommend.schema import Candidate

# How many candidates phase 2 may time in one run, and per size tier, best first.
REFINE_MAX = 3
PER_TIER_MAX = 2
# Candidates failing only on latency by less than this factor may still be measured (and flip).
LATENCY_SLACK = 1.5
# A truncated-model probe costs roughly this share of one full prefill (few layers, repeats).
PROBE_PREFILL_SHARE = 0.5
MIN_PROBE_S = 5.0
# A measurement further than this from the same candidate's calibrated figure (as a fraction) means the
# calibration does not describe this machine right now: calibrated figures are marked unreliable.
CONTRADICTION = 0.30
# Default probing budget of one recommend run: cold runs must stay under a minute on a 2-core CPU.
DEFAULT_BUDGET_S = 40.0
# Share of the budget the hardware microprobes may take.
MICRO_SHARE = 0.3


class LocalProbes:
    def __init__(self, *, enabled: bool, budget_s: float | None, refresh: bool,
                 progress: Callable[[str, int, int], None] | None, catalog=None, catalog_paths=()):
        self.catalog = catalog
        self.catalog_paths = tuple(catalog_paths)
        self.enabled = enabled
        self.budget_s = budget_s
        self.refresh = refresh
        self.progress = progress
        self.rates = None
        self.notes: list[str] = []
        self._used: list[dict] = []
        self._measured: dict[str, Any] = {}
        self.contradictions: list[tuple[str, float]] = []
        self.allow_unscored = False
        self._deadline = None

    def _api(self):
        try:
            from advisor.probe import api
        except ImportError as exc:  # the probe package itself failed to import
            self.notes.append(f"probes unavailable ({exc}); latency is spec-based")
            self.enabled = False
            return None
        return api

    def _left(self) -> float | None:
        if self._deadline is None:
            return None
        import time

        return max(0.0, self._deadline - time.monotonic())

    def prepare(self) -> None:
        if not self.enabled:
            return
        api = self._api()
        if api is None:
            return
        if not api.torch_available():
            from advisor.errors import INSTALL_HINT

            self.notes.append(f"torch is not installed: probes skipped, latency is spec-based ({INSTALL_HINT})")
            self.enabled = False
            return
        import time

        from advisor.probe.base import ProbeError

        budget = self.budget_s if self.budget_s is not None else DEFAULT_BUDGET_S
        self._deadline = time.monotonic() + budget
        cached = None if self.refresh else api.microprobe_rates(run=False)
        try:
            rates = cached or api.microprobe_rates(budget_s=min(api.MICRO_MAX_S, budget * MICRO_SHARE),
                                                   refresh=self.refresh, progress=self._relay("microprobes"))
        except ProbeError as exc:
            self.notes.append(f"microprobes stopped ({exc}); latency is spec-based")
            self.enabled = False
            return
        if rates is None:
            self.enabled = False
            return
        self.rates = rates
        self._used.append({"kind": "microprobes", "from_cache": cached is not None, **rates.model_dump()})
        self.notes.append("latency calibrated with microprobes measured on this machine"
                          + (" (cached)" if cached is not None else ""))

    def _relay(self, label: str):
        if self.progress is None:
            return None

        def cb(what: str, fraction: float) -> None:
            self.progress(f"{label}: {what}", int(max(0.0, min(1.0, fraction)) * 100), 100)

        return cb

    def measurement_for(self, entry, fmt: str, shape) -> Any:
        """A cached measurement for this exact model, format and shape, if any (never runs a probe)."""
        if not self.enabled:
            return None
        key = f"{entry.id}:{fmt}"
        if key in self._measured:
            return self._measured[key]
        api = self._api()
        if api is None or fmt not in api.PROBED_FORMATS:
            return None
        res = api.local_calibration(entry, fmt, shape.batch, shape.prompt_tokens, shape.new_tokens,
                                    run=False, refresh=False)
        self._measured[key] = res.measurement
        if res.measurement is not None:
            self._used.append({"kind": "architecture-probe", "from_cache": True, **res.measurement.model_dump()})
        return res.measurement

    def refine(self, cands: list[Candidate], estimates: dict, failfn, latency_budget_ms: float) -> list[Candidate]:
        """Time the candidates the decision hinges on, best first, while the budget lasts.

        Eligible: the leaders of each tier that pass, or fail only on latency by less than
        LATENCY_SLACK x the budget (a measurement could flip them). A candidate whose calibrated
        prefill alone would eat the budget left is not started. When a measurement disqualifies
        a leader, the next one in that tier is tried.
        """
        if not self.enabled or self.rates is None:
            return cands
        api = self._api()
        if api is None:
            return cands
        from advisor.recommend.select import rank_key

        latency_keys = {"max_latency_ms", "max_ttft_ms", "min_tokens_per_s"}
        out = {c.key: c for c in cands}
        probed = 0
        for tier in ("small", "large"):
            queue = [c for c in cands if c.tier == tier and c.verdict == "fits"
                     and c.format in api.PROBED_FORMATS and set(c.binding) <= latency_keys
                     and c.e2e_p95_ms <= LATENCY_SLACK * latency_budget_ms
                     and (self.allow_unscored or c.quality_proxy is not None)]  # the others are never picked
            queue.sort(key=rank_key)  # the order the pick is chosen in
            # Cached failures count like fresh measurements, wherever they now rank, so that a warm run
            # stops where the cold one did: their measured figures move them down the queue, and counting
            # them only when reached let a warm run time a candidate the cold run never did.
            cached_failures = sum(1 for c in queue if c.latency_basis == "measured" and not c.passed)
            probed += cached_failures
            tried_in_tier = cached_failures
            for c in queue:
                if c.latency_basis == "measured":  # measured already (cache): confirmed or ruled out
                    if c.passed:
                        break
                    continue
                left = self._left()
                if (probed >= REFINE_MAX or tried_in_tier >= PER_TIER_MAX
                        or (left is not None and left < MIN_PROBE_S)):
                    break
                if left is not None and c.ttft_ms / 1000 * PROBE_PREFILL_SHARE > left:
                    self.notes.append(f"{c.model} {c.format}: not probed (its prefill alone would exceed the "
                                      f"{left:.0f} s of probe budget left); figures stay calibrated")
                    continue
                probed += 1
                tried_in_tier += 1
                updated = self.measure(c, estimates, failfn, left)
                if updated is None:
                    continue
                out[c.key] = updated
                if updated.passed:
                    break  # this tier's leader is confirmed by measurement
        return [out[c.key] for c in cands]

    def measure(self, c: Candidate, estimates: dict, failfn, left: float | None = None) -> Candidate | None:
        """Time one candidate with the architecture probe; None when it could not be measured.
        A measurement more than CONTRADICTION away from the candidate's calibrated figure is recorded."""
        api = self._api()
        est = estimates.get(f"{c.model}:{c.format}")
        entry = self.catalog.models.get(c.model) if self.catalog is not None else None
        if api is None or est is None or entry is None or c.format not in api.PROBED_FORMATS:
            return None
        from advisor.estimate.engine import estimate

        left = self._left() if left is None else left
        try:
            res = api.local_calibration(entry, c.format, est.batch, est.prompt_tokens, est.new_tokens,
                                        budget_s=left, refresh=self.refresh, run=True,
                                        progress=self._relay(f"probing {c.model} {c.format}"))
        except AdvisorError:
            raise
        except Exception as exc:  # a probe that fails (transformers cannot run a layer) costs one measurement,
            if os.environ.get("ADVISOR_DEBUG"):   # not the recommendation
                raise
            self.notes.append(f"{c.model} {c.format}: probe failed ({one_line(exc, 160)}); "
                              f"figures stay {c.latency_basis}")
            return None
        if res.measurement is None:
            if res.skipped:
                self.notes.append(f"{c.model} {c.format}: not measured ({res.skipped})")
            return None
        self.notes.extend(n for n in res.notes if n not in self.notes)
        self._used.append({"kind": "architecture-probe", "from_cache": res.from_cache,
                           **res.measurement.model_dump()})
        new = estimate(entry, target="local", format=c.format, batch=est.batch, prompt_tokens=est.prompt_tokens,
                       new_tokens=est.new_tokens, runtime=est.runtime, gpus=est.gpus,
                       catalog_paths=self.catalog_paths, probe=False, rates=self.rates, measurement=res.measurement)
        if c.latency_basis == "calibrated":
            self.compare(f"{c.model} {c.format}", c.e2e_p95_ms, new.latency.e2e_p95_ms)
        return self._with_latency(c, new.latency, failfn)

    def compare(self, label: str, calibrated_ms: float | None, measured_ms: float | None) -> None:
        """Record a measurement that is more than CONTRADICTION away from its calibrated figure."""
        if not calibrated_ms or not measured_ms:
            return
        ratio = measured_ms / calibrated_ms
        if (ratio > 1 + CONTRADICTION or ratio < 1 / (1 + CONTRADICTION)) and \
                label not in {k for k, _ in self.contradictions}:
            self.contradictions.append((label, ratio))

    @property
    def active(self) -> bool:
        return self.enabled and self.rates is not None

    @staticmethod
    def _with_latency(c: Candidate, lat, failfn) -> Candidate:
        fig = c.model_dump()
        fig.update(ttft_ms=lat.ttft_ms, decode_ms_per_token=lat.decode_ms_per_token, e2e_p50_ms=lat.e2e_ms,
                   e2e_p95_ms=lat.e2e_p95_ms, tokens_per_s=lat.tokens_per_s, latency_basis=lat.source,
                   latency_bound=lat.bound)
        if lat.joules_per_token is not None:
            fig["energy_kwh_per_mtok"] = lat.joules_per_token * 1e6 / 3.6e6
        fails = failfn(Candidate(**fig))
        fig.update(passed=not fails, reasons=[r.message for r in fails], binding=[r.rule for r in fails])
        return Candidate(**fig)

    def used(self) -> list[dict]:
        return list(self._used)

"""Probe results for recommend on the local machine, within one time budget.

Phase 1 (prepare): the hardware microprobes (cached per machine) calibrate every candidate's
formulas -> `calibrated`. Phase 2 (refine): with the budget left, the architecture probe times the
candidates that matter most (the small and large leaders) -> `measured`. Cached measurements are
used for any candidate that has one. Without torch nothing runs and the notes say so.
"""

from __future__ import annotations

from typing import Any, Callable

from advisor.recommend.schema import Candidate

# How many leading candidates phase 2 may time, best first.
REFINE_MAX = 2


class LocalProbes:
    def __init__(self, *, enabled: bool, budget_s: float | None, refresh: bool,
                 progress: Callable[[str, int, int], None] | None):
        self.enabled = enabled
        self.budget_s = budget_s
        self.refresh = refresh
        self.progress = progress
        self.rates = None
        self.notes: list[str] = []
        self._used: list[dict] = []
        self._measured: dict[str, Any] = {}
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
        import time

        budget = self.budget_s if self.budget_s is not None else api.DEFAULT_RECOMMEND_BUDGET_S
        self._deadline = time.monotonic() + budget
        res = api.microprobe_rates(budget_s=budget, refresh=self.refresh, progress=self._relay("microprobes"))
        if res.rates is not None:
            self.rates = res.rates
            self._used.append({"kind": "microprobes", "from_cache": res.from_cache, **res.rates.model_dump()})
            self.notes.append("latency calibrated with microprobes measured on this machine"
                              + (" (cached)" if res.from_cache else ""))
        if res.skipped:
            self.notes.append(f"probes skipped: {res.skipped}; latency is spec-based")
            self.enabled = res.rates is not None

    def _relay(self, label: str):
        if self.progress is None:
            return None

        def cb(what: str, fraction: float) -> None:
            self.progress(f"{label}: {what}", int(fraction * 100), 100)

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

    def refine(self, cands: list[Candidate], estimates: dict, failfn) -> list[Candidate]:
        """Time the leading small and large candidates with the budget left; re-judge them."""
        if not self.enabled or self.rates is None:
            return cands
        api = self._api()
        if api is None:
            return cands
        from advisor.estimate.engine import estimate

        leaders: list[Candidate] = []
        for tier in ("small", "large"):
            fitting = [c for c in cands if c.tier == tier and c.verdict == "fits" and c.latency_basis != "measured"
                       and c.format in api.PROBED_FORMATS and not (set(c.binding) - {"max_latency_ms", "max_ttft_ms", "min_tokens_per_s"})]
            fitting.sort(key=lambda c: (-(c.quality if c.quality is not None else -1), c.e2e_p95_ms, c.key))
            leaders += fitting[:1]
        out = {c.key: c for c in cands}
        for c in leaders[:REFINE_MAX]:
            left = self._left()
            if left is not None and left < 5:
                self.notes.append("probe budget spent: remaining candidates keep calibrated figures")
                break
            est = estimates.get(f"{c.model}:{c.format}")
            if est is None:
                continue
            from advisor.catalog.loader import get_catalog

            entry = get_catalog().models.get(c.model)
            if entry is None:
                continue
            res = api.local_calibration(entry, c.format, est.batch, est.prompt_tokens, est.new_tokens,
                                        budget_s=left, refresh=self.refresh, run=True,
                                        progress=self._relay(f"probing {c.model} {c.format}"))
            if res.measurement is None:
                if res.skipped:
                    self.notes.append(f"{c.model} {c.format}: not measured ({res.skipped})")
                continue
            self._used.append({"kind": "architecture-probe", "from_cache": res.from_cache, **res.measurement.model_dump()})
            new = estimate(c.model, target="local", format=c.format, batch=est.batch, prompt_tokens=est.prompt_tokens,
                           new_tokens=est.new_tokens, runtime=est.runtime, gpus=est.gpus, probe=False,
                           rates=self.rates, measurement=res.measurement)
            lat = new.latency
            fig = c.model_dump()
            fig.update(ttft_ms=lat.ttft_ms, decode_ms_per_token=lat.decode_ms_per_token, e2e_p50_ms=lat.e2e_ms,
                       e2e_p95_ms=lat.e2e_p95_ms, tokens_per_s=lat.tokens_per_s, latency_basis=lat.source,
                       latency_bound=lat.bound)
            if lat.joules_per_token is not None:
                fig["energy_kwh_per_mtok"] = lat.joules_per_token * 1e6 / 3.6e6
            fails = failfn(Candidate(**fig))
            fig.update(passed=not fails, reasons=[f[1] for f in fails], binding=[f[0] for f in fails])
            out[c.key] = Candidate(**fig)
        return [out[c.key] for c in cands]

    def used(self) -> list[dict]:
        return list(self._used)

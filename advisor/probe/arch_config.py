"""The architecture probe's tuning knobs, in one model.

Each default is the value the probe shipped with; the comment says what it rests on. Most were
set on one noisy 2-core CPU VM (the "Probe accuracy" section of README.md has the runs), several
on a single observation, and none was checked on a GPU. Change them through
ProbeConfig(arch_probe=ArchProbeConfig(...)); the defaults keep the probe's behaviour.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ArchProbeConfig(BaseModel):
    """How the architecture probe samples (see advisor.probe.sampling for the rules they feed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Depth of the truncated model. On the CPU, 2 layers kept the probe at 0.08-0.17 of the full
    # model's wall time (README, 2026-11-22); 4 on GPUs is untested (no GPU was lent).
    cpu_layers: int = Field(default=2, ge=1)
    gpu_layers: int = Field(default=4, ge=1)
    # The discarded warm-up prefill. The first timings of a process are slow (findings.md section 8:
    # 37-57 ms per step for one layer on an H100 before warming up); 32 tokens as the full-model
    # reference (measure_transformers.py, benchmarks/probe_accuracy.py) warms up.
    warmup_prompt_tokens: int = Field(default=32, ge=1)
    # Prefill samples of the fixed plan when ProbeConfig.prefill_repeats is None. Body-only repeats
    # cost a few layers; the pooled median wants several. On the interleaved check the earlier
    # method (mean-based, 3 prefills) was 10.9% off on prefill, the median method with 5 at most
    # 5.0% (README); the two changes were not measured apart.
    prefill_repeats: int = Field(default=5, ge=1)
    # The prefill LM head is timed on the first prefill and in extra rounds, up to this many times,
    # and the median stands for every prefill sample: a single slow head timing (scaled by
    # vocab / slice) once put a 0.5B model's prefill 37% high (commit b38dce4).
    head_prefill_samples: int = Field(default=3, ge=1)
    # Decode steps timed before the budget may stop the probe, and the least the first decode block
    # holds: two samples still give a spread (a design rule, not a measurement).
    min_decode_samples: int = Field(default=2, ge=1)
    # The size rule: extra rounds until sampling has lasted this share of one predicted request
    # (prompt + new tokens), so that larger models average over more of the machine's wander where
    # that is cheap next to the request. Set with the probe/full wall-time goal of 0.2 in mind; the
    # runs of 2026-11-22 gave ratios of 0.08-0.17 with it.
    sample_share: float = Field(default=0.25, ge=0)
    # ... and at least this many seconds (optimum-benchmark's "at least `duration` seconds"). 0 keeps
    # the shipped behaviour, where only the share counts; not measured with other values.
    min_sample_s: float = Field(default=0.0, ge=0)
    # ... and never beyond this: a slow model (bf16 on a small CPU) would otherwise spend a
    # recommend's whole probe budget on one candidate's extra rounds (commit bc91a2f). Also caps the
    # steadying rule's extra time.
    sample_max_s: float = Field(default=2.0, ge=0)
    # At most this many extra rounds in all (size and steadying rules together): a bound, no
    # measurement behind the number.
    max_extra_rounds: int = Field(default=15, ge=0)
    # Decode steps in one extra round, after its prefill: keeps decode and prefill samples alternating
    # (the speed wanders, a fixed workload's 0.5 s windows differ by up to 26%: README).
    round_decode_steps: int = Field(default=2, ge=1)
    # The steadying rule: when the medians of the earlier and later half of the samples differ by
    # more than this share, the machine's speed moved while sampling. Set by hand, above the
    # 4.9-6.5% (sd) a fixed 2-layer workload moved between 0.5 s windows on the CI VM (README).
    unsteady_tolerance: float = Field(default=0.08, gt=0)
    # ... judged only from this many samples on (two per half).
    unsteady_min_samples: int = Field(default=4, ge=2)
    # ... and then extra rounds for up to this share more of the time sampled so far: 0.4 pushed
    # gpt2's probe/full wall-time ratio to 0.22, over the 0.2 goal (commit 65b5673).
    unsteady_extra: float = Field(default=0.25, ge=0)
    # Budget margins, not measured: a prefill repeat starts only with this many times one prefill's
    # time left, an extra round only with more than this many times one round's.
    prefill_budget_margin: float = Field(default=1.2, ge=1)
    round_budget_margin: float = Field(default=1.5, ge=1)

    @model_validator(mode="after")
    def _floor_under_cap(self) -> ArchProbeConfig:
        if self.min_sample_s > self.sample_max_s:
            raise ValueError(f"min_sample_s ({self.min_sample_s}) is above sample_max_s ({self.sample_max_s})")
        return self

    def layers_for(self, device: str) -> int:
        return self.cpu_layers if device == "cpu" else self.gpu_layers


__all__ = ["ArchProbeConfig"]

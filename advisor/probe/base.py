"""Shared pieces of the probes: their configuration, the time budget and the outcomes they signal.

Every probe (microprobes, architecture probe, real-model probe) takes a ProbeConfig, checks its
Budget between phases and raises DoesNotFit / BudgetExhausted instead of crashing; the orchestrator
in advisor.probe.api turns those into a CalibrationResult with a clear reason.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from advisor.errors import INSTALL_HINT
from advisor.probe.arch_config import ArchProbeConfig

DEFAULT_BUDGET_S = 60.0
DEFAULT_MEMORY_FRACTION = 0.5
PROBED_FORMATS: tuple[str, ...] = ("fp32", "bf16", "fp16")
TORCH_MISSING = f"torch is not installed ({INSTALL_HINT})"

Progress = Callable[[str, float], None]   # (what is happening, fraction done 0..1)


class ProbeConfig(BaseModel):
    """How a probe may use the machine."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = None                     # None: cuda:0 when available, else cpu
    budget_s: float = Field(default=DEFAULT_BUDGET_S, gt=0)
    memory_fraction: float = Field(default=DEFAULT_MEMORY_FRACTION, gt=0, le=0.95)
    decode_steps: int = Field(default=10, ge=2)   # timed decode steps of the architecture probe
    # prefill samples; None: each probe's own default (the real-model probe 3, the median of 3 survives
    # one outlier; the architecture probe arch_probe.prefill_repeats, 5)
    prefill_repeats: int | None = Field(default=None, ge=1)
    warmup_steps: int = Field(default=2, ge=0)    # untimed decode steps before the timed ones
    arch_probe: ArchProbeConfig = Field(default_factory=ArchProbeConfig)   # the architecture probe's knobs


class ProbeError(Exception):
    """A probe could not produce a figure; the message says why in one line."""


class BudgetExhausted(ProbeError):
    """The time budget ran out before the minimum set of timings was taken."""


class DoesNotFit(ProbeError):
    """The probe would not fit in (the allowed share of) free device memory, or hit out-of-memory."""


class Budget:
    """A deadline shared by the phases of one probe run."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.perf_counter):
        self.seconds = seconds
        self._clock = clock
        self.start = clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start

    @property
    def left(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed

    def exhausted(self, reserve_s: float = 0.0) -> bool:
        return self.left <= reserve_s

    def check(self, what: str) -> None:
        if self.exhausted():
            raise BudgetExhausted(f"budget exhausted before {what} (budget {self.seconds:.3g} s, "
                                  f"{self.elapsed:.1f} s spent)")

    def sub(self, share: float) -> Budget:
        """A budget for one phase: `share` of what is left (the parent deadline still applies)."""
        if self.seconds is None:
            return Budget(None, self._clock)
        return Budget(max(0.0, self.left * share), self._clock)


def report(progress: Progress | None, what: str, fraction: float) -> None:
    if progress is not None:
        try:
            progress(what, min(1.0, max(0.0, fraction)))
        except Exception:  # a broken progress display must never stop a measurement
            pass


class Probe(ABC):
    """One kind of measurement on the local device."""

    name: str = "probe"

    def __init__(self, config: ProbeConfig | None = None, progress: Progress | None = None):
        self.config = config or ProbeConfig()
        self.progress = progress

    @abstractmethod
    def run(self, budget: Budget) -> Any:
        """Measure; raise DoesNotFit or BudgetExhausted when nothing usable was measured."""

    def measure_safely(self, measure: Callable[[Budget, dict], Any], budget: Budget, device: str, what: str) -> Any:
        """Run measure(budget, state) so that out-of-memory becomes DoesNotFit and, whatever happens,
        the probe's objects (kept in `state`) are dropped and the device is freed."""
        import traceback

        from advisor.probe.safety import free_device, is_oom, weak_refs

        state: dict = {}
        try:
            return measure(budget, state)
        except Exception as exc:
            if is_oom(exc):
                # the failed frames (and the closures they run) hold the probe's tensors: drop them so the
                # memory goes now, not when the caller drops the exception
                traceback.clear_frames(exc.__traceback__)
                exc.__traceback__ = None
                raise DoesNotFit(f"out of memory while {what} on {device}") from None
            raise
        finally:
            self.release(state)
            watch = weak_refs(state.values())
            state.clear()
            free_device(device, watch)

    def release(self, state: dict) -> None:  # noqa: B027 - an optional hook; most probes attach nothing
        """Undo what measuring attached to live objects (hooks) before they are dropped."""

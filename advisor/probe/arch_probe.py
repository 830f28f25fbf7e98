"""Architecture probe: time a truncated copy of a model (random weights) and extrapolate to full depth.

Method (see /work/shared/reference/findings.md section 8 for why):
  * the decoder is built with a few layers only and a tiny vocabulary; the LM head is built on its
    own at full vocabulary size and timed on the real hidden states, every step;
  * every decoder layer, and the gap between two layers, is timed inside each forward (hooks: host
    clock, plus CUDA events on GPUs, the larger of the two counts);
  * a warm-up prefill and decode steps are discarded first;
  * each timed sample is extrapolated on its own: its truncated forward + head, plus (L - depth) x
    the typical cost (median over all samples) of a later layer and its gap; the extrapolated
    samples give p50/p95/spread. A stall in a sample is counted once, as in the full model.

The parts: arch_timing (torch: the truncated model, timed), sampling (the pure policy: how many
samples), arch_sampler (runs the policy on the model), extrapolate (pure: samples -> full depth),
arch_config (the knobs). This module builds them, runs them within the probe's guards and turns
the samples into a LatencyMeasurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel

from advisor.catalog.schema import Architecture
from advisor.estimate.schema import LatencyMeasurement, Spread
from advisor.probe.base import Budget, BudgetExhausted, DoesNotFit, Probe, ProbeConfig, Progress, report
from advisor.probe.extrapolate import ComponentTimes
from advisor.probe.layer_mix import layer_mix, probe_depth
from advisor.probe.safety import dtype_bytes, ensure_fits


class ArchProbeDetail(BaseModel):
    depth: int
    full_depth: int
    backend: str                      # "transformers" or "built-in"
    prefill: ComponentTimes
    decode: ComponentTimes
    decode_power_w: float | None = None
    wall_s: float


def probe_memory_bytes(arch: Architecture, depth: int, fmt: str, batch: int, prompt_tokens: int,
                       steps: int) -> int:
    """What the probe allocates at most: truncated weights, the head, KV cache, prefill logits and activations."""
    from advisor.catalog.params import param_breakdown
    from advisor.probe.build import PREFILL_HEAD_COLUMNS

    b = dtype_bytes(fmt)
    pb = param_breakdown(arch)
    cols = arch.vocab_size if arch.vocab_size <= 1.5 * PREFILL_HEAD_COLUMNS else PREFILL_HEAD_COLUMNS
    weights = (pb.per_layer * depth + arch.vocab_size * arch.hidden_size) * b
    # the decode cache and, while a prefill repeat runs between decode blocks, that prefill's cache
    kv = depth * 2 * batch * (2 * prompt_tokens + steps + 8) * arch.kv_heads * arch.head_size * b
    logits = batch * prompt_tokens * cols * max(b, 4) * 2   # the head's slice of logits and a soft-cap copy
    acts = batch * prompt_tokens * (3 * arch.ffn_size + 4 * arch.hidden_size) * b * 2
    attn = batch * arch.num_attention_heads * prompt_tokens * prompt_tokens * b  # math SDPA fallback
    return int(weights + kv + logits + acts + attn)


class ArchProbe(Probe):
    name = "architecture-probe"

    def __init__(self, model_id: str, arch: Architecture, fmt: str, batch: int, prompt_tokens: int, *,
                 device: str, config: ProbeConfig | None = None, progress: Progress | None = None,
                 depth: int | None = None, prefer: str = "transformers", new_tokens: int = 32,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(config, progress)
        self.model_id, self.arch, self.fmt = model_id, arch, fmt
        self.new_tokens = new_tokens
        self.batch, self.prompt_tokens, self.device = batch, prompt_tokens, device
        self.tuning = self.config.arch_probe
        self.depth = probe_depth(arch, min(arch.num_hidden_layers, depth or self.tuning.layers_for(device)))
        self.prefer = prefer
        self.clock = clock
        self.detail: ArchProbeDetail | None = None

    def run(self, budget: Budget) -> LatencyMeasurement:
        cfg = self.config
        need = probe_memory_bytes(self.arch, self.depth, self.fmt, self.batch, self.prompt_tokens,
                                  cfg.decode_steps + cfg.warmup_steps)
        ensure_fits(need, self.device, cfg.memory_fraction, f"probing {self.model_id} ({self.depth} layers)")
        budget.check(f"building {self.model_id}")
        return self.measure_safely(self._measure, budget, self.device, f"probing {self.model_id}")

    def release(self, state: dict) -> None:
        model = state.get("model")
        if model is not None:
            model.remove_hooks()

    def _measure(self, budget: Budget, st: dict) -> LatencyMeasurement:
        import torch

        from advisor.probe.arch_sampler import Plan, Sampler
        from advisor.probe.arch_timing import TruncatedModel
        from advisor.probe.energy import EnergyMeter
        from advisor.probe.machine_load import busy_note

        t_start = self.clock()
        cfg, dev, L = self.config, self.device, self.arch.num_hidden_layers
        P, B = self.prompt_tokens, self.batch
        report(self.progress, f"building {self.model_id} ({self.depth} of {L} layers)", 0.02)
        st["model"] = model = TruncatedModel(self.arch, self.depth, self.fmt, dev, batch=B, prompt_tokens=P,
                                             min_positions=P + cfg.decode_steps + cfg.warmup_steps + 16,
                                             prefer=self.prefer, clock=self.clock)
        st["module"], st["head"] = model.body.module, model.head   # watched: freed after the probe
        notes = list(model.body.notes) + busy_note()
        # The built-in block is one Llama layer whatever the kind: only transformers' layers differ by kind.
        mix = layer_mix(self.arch, self.depth) if model.backend == "transformers" else None
        if mix is not None:
            notes.append(f"hybrid: timed layers {', '.join(mix.timed)}; the full model's {mix.describe()} "
                         "layers are each priced at their kind's timed cost")
        plan = Plan(full_depth=L, prompt_tokens=P, new_tokens=self.new_tokens, decode_steps=cfg.decode_steps,
                    prefill_repeats=cfg.prefill_repeats or self.tuning.prefill_repeats,
                    warmup_steps=cfg.warmup_steps, mix=mix)
        with torch.inference_mode():
            run = Sampler(model, plan, self.tuning, budget, clock=self.clock, progress=self.progress,
                          meter=EnergyMeter(dev)).run()
        report(self.progress, "done", 1.0)
        notes += run.notes

        pre, dec = run.prefill, run.decode
        pre_pred, dec_pred = pre.predictions(L), dec.predictions(L)
        dec_spread = Spread.from_values(dec_pred)
        power = run.joules / run.decode_s if run.joules is not None and run.decode_s > 0 else None
        jpt = power * dec_spread.p50 / 1000 / B if power is not None else None
        if jpt is not None:
            notes.append(f"J/token = measured power during the truncated decode ({power:.1f} W) x predicted step time")
        head = model.head
        notes.append(f"{model.backend} decoder, {self.depth} of {L} layers timed layer by layer "
                     f"({len(pre)} prefill, {len(dec)} decode samples); LM head "
                     f"({self.arch.vocab_size} vocab) timed on its own"
                     + (f" (prefill: on {head.prefill_columns} of its rows, x{head.prefill_scale:.2f})"
                        if head.prefill_scale > 1 else "") + "; extrapolated per sample")
        # On a shared machine the speed wanders over seconds (on the 2-core CI VM, the same probe run ten
        # times in a row gave prefill p50s from 536 to 783 ms while each run's own p95 was within 1.4% of its p50):
        # the spread says how steady the samples were, not how far another moment can be.
        notes.append(f"p50/p95 are over samples taken within {run.sampled_s:.2g} s; the machine's speed at other "
                     "moments is not in that spread (--refresh measures again)")
        self.detail = ArchProbeDetail(depth=self.depth, full_depth=L, backend=model.backend,
                                      prefill=pre.components(), decode=dec.components(),
                                      decode_power_w=power, wall_s=self.clock() - t_start)
        return LatencyMeasurement(
            model=self.model_id, format=self.fmt, device=dev, prompt_tokens=P, batch=B,
            prefill_ms=Spread.from_values(pre_pred), decode_ms_per_token=dec_spread,
            peak_bytes=None, joules_per_token=jpt, method="architecture-probe",
            layers_timed=[self.depth], notes=notes)


__all__ = ["ArchProbe", "ArchProbeDetail", "BudgetExhausted", "ComponentTimes", "DoesNotFit", "probe_memory_bytes"]

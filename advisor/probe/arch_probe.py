"""Architecture probe: time a truncated copy of a model (random weights) and extrapolate to full depth.

Method (see /work/shared/reference/findings.md section 8 for why):
  * the decoder is built with a few layers only and a tiny vocabulary; the LM head is built on its
    own at full vocabulary size and timed on the real hidden states, every step;
  * every decoder layer is timed inside each forward (hooks: host clock, plus CUDA events on GPUs,
    a layer costs the larger of the two), so one forward gives `depth` per-layer samples and the
    fixed part (embeddings, masks, rotary, final norm) as `forward - sum(layers)`;
  * a warm-up prefill and decode steps are discarded first;
  * each timed sample is extrapolated on its own: fixed + L x mean(layer) + head, and the
    extrapolated samples give p50/p95/spread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from advisor.catalog.schema import Architecture
from advisor.estimate.schema import LatencyMeasurement, Spread
from advisor.probe.base import Budget, BudgetExhausted, DoesNotFit, Probe, ProbeConfig, Progress, report
from advisor.probe.safety import dtype_bytes, ensure_fits
from advisor.probe.timing import sync


class ComponentTimes(BaseModel):
    """Medians (ms) of the parts the extrapolation adds up; for one prefill or one decode step."""

    fixed_ms: float = Field(description="embeddings, masks, rotary, final norm: forward minus its layers")
    layer_ms: float = Field(description="one decoder layer (median over layers and samples)")
    lm_head_ms: float = Field(description="LM head (+ argmax for decode) at full vocabulary, timed on its own")
    layer_samples: int
    samples: int


class ArchProbeDetail(BaseModel):
    depth: int
    full_depth: int
    backend: str                      # "transformers" or "built-in"
    prefill: ComponentTimes
    decode: ComponentTimes
    decode_power_w: float | None = None
    wall_s: float


@dataclass
class _Samples:
    fixed: list[float] = field(default_factory=list)
    layers: list[list[float]] = field(default_factory=list)
    head: list[float] = field(default_factory=list)

    def add(self, total_ms: float, layer_ms: list[float], head_ms: float) -> None:
        self.fixed.append(max(0.0, total_ms - sum(layer_ms)))
        self.layers.append(layer_ms)
        self.head.append(head_ms)

    def predictions(self, full_depth: int) -> list[float]:
        return [f + full_depth * (sum(ls) / len(ls)) + h for f, ls, h in zip(self.fixed, self.layers, self.head)]

    def components(self) -> ComponentTimes:
        import statistics

        flat = [x for ls in self.layers for x in ls]
        return ComponentTimes(fixed_ms=statistics.median(self.fixed), layer_ms=statistics.median(flat),
                              lm_head_ms=statistics.median(self.head), layer_samples=len(flat),
                              samples=len(self.fixed))


class LayerClock:
    """Per-layer times of the last forward. Host clock on CPU; on CUDA also events (no sync inside)."""

    def __init__(self, layers: list, device: str):
        import torch

        self.cuda = device.startswith("cuda")
        self._host: list[list[float]] = [[0.0, 0.0] for _ in layers]
        self._events = ([[torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)]
                         for _ in layers] if self.cuda else None)
        self._handles = []
        for i, layer in enumerate(layers):
            self._handles.append(layer.register_forward_pre_hook(self._pre(i)))
            self._handles.append(layer.register_forward_hook(self._post(i)))

    def _pre(self, i):
        def hook(_module, _args):
            if self._events is not None:
                self._events[i][0].record()
            self._host[i][0] = time.perf_counter()
        return hook

    def _post(self, i):
        def hook(_module, _args, _out):
            self._host[i][1] = time.perf_counter()
            if self._events is not None:
                self._events[i][1].record()
        return hook

    def layer_ms(self) -> list[float]:
        """Call after the forward (and after a device sync on CUDA)."""
        host = [1000.0 * (b - a) for a, b in self._host]
        if self._events is None:
            return host
        return [max(h, ev[0].elapsed_time(ev[1])) for h, ev in zip(host, self._events)]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def probe_memory_bytes(arch: Architecture, depth: int, fmt: str, batch: int, prompt_tokens: int,
                       steps: int) -> int:
    """What the probe allocates at most: truncated weights, the head, KV cache, prefill logits and activations."""
    from advisor.catalog.params import param_breakdown

    from advisor.probe.build import PREFILL_HEAD_COLUMNS

    b = dtype_bytes(fmt)
    pb = param_breakdown(arch)
    cols = arch.vocab_size if arch.vocab_size <= 1.5 * PREFILL_HEAD_COLUMNS else PREFILL_HEAD_COLUMNS
    weights = (pb.per_layer * depth + arch.vocab_size * arch.hidden_size) * b
    kv = depth * 2 * batch * (prompt_tokens + steps + 8) * arch.kv_heads * arch.head_size * b
    logits = batch * prompt_tokens * cols * max(b, 4) * 2   # the head's slice of logits and a soft-cap copy
    acts = batch * prompt_tokens * (3 * arch.ffn_size + 4 * arch.hidden_size) * b * 2
    attn = batch * arch.num_attention_heads * prompt_tokens * prompt_tokens * b  # math SDPA fallback
    return int(weights + kv + logits + acts + attn)


HEAD_PREFILL_SAMPLES = 2


def cpu_pressure(path: str = "/proc/pressure/cpu") -> float | None:
    """Share of the last 10 s (percent) in which some task waited for a CPU (Linux PSI), or None."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("some "):
                    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                    return float(fields["avg10"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def busy_note() -> list[str]:
    """A note when other processes compete for the CPU: timings on a busy machine come out slow."""
    import os

    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        load, cores = 0.0, os.cpu_count() or 1
    psi = cpu_pressure()
    if load > 0.75 * cores + 1 or (psi is not None and psi > 40):
        why = f"load average {load:.1f} on {cores} cores" + (f", CPU pressure {psi:.0f}%" if psi is not None else "")
        return [f"the machine was busy ({why}): timings may be inflated; re-run with --refresh when it is idle"]
    return []


class ArchProbe(Probe):
    name = "architecture-probe"

    def __init__(self, model_id: str, arch: Architecture, fmt: str, batch: int, prompt_tokens: int, *,
                 device: str, config: ProbeConfig | None = None, progress: Progress | None = None,
                 depth: int | None = None, prefer: str = "transformers"):
        super().__init__(config, progress)
        self.model_id, self.arch, self.fmt = model_id, arch, fmt
        self.batch, self.prompt_tokens, self.device = batch, prompt_tokens, device
        self.depth = min(arch.num_hidden_layers, depth or (2 if device == "cpu" else 4))
        self.prefer = prefer
        self.detail: ArchProbeDetail | None = None

    def run(self, budget: Budget) -> LatencyMeasurement:
        cfg = self.config
        need = probe_memory_bytes(self.arch, self.depth, self.fmt, self.batch, self.prompt_tokens,
                                  cfg.decode_steps + cfg.warmup_steps)
        ensure_fits(need, self.device, cfg.memory_fraction, f"probing {self.model_id} ({self.depth} layers)")
        budget.check(f"building {self.model_id}")
        return self.measure_safely(self._measure, budget, self.device, f"probing {self.model_id}")

    def release(self, state: dict) -> None:
        clock = state.pop("clock", None)
        if clock is not None:
            clock.remove()  # the layer hooks hold references to the model

    def _measure(self, budget: Budget, st: dict) -> LatencyMeasurement:
        import torch

        from advisor.probe.build import SMALL_VOCAB, LMHead, build_body
        from advisor.probe.energy import EnergyMeter

        t_start = time.perf_counter()
        cfg, dev, L = self.config, self.device, self.arch.num_hidden_layers
        P, B = self.prompt_tokens, self.batch
        report(self.progress, f"building {self.model_id} ({self.depth} of {L} layers)", 0.02)
        st["body"] = body = build_body(self.arch, self.depth, self.fmt, dev,
                                       min_positions=P + cfg.decode_steps + cfg.warmup_steps + 16,
                                       prefer=self.prefer)
        st["head"] = head = LMHead(self.arch, self.fmt, dev)
        st["clock"] = clock = LayerClock(body.layers, dev)
        gen = torch.Generator(device="cpu").manual_seed(0)
        ids = torch.randint(0, SMALL_VOCAB, (B, P), generator=gen).to(dev)
        notes = list(body.notes) + busy_note()

        def prefill(n_tokens: int, with_head: bool = True):
            sync(dev)
            t0 = time.perf_counter()
            hidden, cache = body.forward(ids[:, :n_tokens], None)
            sync(dev)
            t1 = time.perf_counter()
            if not with_head:
                return 1000 * (t1 - t0), None, cache, ids[:, -1:]
            logits = head.prefill_call(hidden)
            sync(dev)
            t2 = time.perf_counter()
            nxt = logits[:, -1:].argmax(-1) % SMALL_VOCAB
            return 1000 * (t1 - t0), 1000 * (t2 - t1) * head.prefill_scale, cache, nxt

        def step(tok, cache):
            sync(dev)
            t0 = time.perf_counter()
            hidden, cache = body.forward(tok, cache)
            sync(dev)
            t1 = time.perf_counter()
            nxt = head(hidden[:, -1:]).argmax(-1) % SMALL_VOCAB
            sync(dev)
            t2 = time.perf_counter()
            return 1000 * (t1 - t0), 1000 * (t2 - t1), cache, nxt

        pre, dec = _Samples(), _Samples()
        with torch.inference_mode():
            # First timings of a process (and of a model) are slow: a short prompt is run and discarded,
            # as the full-model measurement does; decode is warmed again at its real context below.
            budget.check("the warm-up")
            report(self.progress, "warm-up", 0.05)
            prefill(min(P, 32))
            budget.check("the first prefill")
            report(self.progress, f"prefill {P} tokens", 0.1)
            base_ms, head_ms, cache, tok = prefill(P)
            pre.add(base_ms, clock.layer_ms(), head_ms)
            for _ in range(cfg.warmup_steps):
                _, _, cache, tok = step(tok, cache)
            meter = EnergyMeter(dev)
            meter.start()
            t_dec = time.perf_counter()
            for i in range(cfg.decode_steps):
                if i >= 2 and budget.exhausted():
                    notes.append(f"stopped at the time budget after {i} of {cfg.decode_steps} decode steps")
                    break
                if i < 2:
                    budget.check("two decode steps were timed")
                base_ms, head_ms, cache, tok = step(tok, cache)
                dec.add(base_ms, clock.layer_ms(), head_ms)
                report(self.progress, "decode steps", 0.2 + 0.4 * (i + 1) / cfg.decode_steps)
            dec_s = time.perf_counter() - t_dec
            joules = meter.stop()
            del cache
            one_prefill_s = (sum(pre.fixed) + sum(map(sum, pre.layers)) + sum(pre.head)) / 1000
            repeats = cfg.prefill_repeats or 3
            for r in range(1, repeats):
                if budget.left < one_prefill_s * 1.2:
                    notes.append(f"stopped at the time budget after {r} of {repeats} prefill repeats")
                    break
                report(self.progress, f"prefill {P} tokens", 0.6 + 0.4 * r / repeats)
                # The head is one large GEMM with little spread: timed twice, its mean reused after that.
                timed_head = r < HEAD_PREFILL_SAMPLES
                base_ms, head_ms, cache, _ = prefill(P, with_head=timed_head)
                pre.add(base_ms, clock.layer_ms(), head_ms if timed_head else sum(pre.head) / len(pre.head))
                del cache
        report(self.progress, "done", 1.0)

        pre_pred, dec_pred = pre.predictions(L), dec.predictions(L)
        dec_spread = Spread.from_values(dec_pred)
        power = joules / dec_s if joules is not None and dec_s > 0 else None
        jpt = power * dec_spread.p50 / 1000 / B if power is not None else None
        if jpt is not None:
            notes.append(f"J/token = measured power during the truncated decode ({power:.1f} W) x predicted step time")
        notes.append(f"{body.backend} decoder, {self.depth} of {L} layers timed layer by layer "
                     f"({len(pre.fixed)} prefill, {len(dec.fixed)} decode samples); LM head "
                     f"({self.arch.vocab_size} vocab) timed on its own"
                     + (f" (prefill: on {head.prefill_columns} of its rows, x{head.prefill_scale:.2f})"
                        if head.prefill_scale > 1 else "") + "; extrapolated per sample")
        self.detail = ArchProbeDetail(depth=self.depth, full_depth=L, backend=body.backend,
                                      prefill=pre.components(), decode=dec.components(),
                                      decode_power_w=power, wall_s=time.perf_counter() - t_start)
        return LatencyMeasurement(
            model=self.model_id, format=self.fmt, device=dev, prompt_tokens=P, batch=B,
            prefill_ms=Spread.from_values(pre_pred), decode_ms_per_token=dec_spread,
            peak_bytes=None, joules_per_token=jpt, method="architecture-probe",
            layers_timed=[self.depth], notes=notes)


__all__ = ["ArchProbe", "ArchProbeDetail", "BudgetExhausted", "DoesNotFit", "probe_memory_bytes"]

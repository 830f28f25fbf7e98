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
"""

from __future__ import annotations

import statistics
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

    fixed_ms: float = Field(description="embeddings, masks, rotary, final norm: forward minus its layers and gaps")
    layer_ms: float = Field(description="one decoder layer after the first (median over those layers and samples)")
    first_layer_ms: float | None = Field(default=None, description="the first decoder layer (median over samples)")
    gap_ms: float = Field(default=0.0, description="host time between two layers (median)")
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
    """Timed forwards of the truncated decoder: total, per-layer durations, gaps between layers, head."""

    totals: list[float] = field(default_factory=list)
    layers: list[list[float]] = field(default_factory=list)
    gaps: list[list[float]] = field(default_factory=list)
    head: list[float] = field(default_factory=list)

    def add(self, total_ms: float, layer_ms: list[float], head_ms: float, gap_ms: list[float] | None = None) -> None:
        self.totals.append(total_ms)
        self.layers.append(list(layer_ms))
        self.gaps.append(list(gap_ms or []))
        self.head.append(head_ms)

    def _later_layers(self) -> list[float]:
        # The first layer of a step runs colder than the ones after it (on this CPU's decode: 1.75 ms for
        # layer 0, 1.57 for layer 1, about 1.5 deeper in a 30-layer model); the layers added by the
        # extrapolation are later layers, so they are priced from layers 1.. when those were timed.
        later = [x for ls in self.layers for x in ls[1:]]
        return later or [x for ls in self.layers for x in ls]

    def typical_layer_ms(self) -> float:
        return statistics.median(self._later_layers())

    def typical_gap_ms(self) -> float:
        flat = [x for gs in self.gaps for x in gs]
        return statistics.median(flat) if flat else 0.0

    def predictions(self, full_depth: int) -> list[float]:
        """One full-depth prediction per sample: that sample's truncated forward and head, plus the layers
        it lacks at the typical cost of a later layer and of the gap before it.

        The typical costs are medians over every sample, so a stall in one timed layer is counted once,
        as it would have cost the full model, not multiplied by L / depth (interference from other
        processes steals time additively; scaling each sample's own mean by L turned one 30 ms stall
        into 500 ms).
        """
        extra = self.typical_layer_ms() + self.typical_gap_ms()
        return [t + h + (full_depth - len(ls)) * extra for t, ls, h in zip(self.totals, self.layers, self.head)]

    def components(self) -> ComponentTimes:
        fixed = [max(0.0, t - sum(ls) - sum(gs)) for t, ls, gs in zip(self.totals, self.layers, self.gaps)]
        first = [ls[0] for ls in self.layers if len(ls) > 1]
        return ComponentTimes(fixed_ms=statistics.median(fixed), layer_ms=self.typical_layer_ms(),
                              first_layer_ms=statistics.median(first) if first else None,
                              gap_ms=self.typical_gap_ms(), lm_head_ms=statistics.median(self.head),
                              layer_samples=sum(map(len, self.layers)), samples=len(self.totals))


class LayerClock:
    """Per-layer times of the last forward, and the gaps between layers. Host clock on CPU; on CUDA
    also events (no sync inside), and a layer or gap costs the larger of the two."""

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

    def gap_ms(self) -> list[float]:
        """From the end of each layer to the start of the next (the decoder's own per-layer work)."""
        host = [1000.0 * (self._host[i + 1][0] - self._host[i][1]) for i in range(len(self._host) - 1)]
        if self._events is None:
            return host
        ev = self._events
        return [max(h, ev[i][1].elapsed_time(ev[i + 1][0])) for i, h in enumerate(host)]

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
    # the decode cache and, while a prefill repeat runs between decode blocks, that prefill's cache
    kv = depth * 2 * batch * (2 * prompt_tokens + steps + 8) * arch.kv_heads * arch.head_size * b
    logits = batch * prompt_tokens * cols * max(b, 4) * 2   # the head's slice of logits and a soft-cap copy
    acts = batch * prompt_tokens * (3 * arch.ffn_size + 4 * arch.hidden_size) * b * 2
    attn = batch * arch.num_attention_heads * prompt_tokens * prompt_tokens * b  # math SDPA fallback
    return int(weights + kv + logits + acts + attn)


# The prefill LM head is one large GEMM (on a small model, a third of the probe's time): timed on the
# first prefill, and again in extra rounds up to HEAD_PREFILL_SAMPLES times; the median of those
# figures stands for the head in every prefill sample (one slow head timing, scaled by vocab / slice,
# once put a 0.5B model's prefill 37% high).
HEAD_PREFILL_SAMPLES = 3
# Body-only prefill repeats are cheap (a few layers): the pooled median wants several.
ARCH_PREFILL_REPEATS = 5
# Sampling goes on until it has taken this share of one predicted request (see ArchProbe._measure),
# in at most MAX_EXTRA_ROUNDS extra rounds of one prefill and two decode steps.
SAMPLE_SHARE = 0.25
MAX_EXTRA_ROUNDS = 15
# ... and never beyond this much sampling time: a slow model (bf16 on a small CPU) would otherwise spend
# a recommend's whole probe budget on extra rounds of one candidate.
SAMPLE_MAX_S = 2.0
# Halves of the samples more than UNSTEADY apart get extra rounds, for up to UNSTEADY_EXTRA of the time
# sampled so far.
UNSTEADY = 0.08
UNSTEADY_EXTRA = 0.25


def unsteady(predictions: list[float], tolerance: float | None = None) -> bool:
    """Whether the earlier and the later half of a probe's samples disagree (medians differ by more
    than `tolerance`, by default UNSTEADY as it is at call time): the machine's speed moved while it
    was sampling."""
    tolerance = UNSTEADY if tolerance is None else tolerance
    n = len(predictions)
    if n < 4:
        return False
    early, late = statistics.median(predictions[: n // 2]), statistics.median(predictions[n // 2:])
    return abs(early - late) > tolerance * min(early, late)


def decode_blocks(steps: int, repeats: int) -> list[int]:
    """Timed decode steps per block, one block before each prefill repeat: as even as possible, the
    first block at least two steps (a budget stop after it still leaves a spread)."""
    repeats = max(1, repeats)
    sizes = [steps // repeats + (1 if k < steps % repeats else 0) for k in range(repeats)]
    first = min(steps, 2)
    k = len(sizes) - 1
    while sizes[0] < first and k > 0:
        if sizes[k]:
            sizes[k] -= 1
            sizes[0] += 1
        else:
            k -= 1
    return sizes


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


def own_load() -> float:
    """This process's average number of busy CPUs since it started (its share of the load average).

    The load average counts this process's own threads too: after a long probe it reads about the
    thread count on a machine nobody else uses, which must not count as busy.
    """
    try:
        import psutil

        proc = psutil.Process()
        cpu = sum(proc.cpu_times()[:2])
        wall = max(1.0, time.time() - proc.create_time())
        return cpu / wall
    except Exception:
        return 0.0


def busy_note(own: float | None = None) -> list[str]:
    """A note when other processes compete for the CPU: timings on a busy machine come out slow."""
    import os

    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        load, cores = 0.0, os.cpu_count() or 1
    others = max(0.0, load - (own_load() if own is None else own))
    psi = cpu_pressure()
    if others > 0.5 * cores or (psi is not None and psi > 40):
        why = f"load average {load:.1f} on {cores} cores, {others:.1f} of it other processes" + (
            f", CPU pressure {psi:.0f}%" if psi is not None else "")
        return [f"the machine was busy ({why}): timings may be inflated; re-run with --refresh when it is idle"]
    return []


class ArchProbe(Probe):
    name = "architecture-probe"

    def __init__(self, model_id: str, arch: Architecture, fmt: str, batch: int, prompt_tokens: int, *,
                 device: str, config: ProbeConfig | None = None, progress: Progress | None = None,
                 depth: int | None = None, prefer: str = "transformers", new_tokens: int = 32):
        super().__init__(config, progress)
        self.model_id, self.arch, self.fmt = model_id, arch, fmt
        self.new_tokens = new_tokens
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
        st["module"] = body.module
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
            t_sampling = time.perf_counter()
            base_ms, head_ms, cache, tok = prefill(P)
            pre.add(base_ms, clock.layer_ms(), head_ms, clock.gap_ms())
            for _ in range(cfg.warmup_steps):
                _, _, cache, tok = step(tok, cache)
            # Decode steps and prefill repeats alternate, in blocks, so that both spread over the whole
            # probe: this machine's speed wanders (a fixed workload's 0.5 s windows differ by up to 26%),
            # and a slow moment then lands on a few samples of each, not on all of one kind.
            repeats = cfg.prefill_repeats or ARCH_PREFILL_REPEATS
            blocks = decode_blocks(cfg.decode_steps, repeats)
            meter = EnergyMeter(dev)
            st_run = {"joules": 0.0, "dec_s": 0.0, "timed": 0, "prefills": 1, "extra": 0, "stopped": False}
            one_prefill_s = (sum(pre.totals) + sum(pre.head)) / 1000
            planned = cfg.decode_steps + repeats

            def decode_block(n: int) -> None:
                nonlocal cache, tok
                meter.start()
                t_block = time.perf_counter()
                for _ in range(n):
                    if st_run["timed"] >= 2 and budget.exhausted():
                        notes.append(f"stopped at the time budget after {st_run['timed']} of "
                                     f"{cfg.decode_steps} decode steps")
                        st_run["stopped"] = True
                        break
                    if st_run["timed"] < 2:
                        budget.check("two decode steps were timed")
                    base_ms, head_ms, cache, tok = step(tok, cache)
                    dec.add(base_ms, clock.layer_ms(), head_ms, clock.gap_ms())
                    st_run["timed"] += 1
                    report(self.progress, "decode steps", 0.15 + 0.85 * (st_run["timed"] + st_run["prefills"]) / planned)
                st_run["dec_s"] += time.perf_counter() - t_block
                block_j = meter.stop()
                st_run["joules"] = None if st_run["joules"] is None or block_j is None else st_run["joules"] + block_j

            head_times = [pre.head[0]]

            def prefill_repeat(with_head: bool = False) -> bool:
                if budget.left < one_prefill_s * 1.2:
                    notes.append(f"stopped at the time budget after {st_run['prefills']} of {repeats} prefill repeats")
                    st_run["stopped"] = True
                    return False
                report(self.progress, f"prefill {P} tokens", 0.15 + 0.85 * (st_run["timed"] + st_run["prefills"]) / planned)
                timed_head = with_head and len(head_times) < HEAD_PREFILL_SAMPLES
                base_ms, head_ms, pre_cache, _ = prefill(P, with_head=timed_head)
                if timed_head:
                    head_times.append(head_ms)
                pre.add(base_ms, clock.layer_ms(), statistics.median(head_times), clock.gap_ms())
                del pre_cache
                st_run["prefills"] += 1
                return True

            for r, block in enumerate(blocks):
                decode_block(block)
                if st_run["stopped"] or (r + 1 < repeats and not prefill_repeat()):
                    break
            one_round_s = one_prefill_s + 2 * statistics.median(dec.totals) / 1000

            def more_rounds(until_s: float, while_unsteady: bool) -> int:
                """Rounds of a prefill (head timed) and two decode steps until `until_s` of sampling."""
                done = 0
                while (not st_run["stopped"] and st_run["extra"] < MAX_EXTRA_ROUNDS
                       and time.perf_counter() - t_sampling < until_s - one_round_s / 2
                       and budget.left > one_round_s * 1.5
                       and (not while_unsteady or unsteady(pre.predictions(L)) or unsteady(dec.predictions(L)))):
                    if not prefill_repeat(with_head=True):
                        break
                    decode_block(2)
                    st_run["extra"] += 1
                    done += 1
                return done

            # Larger models get more samples: sampling goes on until it has taken SAMPLE_SHARE of one
            # predicted request (prompt + new tokens), so that the probe averages over more of the
            # machine's wandering where that is cheap next to the model.
            more_rounds(min(SAMPLE_MAX_S, SAMPLE_SHARE * (statistics.median(pre.predictions(L))
                                                          + self.new_tokens * statistics.median(dec.predictions(L)))
                            / 1000), while_unsteady=False)
            # When the machine's speed moved while sampling (the earlier and later halves of the samples
            # disagree), more rounds, up to UNSTEADY_EXTRA of the time sampled so far, let the median
            # settle on the speed that held most of the time.
            sampled_s = time.perf_counter() - t_sampling
            steadying = more_rounds(min(sampled_s * (1 + UNSTEADY_EXTRA), sampled_s + SAMPLE_MAX_S),
                                    while_unsteady=True)
            if steadying:
                notes.append(f"timings moved while probing: {steadying} more rounds of samples were taken")
            joules, dec_s = st_run["joules"], st_run["dec_s"]
            sampled_s = time.perf_counter() - t_sampling
            pre.head = [statistics.median(head_times)] * len(pre.head)
            del cache
        report(self.progress, "done", 1.0)

        pre_pred, dec_pred = pre.predictions(L), dec.predictions(L)
        dec_spread = Spread.from_values(dec_pred)
        power = joules / dec_s if joules is not None and dec_s > 0 else None
        jpt = power * dec_spread.p50 / 1000 / B if power is not None else None
        if jpt is not None:
            notes.append(f"J/token = measured power during the truncated decode ({power:.1f} W) x predicted step time")
        notes.append(f"{body.backend} decoder, {self.depth} of {L} layers timed layer by layer "
                     f"({len(pre.totals)} prefill, {len(dec.totals)} decode samples); LM head "
                     f"({self.arch.vocab_size} vocab) timed on its own"
                     + (f" (prefill: on {head.prefill_columns} of its rows, x{head.prefill_scale:.2f})"
                        if head.prefill_scale > 1 else "") + "; extrapolated per sample")
        # On a shared machine the speed wanders over seconds (on the 2-core CI VM, the same probe run ten
        # times in a row gave prefill p50s from 536 to 783 ms while each run's own p95 was within 1.4% of its p50):
        # the spread says how steady the samples were, not how far another moment can be.
        notes.append(f"p50/p95 are over samples taken within {sampled_s:.2g} s; the machine's speed at other "
                     "moments is not in that spread (--refresh measures again)")
        self.detail = ArchProbeDetail(depth=self.depth, full_depth=L, backend=body.backend,
                                      prefill=pre.components(), decode=dec.components(),
                                      decode_power_w=power, wall_s=time.perf_counter() - t_start)
        return LatencyMeasurement(
            model=self.model_id, format=self.fmt, device=dev, prompt_tokens=P, batch=B,
            prefill_ms=Spread.from_values(pre_pred), decode_ms_per_token=dec_spread,
            peak_bytes=None, joules_per_token=jpt, method="architecture-probe",
            layers_timed=[self.depth], notes=notes)


__all__ = ["ArchProbe", "ArchProbeDetail", "BudgetExhausted", "DoesNotFit", "probe_memory_bytes"]

"""The architecture probe's torch side: a truncated decoder and its full-size LM head, timed one
prefill or one decode step at a time, layer by layer.

The only module of the architecture probe that runs torch (imported when a TruncatedModel is
built). Every time is read from an injected clock (time.perf_counter by default), so tests can
drive the probe with a fake model that advances a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisor.catalog.schema import Architecture
from advisor.probe.timing import sync

Clock = Callable[[], float]


class LayerClock:
    """Per-layer times of the last forward, and the gaps between layers. Host clock on CPU; on CUDA
    also events (no sync inside), and a layer or gap costs the larger of the two."""

    def __init__(self, layers: list, device: str, clock: Clock = time.perf_counter):
        self.cuda = device.startswith("cuda")
        self._clock = clock
        self._host: list[list[float]] = [[0.0, 0.0] for _ in layers]
        self._events = None
        if self.cuda:
            import torch

            self._events = [[torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)]
                            for _ in layers]
        self._handles = []
        for i, layer in enumerate(layers):
            self._handles.append(layer.register_forward_pre_hook(self._pre(i)))
            self._handles.append(layer.register_forward_hook(self._post(i)))

    def _pre(self, i):
        def hook(_module, _args):
            if self._events is not None:
                self._events[i][0].record()
            self._host[i][0] = self._clock()
        return hook

    def _post(self, i):
        def hook(_module, _args, _out):
            self._host[i][1] = self._clock()
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


@dataclass
class Timed:
    """One timed forward: the truncated body, the head (None when not run), its layers and gaps."""

    body_ms: float
    head_ms: float | None
    layer_ms: list[float]
    gap_ms: list[float]
    cache: Any
    token: Any            # the next input token (decode) or the prompt's last token


class TruncatedModel:
    """`depth` decoder layers (random weights, tiny vocabulary), the LM head at full vocabulary, and
    a fixed random prompt; prefill() and step() run and time one forward each."""

    def __init__(self, arch: Architecture, depth: int, fmt: str, device: str, *, batch: int, prompt_tokens: int,
                 min_positions: int, prefer: str = "transformers", clock: Clock = time.perf_counter):
        import torch

        from advisor.probe.build import SMALL_VOCAB, LMHead, build_body

        self.device, self._clock, self._vocab = device, clock, SMALL_VOCAB
        self.body = build_body(arch, depth, fmt, device, min_positions=min_positions, prefer=prefer)
        self.head = LMHead(arch, fmt, device)
        self.layer_clock = LayerClock(self.body.layers, device, clock)
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.ids = torch.randint(0, SMALL_VOCAB, (batch, prompt_tokens), generator=gen).to(device)

    @property
    def backend(self) -> str:
        return self.body.backend

    def _ms(self, t0: float, t1: float) -> float:
        return 1000 * (t1 - t0)

    def prefill(self, n_tokens: int, with_head: bool = True) -> Timed:
        """The first `n_tokens` of the prompt; the head (timed on its slice, scaled to the full
        vocabulary) only `with_head`."""
        dev, clock = self.device, self._clock
        sync(dev)
        t0 = clock()
        hidden, cache = self.body.forward(self.ids[:, :n_tokens], None)
        sync(dev)
        t1 = clock()
        if not with_head:
            return Timed(self._ms(t0, t1), None, self.layer_clock.layer_ms(), self.layer_clock.gap_ms(), cache,
                         self.ids[:, -1:])
        logits = self.head.prefill_call(hidden)
        sync(dev)
        t2 = clock()
        nxt = logits[:, -1:].argmax(-1) % self._vocab
        return Timed(self._ms(t0, t1), self._ms(t1, t2) * self.head.prefill_scale, self.layer_clock.layer_ms(),
                     self.layer_clock.gap_ms(), cache, nxt)

    def step(self, token: Any, cache: Any) -> Timed:
        """One decode step from `token` with `cache`; the head at full vocabulary, with the argmax."""
        dev, clock = self.device, self._clock
        sync(dev)
        t0 = clock()
        hidden, cache = self.body.forward(token, cache)
        sync(dev)
        t1 = clock()
        nxt = self.head(hidden[:, -1:]).argmax(-1) % self._vocab
        sync(dev)
        t2 = clock()
        return Timed(self._ms(t0, t1), self._ms(t1, t2), self.layer_clock.layer_ms(), self.layer_clock.gap_ms(),
                     cache, nxt)

    def remove_hooks(self) -> None:
        self.layer_clock.remove()  # the layer hooks hold references to the model


__all__ = ["LayerClock", "Timed", "TruncatedModel"]

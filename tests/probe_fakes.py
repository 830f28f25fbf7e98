"""Fakes for the architecture probe's tests: a clock that moves only when told, and models whose
parts take known times on it (no sleeps: every timing is exact)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from advisor.probe.arch_timing import Timed


class FakeClock:
    """Seconds, as time.perf_counter gives them; moves only by advance_ms() (kept in whole ns)."""

    def __init__(self, start_s: float = 100.0):
        self._ns = round(start_s * 1e9)

    def __call__(self) -> float:
        return self._ns / 1e9

    def advance_ms(self, ms: float) -> None:
        self._ns += round(ms * 1e6)


@dataclass
class FakeTruncatedModel:
    """What Sampler drives, without torch: a prefill costs fixed + layers + gaps (+ its head), a decode
    step likewise; each call advances the clock by exactly that. `calls` logs "P16h" (a prefill of
    16 tokens with its head), "P16" (without) and "S" (a decode step). `slow(n)` scales the layers of
    the n-th forward (0-based, warm-up included); prefill heads take `prefill_heads` in turn, the
    last one repeated."""

    clock: FakeClock
    prefill_layers: tuple[float, ...] = (4.0, 4.0)
    prefill_gaps: tuple[float, ...] = (1.0,)
    prefill_fixed: float = 1.0
    prefill_heads: tuple[float, ...] = (6.0,)
    step_layers: tuple[float, ...] = (2.0, 2.0)
    step_gaps: tuple[float, ...] = (0.5,)
    step_fixed: float = 0.5
    step_head: float = 1.0
    slow: Callable[[int], float] = lambda n: 1.0
    calls: list[str] = field(default_factory=list)
    _forwards: int = 0
    _heads: Iterator[float] | None = None

    def _body(self, fixed: float, layers: tuple[float, ...], gaps: tuple[float, ...]) -> tuple[float, list[float]]:
        scale = self.slow(self._forwards)
        self._forwards += 1
        timed = [x * scale for x in layers]
        body = fixed + sum(timed) + sum(gaps)
        self.clock.advance_ms(body)
        return body, timed

    def prefill(self, n_tokens: int, with_head: bool = True) -> Timed:
        body, layers = self._body(self.prefill_fixed, self.prefill_layers, self.prefill_gaps)
        head = None
        if with_head:
            if self._heads is None:
                self._heads = iter(self.prefill_heads)
            head = next(self._heads, self.prefill_heads[-1])
            self.clock.advance_ms(head)
        self.calls.append(f"P{n_tokens}" + ("h" if with_head else ""))
        return Timed(body, head, layers, list(self.prefill_gaps), cache="cache", token="token")

    def step(self, token, cache) -> Timed:
        body, layers = self._body(self.step_fixed, self.step_layers, self.step_gaps)
        self.clock.advance_ms(self.step_head)
        self.calls.append("S")
        return Timed(body, self.step_head, layers, list(self.step_gaps), cache=cache, token=token)


def clocked_torch_model(monkeypatch, clock: FakeClock, *, layer_ms: float | Callable[[], float] = 2.0,
                        fixed_ms: float = 0.0, decode_head_ms: float | None = None,
                        prefill_head_ms: list[float] | None = None) -> None:
    """Replace the probe's decoder (advisor.probe.build.build_body) by torch layers that advance
    `clock` by `layer_ms` (a number, or a function called per layer call), after `fixed_ms` per
    forward; the LM head's decode call by `decode_head_ms` and its prefill call by
    prefill_head_ms[0], [1], ... (the last repeated). None keeps the real head."""
    import torch

    from advisor.probe import build

    class Layer(torch.nn.Module):
        def forward(self, x):
            clock.advance_ms(layer_ms() if callable(layer_ms) else layer_ms)
            return x

    def fake_body(arch, layers, fmt, device, **kw):
        blocks = torch.nn.ModuleList(Layer() for _ in range(layers))

        def forward(ids, cache):
            clock.advance_ms(fixed_ms)
            x = torch.zeros(ids.shape[0], ids.shape[1], arch.hidden_size)
            for b in blocks:
                x = b(x)
            return x, cache

        return build.Body(blocks, list(blocks), forward, "fake")

    monkeypatch.setattr(build, "build_body", fake_body)
    if decode_head_ms is not None:
        def decode_head(self, hidden):
            clock.advance_ms(decode_head_ms)
            return torch.zeros(hidden.shape[0], hidden.shape[1], 10)

        monkeypatch.setattr(build.LMHead, "__call__", decode_head)
    if prefill_head_ms is not None:
        heads = iter(prefill_head_ms)

        def prefill_head(self, hidden):
            clock.advance_ms(next(heads, prefill_head_ms[-1]))
            return torch.zeros(hidden.shape[0], hidden.shape[1], 10)

        monkeypatch.setattr(build.LMHead, "prefill_call", prefill_head)

"""The architecture probe on tiny architectures: extrapolation, budget stop, OOM, memory freed."""

from __future__ import annotations

import itertools
import weakref
from pathlib import Path

import pytest

from advisor.catalog.schema import Architecture, ModelEntry
from advisor.probe import api
from advisor.probe.arch_probe import _Samples
from advisor.probe.base import Budget, BudgetExhausted, DoesNotFit, ProbeConfig

torch = pytest.importorskip("torch")
FIX = Path(__file__).parent / "fixtures" / "probe"


@pytest.fixture(autouse=True)
def canned_microprobes(monkeypatch):
    """The microprobes have their own test; here they would only cost seconds per test."""
    from advisor.estimate.schema import MeasuredRates

    monkeypatch.setattr("advisor.probe.micro.run_microprobes", lambda device, **kw: MeasuredRates(
        device=device, matmul_tflops={"fp32": 0.1}, bandwidth_gbs=20.0, step_overhead_ms=0.01))


def entry(**arch_changes) -> ModelEntry:
    e = ModelEntry.model_validate_json((FIX / "tiny_entry.json").read_text())
    if arch_changes:
        e = e.model_copy(update={"architecture": e.arch.model_copy(update=arch_changes)})
    return e


def test_extrapolation_adds_missing_layers_at_the_typical_later_layer_cost():
    s = _Samples()
    # 2 timed layers: the first runs colder (5 ms) than the later one (3 ms); 0.5 ms between them
    s.add(total_ms=10.0, layer_ms=[5.0, 3.0], head_ms=7.0, gap_ms=[0.5])
    s.add(total_ms=11.0, layer_ms=[5.0, 3.0], head_ms=9.0, gap_ms=[0.5])
    # each sample: its own forward and head + 22 missing layers at 3 ms + 0.5 ms
    assert s.predictions(24) == pytest.approx([10 + 7 + 22 * 3.5, 11 + 9 + 22 * 3.5])
    c = s.components()
    assert (c.fixed_ms, c.layer_ms, c.first_layer_ms, c.gap_ms, c.lm_head_ms, c.layer_samples, c.samples) == \
        (2.0, 3.0, 5.0, 0.5, 8.0, 4, 2)


def test_a_stall_in_one_timed_layer_is_counted_once_not_times_the_depth():
    s = _Samples()
    for _ in range(4):
        s.add(total_ms=10.0, layer_ms=[4.0, 4.0], head_ms=5.0)
    s.add(total_ms=40.0, layer_ms=[4.0, 34.0], head_ms=5.0)      # another process took 30 ms
    preds = s.predictions(30)
    assert preds[:4] == pytest.approx([10 + 5 + 28 * 4] * 4)
    assert preds[4] == pytest.approx(preds[0] + 30)              # the stall costs its 30 ms once


@pytest.mark.parametrize("steps,repeats,expected", [
    (10, 5, [2, 2, 2, 2, 2]), (10, 3, [4, 3, 3]), (3, 5, [2, 1, 0, 0, 0]), (1, 4, [1, 0, 0, 0]), (7, 1, [7])])
def test_decode_steps_are_spread_between_the_prefill_repeats(steps, repeats, expected):
    from advisor.probe.arch_probe import decode_blocks

    assert decode_blocks(steps, repeats) == expected


def test_probe_alternates_decode_blocks_and_prefill_repeats(monkeypatch):
    from advisor.probe import build

    calls: list[int] = []
    orig = build.build_body

    def logging_body(*a, **kw):
        body = orig(*a, **kw)
        inner = body.forward

        def forward(ids, cache):
            calls.append(ids.shape[1])
            return inner(ids, cache)

        body.forward = forward
        return body

    monkeypatch.setattr(build, "build_body", logging_body)
    e = entry()
    cfg = ProbeConfig(decode_steps=6, prefill_repeats=3, warmup_steps=1)
    m, _ = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=6, device="cpu", config=cfg, budget_s=30)
    # warm-up (min(16, 32) tokens), first prefill, 1 warm step, then [2 steps, prefill] x 2, 2 steps
    assert calls[:11] == [16, 16, 1, 1, 1, 16, 1, 1, 16, 1, 1]
    # extra rounds (a machine whose speed moved) keep alternating: a prefill, then two decode steps
    extra = calls[11:]
    assert len(extra) % 3 == 0 and extra == [16, 1, 1] * (len(extra) // 3)
    assert m.prefill_ms.n == 3 + len(extra) // 3 and m.decode_ms_per_token.n == 6 + 2 * len(extra) // 3


def test_unsteady_compares_the_earlier_and_later_half_of_the_samples():
    from advisor.probe.arch_probe import unsteady

    assert not unsteady([100, 101, 99, 100, 102, 100])
    assert unsteady([100, 101, 99, 120, 122, 121])          # the machine slowed by a fifth half-way
    assert not unsteady([100, 200, 100])                    # too few samples to tell
    assert not unsteady([100, 100, 100, 107, 107, 107])     # 7% is within the 8% tolerance


def test_probe_takes_more_rounds_when_the_machine_slows_down_half_way(monkeypatch):
    """Layers that sleep 2 ms, then 20 ms from the 16th call on: the halves disagree, the probe samples on.

    The slow-down is large because only a sample's own 2 layers differ between the halves (the 28
    extrapolated ones are priced at the median over all samples): at 6 ms, a loaded machine's
    oversleeping of the 2 ms layers brought the halves within the 8% tolerance and the test failed."""
    from advisor.probe import arch_probe

    calls = itertools.count()
    _sleeping_model(monkeypatch, lambda: 2.0 if next(calls) < 16 else 20.0, None)
    monkeypatch.setattr(arch_probe, "SAMPLE_SHARE", 0.0)     # no rounds for the model's size: only steadying
    monkeypatch.setattr(arch_probe, "UNSTEADY_EXTRA", 5.0)   # room for them whatever this machine's speed
    e = entry(num_hidden_layers=30)
    cfg = ProbeConfig(decode_steps=6, prefill_repeats=3, warmup_steps=1)
    m, _ = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=6, device="cpu", config=cfg, budget_s=30)
    assert m.decode_ms_per_token.n > 6
    assert any("timings moved while probing" in n for n in m.notes)


def test_one_layer_models_are_not_extrapolated():
    s = _Samples()
    s.add(total_ms=6.0, layer_ms=[4.0], head_ms=2.0)
    assert s.predictions(1) == [8.0]
    assert s.components().first_layer_ms is None


@pytest.mark.parametrize("prefer", ["transformers", "built-in"])
def test_probe_tiny_architecture(prefer):
    if prefer == "transformers":
        pytest.importorskip("transformers")
    e = entry()
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 32, new_tokens=6, device="cpu", budget_s=30,
                                  prefer=prefer)
    assert m.method == "architecture-probe" and m.layers_timed == [2]
    assert d.backend == prefer and d.depth == 2 and d.full_depth == 6
    # never one sample (more when the machine's speed moved while probing)
    assert m.decode_ms_per_token.n >= 6 and m.prefill_ms.n >= 5
    assert m.decode_ms_per_token.n - 6 == 2 * (m.prefill_ms.n - 5)
    assert 0 < m.decode_ms_per_token.p50 <= m.decode_ms_per_token.p95 <= m.decode_ms_per_token.max
    assert d.prefill.layer_samples == 2 * m.prefill_ms.n and d.decode.layer_samples == 2 * m.decode_ms_per_token.n
    # the prediction is the sum of its parts at full depth
    parts = (d.decode.fixed_ms + d.decode.first_layer_ms + 5 * (d.decode.layer_ms + d.decode.gap_ms)
             + d.decode.lm_head_ms)
    assert m.decode_ms_per_token.p50 == pytest.approx(parts, rel=0.5)
    # the spread is said to cover the sampling window only, and that window is part of the probe's time
    window = [n for n in m.notes if n.startswith("p50/p95 are over samples taken within ")]
    assert len(window) == 1
    assert 0 < float(window[0].split("within ")[1].split(" s")[0]) <= d.wall_s


class _Sleeper(torch.nn.Module):
    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        import time

        time.sleep(self.ms / 1000)
        return x


def test_extrapolation_recovers_known_layer_and_head_costs(monkeypatch):
    """A fake model whose parts take known times: fixed 3 ms, 4 ms per layer, head 6 ms (prefill 12 ms)."""
    import time

    from advisor.probe import build

    def fake_body(arch, layers, fmt, device, **kw):
        blocks = torch.nn.ModuleList(_Sleeper(4.0) for _ in range(layers))

        def forward(ids, cache):
            time.sleep(0.003)
            x = torch.zeros(ids.shape[0], ids.shape[1], arch.hidden_size)
            for b in blocks:
                x = b(x)
            return x, (cache or 0) + 1

        return build.Body(blocks, list(blocks), forward, "fake")

    def fake_head(self, hidden):
        time.sleep(0.012 if hidden.shape[1] > 1 else 0.006)
        return torch.zeros(hidden.shape[0], hidden.shape[1], 10)

    monkeypatch.setattr(build, "build_body", fake_body)
    monkeypatch.setattr(build.LMHead, "__call__", fake_head)
    monkeypatch.setattr(build.LMHead, "prefill_call", fake_head)
    e = entry(num_hidden_layers=30)
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 32, new_tokens=8, device="cpu", budget_s=30)
    assert d.decode.layer_ms == pytest.approx(4.0, abs=1.5)
    assert d.decode.lm_head_ms == pytest.approx(6.0, abs=1.5)
    expected_decode = 3 + 30 * 4 + 6
    expected_prefill = 3 + 30 * 4 + 12
    # sleeps only ever overshoot; a busy machine adds a little per call
    assert expected_decode * 0.97 < m.decode_ms_per_token.p50 < expected_decode * 1.5
    assert expected_prefill * 0.97 < m.prefill_ms.p50 < expected_prefill * 1.5
    assert m.layers_timed == [2]


def _stepping_clock(step_s: float):
    counter = itertools.count()
    return lambda: next(counter) * step_s


def test_budget_stop_gives_a_partial_result_with_a_note():
    e = entry()
    cfg = ProbeConfig(decode_steps=200, prefill_repeats=50, warmup_steps=1)
    # every clock reading advances 10 ms: the budget runs out part-way through the decode loop
    budget = Budget(1.0, clock=_stepping_clock(0.01))
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=200, device="cpu", config=cfg,
                                  budget=budget)
    assert 2 <= m.decode_ms_per_token.n < 200
    assert any("stopped at the time budget" in n and "decode steps" in n for n in m.notes)
    assert m.prefill_ms.n < 50


def test_tiny_budget_measures_nothing_and_says_so():
    res = api.local_calibration(entry(), "fp32", 1, 16, 4, budget_s=1e-9)
    assert res.measurement is None
    assert res.skipped.startswith("budget exhausted")
    assert not res.from_cache


def test_budget_exhausted_before_decode_raises():
    e = entry()
    with pytest.raises(BudgetExhausted, match="budget exhausted"):
        api.probe_architecture(e.id, e.arch, "fp32", 1, 16, device="cpu", budget=Budget(0.0))


def _track_modules(monkeypatch):
    """Keep weak references to every decoder and head the probe builds."""
    from advisor.probe import build

    refs: list[weakref.ref] = []
    orig_body, orig_head_init = build.build_body, build.LMHead.__init__

    def body(*a, **kw):
        b = orig_body(*a, **kw)
        refs.append(weakref.ref(b.module))
        return b

    def head_init(self, *a, **kw):
        orig_head_init(self, *a, **kw)
        refs.append(weakref.ref(self.linear))

    monkeypatch.setattr(build, "build_body", body)
    monkeypatch.setattr(build.LMHead, "__init__", head_init)
    return refs


def test_memory_is_freed_after_a_probe(monkeypatch):
    refs = _track_modules(monkeypatch)
    res = api.local_calibration(entry(), "fp32", 1, 32, 4, budget_s=30, device="cpu")
    assert res.measurement is not None
    # no gc.collect() here: the probe itself must have let go of (and collected) what it built
    assert len(refs) == 2
    assert all(r() is None for r in refs), "the probe kept a reference to its model"


def test_out_of_memory_reports_does_not_fit_and_frees(monkeypatch):
    from advisor.probe import build

    refs = _track_modules(monkeypatch)

    def oom(self, hidden):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(build.LMHead, "__call__", oom)
    import advisor.probe.safety as safety

    real_free, alive_after_free = safety.free_device, []

    def free_and_look(device, *args, **kwargs):
        real_free(device, *args, **kwargs)
        alive_after_free.append(sum(r() is not None for r in refs))

    monkeypatch.setattr(safety, "free_device", free_and_look)
    res = api.local_calibration(entry(), "fp32", 1, 32, 4, budget_s=30, device="cpu")
    assert res.measurement is None and res.does_not_fit
    assert res.skipped.startswith("does not fit")
    # freed by the probe before it reported, not later when the exception was dropped
    assert len(refs) == 2 and alive_after_free[-1] == 0


def test_runtime_error_out_of_memory_is_also_caught(monkeypatch):
    from advisor.probe import build

    def oom(*a, **kw):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 9999 bytes. Error code 12 (Cannot allocate memory) out of memory")

    monkeypatch.setattr(build, "cheap_fill_", oom)
    res = api.local_calibration(entry(), "fp32", 1, 32, 4, budget_s=30, device="cpu")
    assert res.does_not_fit


def test_other_errors_are_not_hidden_as_oom(monkeypatch):
    from advisor.probe import build

    monkeypatch.setattr(build.LMHead, "__call__", lambda self, h: (_ for _ in ()).throw(ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):
        api.local_calibration(entry(), "fp32", 1, 32, 4, budget_s=30, device="cpu")


def test_memory_cap_refuses_before_allocating(monkeypatch):
    import advisor.probe.safety as safety

    monkeypatch.setattr(safety, "free_memory_bytes", lambda device: 10_000)
    refs = _track_modules(monkeypatch)
    with pytest.raises(DoesNotFit, match="cap"):
        e = entry()
        api.probe_architecture(e.id, e.arch, "fp32", 1, 32, device="cpu", budget_s=30)
    assert refs == []   # nothing was built


def test_probe_memory_bound_counts_head_kv_and_logits():
    from advisor.probe.arch_probe import probe_memory_bytes

    arch = Architecture(model_type="qwen2", hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                        num_key_value_heads=2, intermediate_size=4864, vocab_size=151936)
    small = probe_memory_bytes(arch, 2, "fp32", 1, 256, 16)
    head_bytes = 151936 * 896 * 4
    assert small > head_bytes                       # the full-size head is always allocated
    assert small < head_bytes + 24 * 60e6          # but never the full depth
    assert probe_memory_bytes(arch, 2, "fp32", 1, 4096, 16) > small + 65536 * 4096 * 4   # logits slice grows
    assert probe_memory_bytes(arch, 2, "bf16", 1, 256, 16) < small


def test_device_fault_is_a_result_not_a_crash(monkeypatch):
    from advisor.probe import build

    def lost(self, hidden):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(build.LMHead, "__call__", lost)
    res = api.local_calibration(entry(), "fp32", 1, 32, 4, budget_s=30, device="cpu")
    assert res.measurement is None and not res.does_not_fit
    assert res.skipped.startswith("probe failed: CUDA error: an illegal memory access")
    assert res.rates is not None


def test_busy_machine_is_noted(tmp_path, monkeypatch):
    from advisor.probe import arch_probe

    psi = tmp_path / "cpu"
    psi.write_text("some avg10=87.50 avg60=80.00 avg300=70.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert arch_probe.cpu_pressure(str(psi)) == 87.5
    assert arch_probe.cpu_pressure(str(tmp_path / "missing")) is None
    monkeypatch.setattr(arch_probe, "cpu_pressure", lambda: 87.5)
    monkeypatch.setattr("os.getloadavg", lambda: (0.1, 0.1, 0.1))
    (note,) = arch_probe.busy_note()
    assert "busy" in note and "CPU pressure 88%" in note
    monkeypatch.setattr(arch_probe, "cpu_pressure", lambda: 1.0)
    assert arch_probe.busy_note() == []


def test_the_probes_own_threads_do_not_make_the_machine_busy(monkeypatch):
    from advisor.probe import arch_probe

    monkeypatch.setattr(arch_probe, "cpu_pressure", lambda: 1.0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (2.2, 2.0, 1.5))
    assert arch_probe.busy_note(own=2.0) == []              # our two probe threads, nobody else
    (note,) = arch_probe.busy_note(own=0.0)                  # the same load from other processes
    assert "2.2 of it other processes" in note
    assert 0.0 <= arch_probe.own_load() < 64


def _sleeping_model(monkeypatch, layer_ms, head_ms: list[float] | None):
    """A fake decoder whose layers sleep `layer_ms` (a number, or a function called per layer call);
    prefill heads sleep head_ms[0], head_ms[1], ... ms (None: the real head)."""
    import time

    from advisor.probe import build

    class Layer(torch.nn.Module):
        def forward(self, x):
            time.sleep((layer_ms() if callable(layer_ms) else layer_ms) / 1000)
            return x

    def fake_body(arch, layers, fmt, device, **kw):
        blocks = torch.nn.ModuleList(Layer() for _ in range(layers))

        def forward(ids, cache):
            x = torch.zeros(ids.shape[0], ids.shape[1], arch.hidden_size)
            for b in blocks:
                x = b(x)
            return x, cache

        return build.Body(blocks, list(blocks), forward, "fake")

    monkeypatch.setattr(build, "build_body", fake_body)
    if head_ms is None:
        return
    heads = iter(head_ms)

    def prefill_head(self, hidden):
        time.sleep(next(heads, head_ms[-1]) / 1000)
        return torch.zeros(hidden.shape[0], hidden.shape[1], 10)

    monkeypatch.setattr(build.LMHead, "prefill_call", prefill_head)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_larger_requests_get_more_rounds_up_to_the_cap(monkeypatch, share):
    import time

    from advisor.probe import arch_probe

    _sleeping_model(monkeypatch, 2.0, [5.0])
    monkeypatch.setattr(arch_probe, "UNSTEADY", 10.0)          # never unsteady: only the size rule acts
    monkeypatch.setattr(arch_probe, "SAMPLE_SHARE", share)
    monkeypatch.setattr(arch_probe, "SAMPLE_MAX_S", 0.6)
    e = entry(num_hidden_layers=30)
    cfg = ProbeConfig(decode_steps=4, prefill_repeats=2, warmup_steps=1)
    t0 = time.perf_counter()
    # one request: a ~65 ms prefill and 64 steps of ~60 ms: 25% of it is far more than the 0.6 s cap
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=64, device="cpu", config=cfg, budget_s=30)
    if share == 0.0:
        assert (m.prefill_ms.n, m.decode_ms_per_token.n) == (2, 4)
    else:
        extra = m.prefill_ms.n - 2
        assert extra >= 2 and m.decode_ms_per_token.n == 4 + 2 * extra
        assert d.wall_s < 0.6 + 1.0 and time.perf_counter() - t0 < 5      # stopped near the cap


def test_prefill_head_figure_is_the_median_of_its_timings(monkeypatch):
    from advisor.probe import arch_probe

    # the first head timing hit a stall (80 ms); the extra rounds time it at 5 ms twice more
    _sleeping_model(monkeypatch, 1.0, [1.0, 80.0, 5.0, 5.0])        # [warm-up, first prefill, rounds...]
    monkeypatch.setattr(arch_probe, "UNSTEADY", 10.0)
    monkeypatch.setattr(arch_probe, "SAMPLE_SHARE", 1.0)
    monkeypatch.setattr(arch_probe, "SAMPLE_MAX_S", 0.5)
    e = entry(num_hidden_layers=30)
    cfg = ProbeConfig(decode_steps=4, prefill_repeats=2, warmup_steps=1)
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=64, device="cpu", config=cfg, budget_s=30)
    assert m.prefill_ms.n >= 4                                        # three head timings were taken
    # not the 80 ms one (bounds far from 5 ms: a loaded machine oversleeps)
    assert d.prefill.lm_head_ms < 40
    # with the stalled head figure the prediction would be at least 30 layers x 1 ms + 80 ms
    assert m.prefill_ms.p50 < 30 * 1.0 + 80 - 10

"""The architecture probe end to end on tiny architectures (real torch, or torch layers on a fake clock):
what it samples, extrapolation, budget stop, OOM, memory freed. The sampling policy, the sampling run
and the extrapolation have their own table tests (test_probe_sampling/_sampler/_extrapolate.py)."""

from __future__ import annotations

import itertools
import weakref
from pathlib import Path

import pytest

from advisor.catalog.schema import Architecture, ModelEntry
from advisor.probe import api
from advisor.probe.arch_config import ArchProbeConfig
from advisor.probe.base import Budget, BudgetExhausted, DoesNotFit, ProbeConfig
from tests.probe_fakes import FakeClock, clocked_torch_model

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


def _logged_forwards(monkeypatch) -> list[int]:
    """The prompt length of every forward of the real truncated decoder, in order."""
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
    return calls


@pytest.mark.parametrize("extra_rounds", [0, 2])
def test_probe_alternates_decode_blocks_and_prefill_repeats(monkeypatch, extra_rounds):
    """The real decoder on a clock that never moves: the fixed plan, then `extra_rounds` rounds (at least
    1 s of sampling is asked for, none ever passes, so the round cap alone ends them)."""
    calls = _logged_forwards(monkeypatch)
    e = entry()
    cfg = ProbeConfig(decode_steps=6, prefill_repeats=3, warmup_steps=1,
                      arch_probe=ArchProbeConfig(min_sample_s=1.0, max_extra_rounds=extra_rounds))
    m, _ = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=6, device="cpu", config=cfg,
                                  budget_s=30, clock=FakeClock())
    # warm-up (min(16, 32) tokens), first prefill, 1 warm step, then [2 steps, prefill] x 2, 2 steps;
    # each extra round a prefill, then two decode steps
    assert calls == [16, 16, 1, 1, 1, 16, 1, 1, 16, 1, 1] + [16, 1, 1] * extra_rounds
    assert (m.prefill_ms.n, m.decode_ms_per_token.n) == (3 + extra_rounds, 6 + 2 * extra_rounds)


def test_probe_takes_more_rounds_when_the_machine_slows_down_half_way(monkeypatch):
    """Layers that take 2 ms, then 20 ms from the 16th layer call on: the halves disagree, the probe samples on."""
    def run(**knobs):
        layer_calls = itertools.count()
        clock = FakeClock()
        clocked_torch_model(monkeypatch, clock, layer_ms=lambda: 2.0 if next(layer_calls) < 16 else 20.0,
                            decode_head_ms=1.0, prefill_head_ms=[5.0])
        e = entry(num_hidden_layers=30)
        # no rounds for the model's size (share 0): only the steadying rule acts
        cfg = ProbeConfig(decode_steps=6, prefill_repeats=3, warmup_steps=1,
                          arch_probe=ArchProbeConfig(sample_share=0.0, unsteady_extra=5.0, **knobs))
        m, _ = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=6, device="cpu", config=cfg,
                                      budget_s=30, clock=clock)
        return m

    m = run()
    assert m.decode_ms_per_token.n > 6
    assert any("timings moved while probing" in n for n in m.notes)
    m = run(unsteady_tolerance=100.0)          # the same slow-down within the tolerance: the plan only
    assert (m.prefill_ms.n, m.decode_ms_per_token.n) == (3, 6)
    assert not any("timings moved" in n for n in m.notes)


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
    # (that the prediction is the sum of its parts is checked exactly on a fake clock below: here the
    # medians of the parts need not add up to the median of the sums, 2.23 vs 1.42 ms on a loaded machine)
    # the spread is said to cover the sampling window only, and that window is part of the probe's time
    window = [n for n in m.notes if n.startswith("p50/p95 are over samples taken within ")]
    assert len(window) == 1
    assert 0 < float(window[0].split("within ")[1].split(" s")[0]) <= d.wall_s


def test_extrapolation_recovers_known_layer_and_head_costs(monkeypatch):
    """Torch layers on a fake clock whose parts take known times: fixed 3 ms, 4 ms per layer, the
    head 6 ms for a decode step and 12 ms for a prefill; the probe's own hooks and clock time them."""
    clock = FakeClock()
    clocked_torch_model(monkeypatch, clock, layer_ms=4.0, fixed_ms=3.0, decode_head_ms=6.0, prefill_head_ms=[12.0])
    e = entry(num_hidden_layers=30)
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 32, new_tokens=8, device="cpu", budget_s=30, clock=clock)
    assert (d.decode.fixed_ms, d.decode.layer_ms, d.decode.first_layer_ms, d.decode.gap_ms, d.decode.lm_head_ms) == \
        pytest.approx((3.0, 4.0, 4.0, 0.0, 6.0))
    assert (d.prefill.fixed_ms, d.prefill.layer_ms, d.prefill.lm_head_ms) == pytest.approx((3.0, 4.0, 12.0))
    assert m.decode_ms_per_token.p50 == pytest.approx(3 + 30 * 4 + 6)
    assert m.decode_ms_per_token.p95 == pytest.approx(3 + 30 * 4 + 6)     # a steady clock has no spread
    assert m.prefill_ms.p50 == pytest.approx(3 + 30 * 4 + 12)
    assert m.layers_timed == [2]


def test_budget_stop_gives_a_partial_result_with_a_note(monkeypatch):
    """A 0.3 s budget on the probe's clock. Costs: a prefill 2 x 2 ms + its head 5 ms, a decode step
    2 x 2 ms + 1 ms. Warm-up and first prefill (9 ms each) and the warm step (5 ms) end at 23 ms;
    steps start at 23 + 5 i ms, and the one at 303 ms is past the budget: 56 timed."""
    clock = FakeClock()
    clocked_torch_model(monkeypatch, clock, layer_ms=2.0, decode_head_ms=1.0, prefill_head_ms=[5.0])
    e = entry()
    cfg = ProbeConfig(decode_steps=200, prefill_repeats=2, warmup_steps=1)
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=200, device="cpu", config=cfg,
                                  budget_s=0.3, clock=clock)
    assert (m.prefill_ms.n, m.decode_ms_per_token.n) == (1, 56)
    assert "stopped at the time budget after 56 of 200 decode steps" in m.notes


def test_a_stepping_budget_clock_stops_a_real_probe_part_way():
    """The real decoder, and a budget whose every reading advances 10 ms: it runs out part-way."""
    e = entry()
    cfg = ProbeConfig(decode_steps=200, prefill_repeats=50, warmup_steps=1)
    steps = itertools.count()
    budget = Budget(1.0, clock=lambda: next(steps) * 0.01)
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=200, device="cpu", config=cfg,
                                  budget=budget)
    assert 2 <= m.decode_ms_per_token.n < 200 and m.prefill_ms.n < 50
    assert any(n.startswith("stopped at the time budget after ") for n in m.notes)


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
    from advisor.probe import machine_load

    psi = tmp_path / "cpu"
    psi.write_text("some avg10=87.50 avg60=80.00 avg300=70.00 total=1\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert machine_load.cpu_pressure(str(psi)) == 87.5
    assert machine_load.cpu_pressure(str(tmp_path / "missing")) is None
    monkeypatch.setattr(machine_load, "cpu_pressure", lambda: 87.5)
    monkeypatch.setattr("os.getloadavg", lambda: (0.1, 0.1, 0.1))
    (note,) = machine_load.busy_note()
    assert "busy" in note and "CPU pressure 88%" in note
    monkeypatch.setattr(machine_load, "cpu_pressure", lambda: 1.0)
    assert machine_load.busy_note() == []


def test_the_probes_own_threads_do_not_make_the_machine_busy(monkeypatch):
    from advisor.probe import machine_load

    monkeypatch.setattr(machine_load, "cpu_pressure", lambda: 1.0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (2.2, 2.0, 1.5))
    assert machine_load.busy_note(own=2.0) == []              # our two probe threads, nobody else
    (note,) = machine_load.busy_note(own=0.0)                  # the same load from other processes
    assert "2.2 of it other processes" in note
    assert 0.0 <= machine_load.own_load() < 64


@pytest.mark.parametrize("share,sample_max_s,expected", [
    (0.0, 2.0, (2, 4)),      # no size rule: the fixed plan only
    # one request, a 65 ms prefill and 64 steps of 61 ms, is ~4 s: its full share is capped at 0.2 s.
    # The plan samples 38 ms (9 + 5 + 2 x 5 + 4 + 2 x 5); rounds of 19 ms (head timed, twice), then of
    # 14 ms, while more than half a round (17 ms) short of 200 ms: 38 -> 57 -> 76 -> ... -> 202 ms
    (1.0, 0.2, (13, 26)),
])
def test_larger_requests_get_more_rounds_up_to_the_cap(monkeypatch, share, sample_max_s, expected):
    clock = FakeClock()
    clocked_torch_model(monkeypatch, clock, layer_ms=2.0, decode_head_ms=1.0, prefill_head_ms=[5.0])
    e = entry(num_hidden_layers=30)
    cfg = ProbeConfig(decode_steps=4, prefill_repeats=2, warmup_steps=1,
                      arch_probe=ArchProbeConfig(sample_share=share, sample_max_s=sample_max_s))
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=64, device="cpu", config=cfg,
                                  budget_s=30, clock=clock)
    assert (m.prefill_ms.n, m.decode_ms_per_token.n) == expected
    assert m.prefill_ms.p50 == pytest.approx(2 * 2 + 5 + 28 * 2) and m.decode_ms_per_token.p50 == pytest.approx(61)


def test_prefill_head_figure_is_the_median_of_its_timings(monkeypatch):
    # the first head timing hit a stall (80 ms); the extra rounds time it at 5 ms twice more
    clock = FakeClock()
    clocked_torch_model(monkeypatch, clock, layer_ms=1.0, decode_head_ms=1.0,
                        prefill_head_ms=[1.0, 80.0, 5.0, 5.0])        # [warm-up, first prefill, rounds...]
    e = entry(num_hidden_layers=30)
    cfg = ProbeConfig(decode_steps=4, prefill_repeats=2, warmup_steps=1,
                      arch_probe=ArchProbeConfig(sample_share=1.0, sample_max_s=0.5))
    m, d = api.probe_architecture(e.id, e.arch, "fp32", 1, 16, new_tokens=64, device="cpu", config=cfg,
                                  budget_s=30, clock=clock)
    assert m.prefill_ms.n >= 4                                        # three head timings were taken
    assert d.prefill.lm_head_ms == pytest.approx(5.0)                 # not the 80 ms one
    # every prefill sample: 2 layers + the 5 ms head + 28 more layers
    assert (m.prefill_ms.p50, m.prefill_ms.max) == pytest.approx((2 + 5 + 28, 2 + 5 + 28))

"""Hardware microprobes: plausible rates, the budget, the memory cap, the cache."""

from __future__ import annotations

import pytest

from advisor.probe import api
from advisor.probe.base import Budget, BudgetExhausted, DoesNotFit

torch = pytest.importorskip("torch")


def test_microprobes_measure_plausible_cpu_rates():
    from advisor.probe.micro import run_microprobes

    r = run_microprobes("cpu", budget=Budget(30), fingerprint="fp")
    assert r.device == "cpu" and "fp32" in r.matmul_tflops and set(r.matmul_tflops) <= {"fp32", "bf16", "fp16"}
    assert 1e-4 < r.matmul_tflops["fp32"] < 100          # 0.1 GFLOPS .. 100 TFLOPS
    # decode-shaped (1-token) matmuls: weight bytes streamed per second, per measured dtype
    assert "fp32" in r.decode_gbs and all(0.01 < v < 10_000 for v in r.decode_gbs.values())
    assert set(r.decode_gbs) <= set(r.matmul_tflops)
    assert 0.1 < r.bandwidth_gbs < 10_000
    assert 0 < r.step_overhead_ms < 50
    assert r.per_layer_overhead_ms is not None and r.per_layer_overhead_ms >= 0
    assert r.torch_version == torch.__version__ and r.fingerprint == "fp"


def test_microprobes_respect_the_budget():
    from advisor.probe.micro import run_microprobes

    with pytest.raises(BudgetExhausted):
        run_microprobes("cpu", budget=Budget(0.0))


def test_a_slow_refinement_dtype_does_not_cost_the_bandwidth_probe(monkeypatch):
    # On a CPU without bf16 kernels (AMD Zen 3, seen 2026-12-01) one bf16 matmul probe took seconds and the
    # microprobes then failed "before the bandwidth probe": the required rates must come first
    from advisor.probe import micro

    clock = [0.0]
    budget = Budget(10.0, clock=lambda: clock[0])
    real = micro.matmul_tflops

    def matmul(device, fmt, shape, deadline):
        if fmt == "bf16":
            clock[0] += 11.0            # the whole budget and more, in one probe
            return 0.001
        return real(device, fmt, shape, deadline)

    monkeypatch.setattr(micro, "matmul_tflops", matmul)
    r = micro.run_microprobes("cpu", budget=budget, dtypes=["fp32", "bf16", "fp16"])
    # fp32 and the bandwidth are measured; bf16's matmul is kept, its GEMV and fp16 are skipped
    assert set(r.matmul_tflops) == {"fp32", "bf16"} and set(r.decode_gbs) == {"fp32"}
    assert r.bandwidth_gbs > 0 and r.per_layer_overhead_ms is not None


def test_microprobes_respect_the_memory_cap(monkeypatch):
    import advisor.probe.safety as safety
    from advisor.probe.micro import run_microprobes

    monkeypatch.setattr(safety, "free_memory_bytes", lambda device: 1 << 20)
    with pytest.raises(DoesNotFit):
        run_microprobes("cpu", budget=Budget(30))


def test_microprobe_rates_are_cached(monkeypatch):
    calls = []
    from advisor.estimate.schema import MeasuredRates
    from advisor.probe import micro

    canned = MeasuredRates(device="cpu", matmul_tflops={"fp32": 0.1}, bandwidth_gbs=20.0, step_overhead_ms=0.01)
    monkeypatch.setattr(micro, "run_microprobes", lambda *a, **kw: calls.append(1) or canned)
    first = api.microprobe_rates("cpu")
    assert api.microprobe_rates("cpu") == first and len(calls) == 1
    assert api.microprobe_rates("cpu", refresh=True) is not None and len(calls) == 2

"""An engine's own kernels (llama.cpp): prefill in ubatches with FP16 dequantisation, activation and score
traffic, rates by GPU generation, CPU int8 kernels on the threads a run uses, and older builds. Every figure is
hand-derived from the round-number fixture runtime (tests/fixtures/estimate-kernels/runtimes.yaml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from advisor.catalog.loader import load_catalog
from advisor.errors import UsageError
from advisor.estimate.device import DeviceSpec
from advisor.estimate.engine import resolve_runtime
from advisor.estimate.formats import weight_terms
from advisor.estimate.latency import Model, spec_rates
from tests.archs import tiny

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX / "estimate-kernels" / "runtimes.yaml", FIX / "estimate" / "formats.yaml"],
                                        include_builtin=False, include_env=False)
    assert not problems
    return catalog


@pytest.fixture(scope="module")
def rt(cat):
    return cat.runtimes["llama.cpp"]


def gpu(target: str) -> DeviceSpec:
    return DeviceSpec(id=target, name=target, kind="gpu", memory_bytes=10**10, count=1, bandwidth_gbs=1000,
                      peak_tflops={"fp16": 100, "bf16": 100, "fp32": 10}, workspace_key=target)


def model(cat, rt, device, fmt: str, **kw) -> Model:
    f = cat.formats[fmt]
    weights = sum(weight_terms(tiny(), f).values())
    return Model(tiny(), f, weights, 2, rt, spec_rates(device, f, rt, **kw))


def test_generation_picks_the_gemm_rate_and_the_decode_layer_cost(cat, rt):
    # fx-g is sm89 with FP16 accumulation at 2x the catalog fp16 peak: 100 x 2 x 0.25 = 50 TFLOPS
    r = spec_rates(gpu("fx-g"), cat.formats["fp16"], rt)
    assert (r.tflops, r.per_layer_ms, r.bandwidth_gbs) == (50.0, 0.5, 500.0)
    # bf16 has no FP16-accumulate path: 100 x 0.25
    assert spec_rates(gpu("fx-g"), cat.formats["bf16"], rt).tflops == 25.0
    # fx-a is sm80 (one FP16 rate): 100 x 0.5; a GPU the table does not name takes the defaults
    assert (spec_rates(gpu("fx-a"), cat.formats["fp16"], rt).tflops,
            spec_rates(gpu("fx-a"), cat.formats["fp16"], rt).per_layer_ms) == (50.0, 1.0)
    other = spec_rates(gpu("fx-x"), cat.formats["fp16"], rt)
    assert (other.tflops, other.per_layer_ms) == (10.0, 2.0)
    step = model(cat, rt, gpu("fx-a"), "fp16").decode_terms(1, 0)
    assert step["host_ms"] == 2 * 1.0                                     # two layers at the sm80 cost


def test_fp16_prefill_runs_in_ubatches_with_its_activation_and_score_traffic(cat, rt):
    t = model(cat, rt, gpu("fx-g"), "fp16").prefill_terms(1, 10)
    # ubatches of 8 then 2 tokens; each GEMM pass is bound by reading the 276,096 bytes of FP16 weights at
    # 500 GB/s (the 1.2 and 0.4 MFLOP of the two ubatches take far less at 50 TFLOPS)
    assert t["ubatches"] == 2
    assert t["gemm_ms"] == pytest.approx(2 * 1e3 * 276_096 / 500e9)
    # per token: 10 x 64 x 2 layers + 1 x 128 x 2 + 2 x (2 KV heads x 16) x 2 = 1,664 bytes; scores: 4 heads x
    # 2 layers x every cache cell so far (8 x 8, then 2 x 10), 4 bytes each
    traffic = 10 * 1664 + 4 * (4 * 2 * 8 * 8 + 4 * 2 * 2 * 10)
    assert t["traffic"] == traffic == 19_328
    assert t["elementwise_ms"] == pytest.approx(1e3 * traffic / 500e9)
    assert t["host_ms"] == 2 * 2 * 0.5                                    # per ubatch, per layer
    assert t["total_ms"] == pytest.approx(t["gemm_ms"] + t["elementwise_ms"] + t["host_ms"])


def test_quantised_weights_are_dequantised_to_fp16_unless_the_ubatch_is_small(cat, rt):
    m = model(cat, rt, gpu("fx-g"), "q4_k_m")                             # 138,048 x 5 bits = 86,280 bytes
    big = m.prefill_terms(1, 8)
    # read the quants, write 2 bytes per multiplied weight, then the GEMM reads that FP16 copy
    assert big["traffic"] == 86_280 + 2 * 73_728 + 8 * 1664 + 4 * (4 * 2 * 8 * 8)
    assert big["gemm_ms"] == pytest.approx(1e3 * 2 * 73_728 / 500e9)
    small = m.prefill_terms(1, 4)                                          # <= mmq_max_batch: quantised kernels
    assert small["traffic"] == 4 * 1664 + 4 * (4 * 2 * 4 * 4)
    assert small["gemm_ms"] == pytest.approx(1e3 * 86_280 / 500e9)


def test_cpu_int8_kernels_on_the_stated_threads(cat, rt):
    cpu = DeviceSpec(id="fx-cpu", name="fx-cpu", kind="cpu", memory_bytes=10**10, count=1, bandwidth_gbs=100,
                     peak_tflops={"fp32": 1.0}, cores=8, flags=("avx2",))
    q = cat.formats["q4_k_m"]
    r = spec_rates(cpu, q, rt, threads=4, decode_threads=2)
    # AVX2 int8 = 2 x the fp32 peak; prefill on 4 of 8 cores at 0.5: 1 x 2 x 0.5 x 0.5
    assert r.tflops == pytest.approx(0.5)
    # decode on 2 threads at half the prefill's per-thread rate: 1 x 2 x 0.5 x 0.5 x 2/8
    assert r.decode_tflops == pytest.approx(0.125)
    assert r.bandwidth_gbs == 50.0
    assert spec_rates(dataclasses.replace(cpu, flags=("i8mm",)), q, rt).tflops == pytest.approx(4.0)
    assert spec_rates(dataclasses.replace(cpu, flags=()), q, rt).tflops == pytest.approx(0.5)
    assert spec_rates(cpu, cat.formats["fp16"], rt).tflops == pytest.approx(0.5)   # float weights: no int8
    weights = sum(weight_terms(tiny(), q).values())
    flops = 2 * 73_728 + 2 * 64_000 + 4 * 4 * 16 * 2                      # one token, one key in each layer
    two = Model(tiny(), q, weights, 2, rt, r).decode_terms(1, 0)
    assert two["compute_ms"] == pytest.approx(1e3 * flops / 0.125e12)      # bound by its two threads
    assert two["total_ms"] == pytest.approx(two["compute_ms"] + two["kv_ms"])
    eight = Model(tiny(), q, weights, 2, rt, spec_rates(cpu, q, rt, decode_threads=8)).decode_terms(1, 0)
    assert eight["total_ms"] == pytest.approx(1e3 * weights / 50e9 + eight["kv_ms"])   # bound by DRAM


def test_an_older_build_replaces_its_constants_and_says_so(cat, rt):
    old = resolve_runtime(cat.runtimes, "llama.cpp@old")
    assert (old.id, old.version, old.prefill_per_layer_overhead_ms.value) == ("llama.cpp", "test build A", 3.0)
    assert old.gpu_kernels == rt.gpu_kernels and old.builds == []
    assert resolve_runtime(cat.runtimes, "Ollama@old").version == "test build A"
    assert resolve_runtime(cat.runtimes, "llama.cpp") is rt
    with pytest.raises(UsageError, match="unknown build 'new' of runtime llama.cpp"):
        resolve_runtime(cat.runtimes, "llama.cpp@new")
    t = model(cat, old, gpu("fx-g"), "fp16").prefill_terms(1, 8)
    assert t["host_ms"] == 2 * 3.0


def test_builtin_llama_cpp_lists_its_dec_2023_build_and_generations():
    catalog, problems, _ = load_catalog([], strict=False, include_env=False)
    lcpp = catalog.runtimes["llama.cpp"]
    assert lcpp.build_ids() == ["2023-12", "2024-09"]
    # neither older build repacked Q4_0 on x86 CPUs; the default (b4384) does
    assert lcpp.cpu.repack is not None and "avx2" in lcpp.cpu.repack.requires
    assert all(lcpp.for_build(b).cpu.repack is None for b in lcpp.build_ids())
    gk = lcpp.gpu_kernels
    assert {gk.generation(t) for t in ("a100-pcie-80gb", "rtx3090-24gb", "rtx4090-24gb", "h100-pcie-80gb")} == \
        {"sm80", "sm86", "sm89", "sm90"}
    assert gk.generation("mi300x-192gb") == "default"
    # every GPU target of the catalog is named (instances too), so none falls back silently
    gpus = [t for t in catalog.targets.values() if t.kind == "gpu" and not t.id.startswith("mi300")]
    assert all(gk.generation(t.id) != "default" for t in gpus), [t.id for t in gpus if gk.generation(t.id) == "default"]
    assert all(0 < v <= 1 for v in gk.matmul_efficiency.values.values())


def test_build_ids_must_be_unique(rt):
    from pydantic import ValidationError

    from advisor.catalog.runtimes import RuntimeProfile

    data = rt.model_dump()
    data["builds"] = data["builds"] * 2
    with pytest.raises(ValidationError, match="build ids must be unique"):
        RuntimeProfile.model_validate(data)


def test_llama_cpp_counts_a_local_cpus_flops_as_its_fitted_targets_do():
    # the CPU efficiencies were fitted on targets whose fp32 peak is cores x clock x 32 (two 256-bit FMA pipes);
    # a local AVX2+FMA CPU must be counted the same way, or every llama.cpp CPU estimate there is 2x slow
    import yaml

    from advisor.estimate.device import cpu_peak_tflops

    catalog, problems, _ = load_catalog([], strict=False, include_env=False)
    lcpp = catalog.runtimes["llama.cpp"]
    nodes = yaml.safe_load((Path(__file__).resolve().parents[1] / "benchmarks" / "data" /
                            "hardware-nodes.yaml").read_text())
    tr = next(t for t in nodes["targets"] if t["id"] == "cpu-threadripper-pro-5975wx")   # 32 Zen 3 cores, 3.6 GHz
    peak = cpu_peak_tflops(32, 3600, ["avx2", "fma"], lcpp)["fp32"]
    assert peak == pytest.approx(tr["peak_tflops"]["fp32"], rel=1e-3)
    assert cpu_peak_tflops(4, 3000, ["avx2"], lcpp)["fp32"] == pytest.approx(0.192)           # AVX2 without FMA: 16

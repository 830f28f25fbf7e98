"""The estimate engine's decisions (fit, alternatives, basis, bad input) and the `advisor estimate` command."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from advisor.catalog.loader import load_catalog
from advisor.errors import UsageError
from advisor.estimate.device import from_target
from advisor.estimate.engine import Request, estimate, estimate_entry
from advisor.estimate.schema import LatencyMeasurement, MeasuredRates, Spread
from tests.conftest import run_advisor

FIX = Path(__file__).parent / "fixtures" / "estimate"
CAT = str(FIX / "catalog.yaml")
PROFILE = str(FIX / "profile-gpu.json")


@pytest.fixture(scope="module")
def cat():
    catalog, problems, _ = load_catalog([FIX], include_builtin=False, include_env=False)
    assert not problems
    return catalog


def run(cat, model, target, fmt="bf16", runtime="transformers", **req):
    r = dict(fmt=fmt, kv_format="fp16", batch=1, prompt=512, new=128, gpus=1)
    r.update(req)
    return estimate_entry(cat.model(model), device=from_target(cat.target(target)), fmt=cat.format(fmt),
                          runtime=cat.runtimes[runtime], req=Request(**r), formats=cat.formats, targets=cat.targets,
                          runtimes=cat.runtimes)


def test_70b_on_24gb_does_not_fit_and_says_what_would(cat):
    est = run(cat, "fx-70b", "fx-gpu-24gb")
    m = est.memory
    assert (m.fits, m.verdict) == (False, "does-not-fit")
    assert m.per_device_bytes > m.available_bytes == 24 * 10**9
    assert m.fits_with_format is None                 # even int4 (35 GB of weights) exceeds 24 GB
    # 141.1 GB of bf16 weights over 24 GB GPUs: at least 6 (141.1 / 24 = 5.9), checked exactly below
    assert m.fits_with_gpus is not None and m.fits_with_gpus >= 6
    assert "fx-2gpu-80gb" in m.fits_on_targets and "fx-gpu-80gb" not in m.fits_on_targets
    assert m.explanation.startswith("Does not fit")
    assert "fx-2gpu-80gb" in m.explanation and f"{m.fits_with_gpus} x fx-gpu-24gb" in m.explanation
    assert est.latency.explanation.startswith("If it were held")


def test_fits_with_gpus_is_the_smallest_count(cat):
    m = run(cat, "fx-70b", "fx-gpu-24gb").memory
    # build a target with that many GPUs (and one fewer) and check directly
    t = cat.target("fx-gpu-24gb")
    for n, fits in ((m.fits_with_gpus, True), (m.fits_with_gpus - 1, False)):
        many = t.model_copy(update={"id": f"fx-{n}x24", "gpus": n})
        est = estimate_entry(cat.model("fx-70b"), device=from_target(many), fmt=cat.format("bf16"),
                             runtime=cat.runtimes["transformers"],
                             req=Request("bf16", "fp16", 1, 512, 128, n), formats=cat.formats, targets={})
        assert est.memory.fits is fits


def test_fits_with_format_is_the_least_compressed_that_fits(cat):
    est = run(cat, "fx-70b", "fx-gpu-80gb")
    assert not est.memory.fits and est.memory.fits_with_format == "int8"   # 70 GB int8 fits 80 GB; bf16 does not
    assert run(cat, "fx-70b", "fx-gpu-80gb", fmt="int8").memory.fits
    assert "at int8" in est.memory.explanation


def test_tensor_parallel_two_gpus_fit(cat):
    est = run(cat, "fx-70b", "fx-2gpu-80gb", gpus=2)
    assert est.memory.fits and est.memory.verdict == "fits"
    one = run(cat, "fx-70b", "fx-2gpu-80gb", gpus=1)
    assert est.memory.per_device_bytes < one.memory.per_device_bytes


def test_small_model_fits_with_spec_basis(cat):
    est = run(cat, "fx-tiny", "fx-gpu-24gb", prompt=100, new=10)
    assert est.memory.fits and est.memory.verdict == "fits"
    assert est.memory.fits_with_format is None and est.memory.fits_on_targets == []
    assert est.memory.basis == "spec" and est.latency.source == "spec"
    assert est.memory.peak_bytes == est.memory.weights_bytes + est.memory.kv_cache_bytes + est.memory.activations_bytes


def test_vllm_reports_pool_concurrency(cat):
    est = run(cat, "fx-tiny", "fx-gpu-24gb", runtime="vllm", prompt=100, new=10)
    m = est.memory
    assert m.available_bytes == int(24e9 * 0.5)                  # gpu_memory_utilization of the fixture
    # blocks of 16 tokens x 256 bytes; max_model_len defaults to prompt + new = 110 tokens
    assert m.max_model_len == 110
    assert m.max_concurrent_sequences == (m.kv_pool_bytes // (256 * 16)) * 16 // 110
    assert m.weights_bytes_per_device == m.weights_bytes
    assert est.runtime == "vllm" and est.runtime_version == "test 2"
    assert any("concurrent" in n for n in est.notes) and any("--max-model-len" in n for n in est.notes)


def test_max_model_len_and_memory_fraction_size_the_pool(cat):
    base = run(cat, "fx-tiny", "fx-gpu-24gb", runtime="vllm", prompt=100, new=10)
    longer = run(cat, "fx-tiny", "fx-gpu-24gb", runtime="vllm", prompt=100, new=10, max_model_len=1100)
    assert longer.memory.kv_pool_bytes == base.memory.kv_pool_bytes
    tokens = (base.memory.kv_pool_bytes // (256 * 16)) * 16           # the same pool, counted in tokens
    assert (base.memory.max_concurrent_sequences, longer.memory.max_concurrent_sequences) == (tokens // 110,
                                                                                            tokens // 1100)
    fuller = run(cat, "fx-tiny", "fx-gpu-24gb", runtime="vllm", prompt=100, new=10, memory_fraction=0.9)
    assert fuller.memory.available_bytes == int(24e9 * 0.9)
    assert fuller.memory.kv_pool_bytes - base.memory.kv_pool_bytes == int(24e9 * 0.9) - int(24e9 * 0.5)
    with pytest.raises(UsageError, match="shorter than prompt"):
        run(cat, "fx-tiny", "fx-gpu-24gb", runtime="vllm", prompt=100, new=10, max_model_len=50)


def test_a_format_the_developer_does_not_publish_is_labelled_not_refused(cat):
    est = run(cat, "fx-tiny", "fx-gpu-24gb", fmt="int4")       # fx-tiny publishes int8 only
    assert est.format_origin == "community or self-quantised"
    assert any("community or self-quantised" in n for n in est.notes)
    assert run(cat, "fx-tiny", "fx-gpu-24gb", fmt="int8").format_origin == "official"


def test_tensor_parallel_accepts_only_degrees_that_divide_the_heads(cat):
    est = run(cat, "fx-70b", "fx-node-80gb", runtime="vllm", gpus=2)
    assert est.parallel == "tensor" and est.memory.weights_bytes_per_device == -(-est.memory.weights_bytes // 2)
    with pytest.raises(UsageError, match="cannot split") as err:
        run(cat, "fx-70b", "fx-node-80gb", runtime="vllm", gpus=3)
    assert "2, 4, 8" in err.value.hint
    # what it would take: only valid degrees are suggested (64 heads, 8 KV heads: 2, 4, 8 on a node of 8)
    m = run(cat, "fx-70b", "fx-node-80gb", runtime="vllm").memory
    assert not m.fits and m.fits_with_gpus in (2, 4, 8)


def test_bad_requests_are_usage_errors(cat):
    with pytest.raises(UsageError, match="does not serve q4_k_m") as err:
        run(cat, "fx-tiny", "fx-gpu-24gb", fmt="q4_k_m")               # transformers does not load GGUF
    assert "llama.cpp" in err.value.hint
    with pytest.raises(UsageError, match="context of 4096"):
        run(cat, "fx-tiny", "fx-gpu-24gb", prompt=4000, new=200)
    with pytest.raises(UsageError, match="batch must be a positive integer"):
        run(cat, "fx-tiny", "fx-gpu-24gb", batch=0)
    with pytest.raises(UsageError, match="exceeds the 1 GPU.*no gpus_per_node"):
        run(cat, "fx-tiny", "fx-gpu-80gb", gpus=2)                     # a target without a node
    with pytest.raises(UsageError, match="needs a gpu target"):
        run(cat, "fx-tiny", "fx-cpu-64gb", runtime="vllm")


def test_api_uses_rates_and_measurements(cat):
    rates = MeasuredRates(device="cuda:0", matmul_tflops={"bf16": 50.0}, bandwidth_gbs=500.0, step_overhead_ms=2.0)
    est = estimate("fx-tiny", target="fx-gpu-24gb", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT],
                   rates=rates)
    assert est.latency.source == "calibrated" and est.latency.rates["bandwidth_gbs"] == 500.0
    m = LatencyMeasurement(model="fx-tiny", format="bf16", device="cuda:0", prompt_tokens=100, batch=1,
                           prefill_ms=Spread.from_values([5, 6, 7]), decode_ms_per_token=Spread.from_values([1, 2, 3]),
                           method="architecture-probe")
    est = estimate("fx-tiny", target="fx-gpu-24gb", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT],
                   measurement=m, runtime="transformers")
    assert est.latency.source == "measured" and est.latency.prefill_ms == 6
    # the architecture probe timed PyTorch: for the named GPU's default engine (vLLM) it is not a measurement
    est = estimate("fx-tiny", target="fx-gpu-24gb", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT],
                   measurement=m)
    assert est.runtime == "vllm" and est.latency.source == "spec" and est.latency.prefill_ms != 6


def test_local_target_calls_the_probes_and_records_why_they_skipped(cat, monkeypatch):
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", PROFILE)
    calls = []

    def fake(entry, fmt, batch, prompt_tokens, new_tokens, **kw):
        calls.append((entry.id, fmt, batch, prompt_tokens, new_tokens, kw.get("run")))
        return types.SimpleNamespace(rates=None, measurement=None, skipped="torch is not installed",
                                     from_cache=False, notes=[])

    monkeypatch.setitem(sys.modules, "advisor.probe.api", types.SimpleNamespace(local_calibration=fake))
    est = estimate("fx-tiny", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT])
    assert calls == [("fx-tiny", "bf16", 1, 100, 10, True)]
    assert est.target == "local" and est.latency.source == "spec"
    assert "probe skipped: torch is not installed" in est.notes
    assert est.memory.available_bytes == 24_000_000_000         # the detected GPU's memory
    calls.clear()
    estimate("fx-tiny", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT], probe=False)
    assert calls == []


# ---- the command itself ----

def test_cli_70b_on_24gb_explains(advisor_cli):
    r = advisor_cli("estimate", "fx-70b", "--catalog", CAT, "--target", "fx-gpu-24gb", "--no-probe",
                    "--runtime", "transformers", env={"COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "DOES NOT FIT" in out and "fx-2gpu-80gb" in out
    for term in ("weights", "logits", "prefill FLOPs", "bytes read per decode step", "time per output token",
                 "runtime: transformers"):
        assert term in out


def test_cli_json_has_every_basis(advisor_cli):
    r = advisor_cli("estimate", "fx-tiny", "--catalog", CAT, "--target", "fx-gpu-24gb", "--no-probe", "--json",
                    "--prompt-tokens", "100", "--new-tokens", "10", "--batch", "2", "--kv-format", "fp8")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["memory"]["verdict"] == "fits" and d["memory"]["basis"] == "spec"
    assert d["latency"]["source"] == "spec"
    assert (d["batch"], d["prompt_tokens"], d["new_tokens"], d["kv_format"]) == (2, 100, 10, "fp8")
    assert d["memory"]["kv_cache_bytes"] == 2 * 2 * 2 * 16 * 1 * 110 * 2     # fp8: 1 byte, batch 2


def test_cli_json_names_runtime_pool_and_split(advisor_cli):
    r = advisor_cli("estimate", "fx-70b", "--catalog", CAT, "--target", "fx-node-80gb", "--gpus", "4",
                    "--concurrency", "4", "--max-model-len", "2048", "--gpu-memory-utilization", "0.8",
                    "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["runtime"], d["parallel"], d["gpus"], d["batch"]) == ("vllm", "tensor", 4, 4)
    assert "vLLM" in d["runtime_version"]                 # the built-in profile's version assumption
    m = d["memory"]
    assert m["max_model_len"] == 2048 and m["memory_fraction"] == 0.8 and m["available_bytes"] == 64 * 10**9
    # (fx-node-80gb's memory_bytes 80e9 x 0.8)
    assert m["weights_bytes_per_device"] == -(-m["weights_bytes"] // 4) and m["kv_pool_bytes"] > 0
    assert m["verdict"] == "fits"
    assert m["max_concurrent_sequences"] >= 1
    lat = d["latency"]
    assert (lat["scheduling"], lat["concurrency"]) == ("continuous", 4)
    assert lat["tokens_per_s"] == pytest.approx(4 * 128 / (lat["e2e_ms"] / 1e3))


def test_cli_runtime_alias_and_cpu_target_default(advisor_cli):
    r = advisor_cli("estimate", "fx-tiny", "--catalog", CAT, "--target", "fx-gpu-24gb", "--runtime", "ollama",
                    "--format", "q4_k_m", "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "llama.cpp" and d["format_origin"] == "community or self-quantised"
    r = advisor_cli("estimate", "fx-tiny", "--catalog", CAT, "--target", "fx-cpu-64gb", "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["runtime"] == "llama.cpp"                  # the fixture's cpu-target default


def test_cli_local_target_from_a_profile_fixture(advisor_cli):
    r = advisor_cli("estimate", "fx-tiny", "--catalog", CAT, "--no-probe", "--json",
                    env={"ADVISOR_HARDWARE_FIXTURE": PROFILE})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["target"] == "local" and d["memory"]["available_bytes"] == 24_000_000_000
    assert (d["prompt_tokens"], d["new_tokens"]) == (512, 128)                 # documented defaults
    assert d["runtime"] == "transformers"                 # the local machine keeps what the probes measure


@pytest.mark.parametrize("args,needle", [
    (["fx-tinyy"], "unknown model"),
    (["fx-tiny", "--target", "fx-gpu-25gb"], "unknown target"),
    (["fx-tiny", "--format", "q4_k_m"], "does not serve q4_k_m"),
    (["fx-tiny", "--runtime", "vlm"], "unknown runtime"),
    (["fx-70b", "--target", "fx-node-80gb", "--gpus", "3"], "cannot split"),
    (["fx-tiny", "--max-model-len", "10"], "shorter than prompt"),
    (["fx-tiny", "--prompt-tokens", "5000"], "context"),
    (["fx-tiny", "--batch", "-1"], "positive"),
    (["fx-tiny", "--new-tokens", "0"], "positive"),
    (["fx-70b", "--target", "fx-2gpu-80gb", "--gpus", "3"], "exceeds the 2 GPU"),
])
def test_cli_bad_input_is_one_line_exit_2(advisor_cli, args, needle):
    target = [] if "--target" in args else ["--target", "fx-gpu-24gb"]
    r = advisor_cli("estimate", *args, *target, "--catalog", CAT, "--no-probe")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in r.stderr


def test_unmatched_local_gpu_needs_probe_figures(cat):
    from advisor.hardware.schema import GPUInfo, HardwareProfile

    prof = HardwareProfile(gpu_count=1, gpus=[GPUInfo(index=0, name="Mystery GPU", memory_total_bytes=10**10)])
    with pytest.raises(UsageError, match="no datasheet peaks"):
        estimate("fx-tiny", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT], profile=prof, probe=False)
    m = LatencyMeasurement(model="fx-tiny", format="bf16", device="cuda:0", prompt_tokens=100, batch=1,
                           prefill_ms=Spread.from_values([5.0]), decode_ms_per_token=Spread.from_values([2.0]),
                           method="architecture-probe")
    est = estimate("fx-tiny", prompt_tokens=100, new_tokens=10, catalog_paths=[CAT], profile=prof, measurement=m)
    assert est.latency.source == "measured" and est.latency.e2e_ms == pytest.approx(5 + 9 * 2)
    assert est.memory.available_bytes == 10**10


def test_estimate_mlflow_logs_a_run(tmp_path):
    """`advisor estimate --mlflow` logs the estimate as a run (real sqlite store)."""
    uri = f"sqlite:///{tmp_path / 'est.db'}"
    r = run_advisor("estimate", "qwen2.5-0.5b", "--target", "a10g-24gb", "--no-probe", "--json", "--mlflow",
                    "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("model-advisor").experiment_id])
    assert run.data.tags.get("advisor.kind") == "estimate" and run.info.status == "FINISHED"
    assert any("weights_bytes" in k for k in list(run.data.metrics) + list(run.data.params))

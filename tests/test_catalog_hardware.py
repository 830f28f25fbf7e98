"""Hardware targets: driver memory totals, instances, nodes, prices, NVML names; fits against NVML bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_advisor

from advisor.catalog.loader import load_catalog
from advisor.estimate import device as devmod
from advisor.estimate.engine import estimate
from advisor.hardware.match import match_target

FIX = Path(__file__).parent / "fixtures"
NVML_H100 = json.loads((FIX / "hardware" / "nvml-h100.json").read_text())


@pytest.fixture(scope="module")
def cat():
    cat, problems, _ = load_catalog(strict=False)
    assert problems == []
    return cat


def test_h100_device_memory_is_the_nvml_total(cat):
    total = NVML_H100["devices"][0]["memory"]["total"]
    assert total == 85_520_809_984
    t = cat.targets["h100-sxm-80gb"]
    assert t.memory_bytes == total and t.memory_gb == 80
    assert devmod.from_target(t).memory_bytes == total
    # the NVML name of that reading matches the target through hardware.yaml's nvml_names
    assert match_target(NVML_H100["devices"][0]["name"], total) == "h100-sxm-80gb"


def test_fit_on_a_named_target_is_checked_against_the_nvml_byte_total(cat):
    """A model that needs more than 80e9 bytes but less than the H100's 85,520,809,984 fits."""
    for prompt in (1024, 2048, 3072, 4096, 5120, 6144):
        est = estimate("qwen2.5-72b", target="h100-sxm-80gb", format="int8", prompt_tokens=prompt, new_tokens=128,
                       probe=False, runtime="transformers")   # the whole device, not vLLM's 90% pool
        if 80e9 < est.memory.per_device_bytes <= 85_520_809_984:
            break
    else:
        pytest.fail("no request in the range lands between 80e9 and the NVML total")
    assert est.memory.available_bytes == 85_520_809_984
    assert est.memory.fits and est.memory.verdict == "fits"
    # the same request against the marketing size (80 GB decimal, the old check) does not fit
    old = cat.targets["h100-sxm-80gb"].model_copy(update={"memory_bytes": None, "memory_source": None})
    from advisor.estimate.engine import Request, memory_for
    from advisor.estimate.latency import NO_SPLIT

    entry = cat.models["qwen2.5-72b"]
    view = memory_for(entry, cat.formats["int8"], Request("int8", "fp16", 1, prompt, 128, 1),
                      devmod.from_target(old), cat.runtimes["transformers"], NO_SPLIT)
    assert view.available == 80_000_000_000 and not view.fits


def test_corrected_figures(cat):
    a10g = cat.targets["a10g-24gb"]
    assert (a10g.peak_tflops["bf16"], a10g.peak_tflops["fp16"], a10g.peak_tflops["fp32"]) == (70, 70, 35)
    assert "int8" not in a10g.peak_tflops           # unverified: left out, said in notes
    assert cat.targets["t4-16gb"].memory_bandwidth_gbs == 320
    assert cat.targets["h100-sxm-80gb"].peak_tflops["fp8"] == 1979
    assert cat.targets["l40s-48gb"].peak_tflops["fp8"] == 733
    assert "fp8" not in cat.targets["a100-80gb"].peak_tflops


def test_every_gpu_device_target_has_a_price_or_says_why_not(cat):
    for t in cat.targets.values():
        if t.kind != "gpu":
            continue
        if t.price_per_hour_usd is None:
            assert "price" in (t.notes or "").lower(), t.id
        else:
            assert t.price_source and t.price_region and t.price_date, t.id


def test_consumer_and_pcie_gpus_carry_their_node(cat):
    """The node of every GPU the published serving rows use: PCIe links, a sourced count per node."""
    targets = {t: cat.targets[t] for t in ("rtx3090-24gb", "rtx4090-24gb", "h100-pcie-80gb")}
    nodes = {t: (x.gpus_per_node, x.interconnect.kind, x.interconnect.bandwidth_gbs) for t, x in targets.items()}
    assert nodes == {"rtx3090-24gb": (6, "pcie", 64), "rtx4090-24gb": (8, "pcie", 64),
                     "h100-pcie-80gb": (4, "pcie", 128)}
    notes = cat.targets["rtx4090-24gb"].notes
    assert "ASSUMPTION" in notes and "found 8 CUDA devices" in notes
    assert devmod.from_target(cat.targets["h100-pcie-80gb"]).node_known


def test_cloud_instances_point_at_their_device(cat):
    wanted = {"aws-g5.12xlarge": ("a10g-24gb", 4), "aws-g6e.12xlarge": ("l40s-48gb", 4),
              "aws-p4d.24xlarge": ("a100-40gb", 8), "aws-p5.48xlarge": ("h100-sxm-80gb", 8)}
    for tid, (device, gpus) in wanted.items():
        t = cat.targets[tid]
        d = cat.targets[device]
        assert (t.device, t.gpus, t.cloud) == (device, gpus, "aws")
        assert t.memory_bytes == d.memory_bytes and t.peak_tflops == d.peak_tflops and t.interconnect == d.interconnect
        assert t.price_per_hour_usd == pytest.approx(t.instance_price_per_hour_usd / gpus, rel=1e-3)
        assert devmod.from_target(t).count == gpus
    clouds = {t.cloud for t in cat.targets.values() if t.device and t.gpus == 8}
    assert {"aws", "gcp", "azure"} <= clouds
    assert cat.targets["aws-p5.48xlarge"].interconnect.kind == "nvlink"
    assert cat.targets["aws-g5.12xlarge"].interconnect.kind == "pcie"


def test_instance_with_an_unknown_device_is_a_clean_problem(tmp_path):
    (tmp_path / "hw.yaml").write_text(
        "targets:\n  - {id: my-node, name: My node, kind: gpu, device: h100-sxm-80gbb, gpus: 8}\n"
        "  - {id: cheap, name: Cheap, kind: gpu, memory_gb: 24, memory_bandwidth_gbs: 300, peak_tflops: {fp16: 100},"
        " source: https://example.org/spec, price_per_hour_usd: 1.0, price_source: https://example.org/p}\n")
    _, problems, _ = load_catalog([str(tmp_path / "hw.yaml")], strict=False)
    text = [str(p) for p in problems]
    assert any("my-node" in t and "unknown device target 'h100-sxm-80gbb'" in t and "did you mean" in t
               for t in text), text
    assert any("cheap" in t and "price_region" in t and "price_date" in t for t in text), text


def test_an_instance_price_must_agree_with_its_per_gpu_price(tmp_path):
    (tmp_path / "hw.yaml").write_text(
        "targets:\n  - {id: n, name: N, kind: gpu, device: a10g-24gb, gpus: 4, instance_price_per_hour_usd: 8,"
        " price_per_hour_usd: 1, price_source: https://example.org/p, price_region: r, price_date: 2026-01}\n")
    _, problems, _ = load_catalog([str(tmp_path / "hw.yaml")], strict=False)
    assert any("not instance price / gpus" in str(p) for p in problems)


def test_memory_bytes_far_from_the_marketing_size_is_caught(tmp_path):
    (tmp_path / "hw.yaml").write_text(
        "targets:\n  - {id: x, name: X, kind: gpu, memory_gb: 80, memory_bytes: 8552080998, memory_source: a reading,"
        " memory_bandwidth_gbs: 3350, peak_tflops: {bf16: 989}, source: https://example.org/spec}\n")
    _, problems, _ = load_catalog([str(tmp_path / "hw.yaml")], strict=False)
    assert any("a typo?" in str(p) for p in problems)


def test_low_precision_peaks_fall_back_to_the_16bit_rate(cat):
    a100 = devmod.from_target(cat.targets["a100-80gb"])
    assert a100.tflops("fp8") == 312                  # no fp8 mode: 16-bit tensor cores, not fp32's 19.5
    assert a100.tflops("mxfp4") == 312
    assert devmod.from_target(cat.targets["h100-sxm-80gb"]).tflops("fp8") == 1979


def test_cli_lists_targets_with_nodes_and_prices():
    r = run_advisor("catalog", "list", "--targets", "--json")
    assert r.returncode == 0, r.stderr
    rows = {t["id"]: t for t in json.loads(r.stdout)["targets"]}
    p5 = rows["aws-p5.48xlarge"]
    assert (p5["gpus"], p5["device"], p5["price_per_gpu_hour_usd"], p5["price_region"]) == (8, "h100-sxm-80gb", 6.88,
                                                                                            "us-east-1")
    assert p5["interconnect"]["bandwidth_gbs"] == 900
    assert rows["h100-sxm-80gb"]["device_memory_bytes"] == 85_520_809_984
    r = run_advisor("catalog", "show", "aws-g5.12xlarge", "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["device"] == "a10g-24gb" and shown["derived"]["gpus"] == 4

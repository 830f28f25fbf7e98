"""benchmarks/serving_accuracy.py: every published row is estimable, and no constant was fitted on a held-out row.

The accuracy goals themselves are the script's to print (benchmarks, not unit tests); these tests check its
bookkeeping: the split, the coverage, and that runtimes.yaml's 'fitted' sources name only FIT rows.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import serving_accuracy as bench  # noqa: E402


@pytest.fixture(scope="module")
def published():
    return json.loads((REPO / "benchmarks" / "data" / "published-serving.json").read_text())


def test_split_holds_out_every_third_row_per_runtime(published):
    splits = bench.split_rows(published["rows"])
    by_runtime: dict[str, list[str]] = {}
    for r in published["rows"]:
        by_runtime.setdefault(r["runtime"], []).append(splits[r["id"]])
    for rt, seq in by_runtime.items():
        assert seq[1::3] == ["holdout"] * len(seq[1::3]), rt
        assert "holdout" not in seq[0::3] + seq[2::3], rt
    assert sum(v == "holdout" for v in splits.values()) == 23


def test_no_runtime_constant_was_fitted_on_a_held_out_row(published):
    splits = bench.split_rows(published["rows"])
    held = {rid for rid, sp in splits.items() if sp == "holdout"}
    boot = json.loads((REPO / "benchmarks" / "data" / "vllm-bootlogs.json").read_text())["rows"]
    ids = {r["id"] for r in published["rows"]} | {r["id"] for r in boot}
    text = (REPO / "catalog" / "runtimes.yaml").read_text()
    named = {m for m in re.findall(r"[a-z0-9][a-z0-9.+_-]*[a-z0-9]", text) if m in ids}
    assert named, "runtimes.yaml names the rows its fitted constants saw"
    assert not named & held, f"fitted on held-out rows: {sorted(named & held)}"
    boot_rows, _ = bench.boot_checks(bench.load()[0])
    boot_held = {r["row"] for r in boot_rows if r["split"] == "holdout"}
    assert not named & boot_held


def test_every_published_row_is_estimated_with_its_own_conditions(published):
    cat, _ = bench.load()
    cases, skipped = bench.cases_from(cat)
    assert not skipped and len(cases) == len(published["rows"]) == 70
    bench.evaluate(cases, cat)
    checks = [k for c in cases for k in c.checks]
    assert {k.kind for k in checks} == set(bench.KINDS)
    assert all(k.predicted > 0 for k in checks)
    tp = next(c for c in cases if c.row["id"] == "trt061-h100x4-llama70b-fp8-ttft-in128")
    assert (tp.gpus, tp.split_kind, tp.runtime, tp.fmt) == (4, "tensor", "tensorrt-llm", "fp8")
    split = next(c for c in cases if c.row["id"] == "xjd-rtx3090x2-llama3-70b-q4km")
    assert (split.gpus, split.split_kind, split.runtime, split.fmt) == (2, "layer", "llama.cpp", "q4_k_m")
    assert next(c for c in cases if c.row["runtime"] == "other").runtime == "gpt-fast"


def test_the_script_prints_its_goals(capsys):
    code = bench.main(["--json"])
    out = json.loads(capsys.readouterr().out)
    assert set(out["goals"]) == {"coverage", "median", "p90", "bootlogs"}
    assert code == (0 if all(out["goals"].values()) else 1)
    assert out["summary"]["all"]["all"]["coverage"] == 1.0


def test_main_keeps_shifting_its_context():
    # n_ctx 5 after a 4-token prompt: steps at 4, then a full cache drops (5 - 1) // 2 = 2 cells -> 3, 4, 3
    assert bench.main_decode_context(prompt=4, evals=4, n_ctx=5) == (4 + 3 + 4 + 3) / 4
    # the Dec-2023 rows: 1,023 steps after 494 tokens in a 512-cell cache stay between 257 and 511 tokens
    assert bench.main_decode_context(prompt=494, evals=1023, n_ctx=512) == pytest.approx(384.33, abs=0.01)


def test_cpu_threads_are_read_from_the_row():
    row = {"where_in_source": "table: llama 8B Q4_0 | Zen4 | 16 | pp512 | 123.46 ; llama 8B Q4_0 | Zen4 | 4 | tg128"}
    assert bench.cpu_threads(row) == (16, 4)
    assert bench.cpu_threads({"where_in_source": "no thread counts"}) == (0, 0)


def test_rows_carry_their_build_threads_and_isa():
    cat, notes = bench.load()
    cases = {c.row["id"]: c for c in bench.cases_from(cat)[0]}
    dec = [c for c in cases.values() if str(c.row["runtime_version"]).startswith("Dec 2023")]
    assert dec and all(c.build == "2023-12" for c in dec)
    assert {c.target for c in dec if "a100" in c.row["id"]} == {"a100-pcie-80gb"}   # the notebooks' A100 PCIe
    assert cases["xjd-rtx4090-llama3-8b-q4km"].build is None
    zen4 = cases["lcpp-mainline-ryzen7950x-llama31-8b-q4_0"]
    assert zen4.threads == (16, 4) and "avx512_vnni" in zen4.cpu_flags
    # the Sep-2024 CPU rows predate x86 Q4_0 repacking (their build drops it); the Dec-2024 rows (b4384) do not
    assert zen4.build == cases["lcpp-mainline-ryzen5975wx-llama31-8b-q4_0"].build == "2024-09"
    dec2024 = cases["lcpp-mainline-ryzen7950x-llama31-8b-q4_0-dec2024"]
    assert dec2024.build is None
    # the ISA is the CPU's (a native build), whatever the source's table is headed: the Ryzen 7950X's "AVX2"
    # table of Dec 2024 ran with AVX-512 VNNI like its "Zen4" one of Sep 2024; the Zen 3 Threadripper has AVX2
    assert dec2024.threads == (16, 2) and dec2024.cpu_flags == zen4.cpu_flags
    assert cases["lcpp-mainline-ryzen5975wx-llama31-8b-q4_0"].cpu_flags == ("avx2",)
    assert cases["lcpp-mainline-m2max-cpu-llama31-8b-q4_0"].build is None
    assert cases["lcpp-mainline-m2max-cpu-llama31-8b-q4_0"].cpu_flags[-1] == "i8mm"
    # hardware.yaml now holds every GPU's node data: the overlay only adds the three CPU targets
    overlay = next(n for n in notes if "hardware-nodes.yaml" in n)
    assert "rtx" not in overlay and "h100" not in overlay and overlay.count("cpu-") == 3


def test_the_earlier_isa_reading_is_kept_to_compare(monkeypatch):
    # --isa-from-table: the heading names the ISA ("AVX2" for the Dec-2024 7950X table), as before 2026-12-01
    monkeypatch.setattr(bench, "ISA_FROM_TABLE", True)
    cat, _ = bench.load()
    cases = {c.row["id"]: c for c in bench.cases_from(cat)[0]}
    dec2024 = cases["lcpp-mainline-ryzen7950x-llama31-8b-q4_0-dec2024"]
    assert dec2024.cpu_flags == ("avx2",) and any("the table's heading" in a for a in dec2024.assumptions)
    assert "avx512_vnni" in cases["lcpp-mainline-ryzen7950x-llama31-8b-q4_0"].cpu_flags     # headed "Zen4"


def test_leave_one_out_refits_without_the_row_and_never_touches_held_out_rows():
    cat, _ = bench.load()
    cases, _ = bench.cases_from(cat)
    fit_rows = {c.row["id"] for c in cases if c.runtime == "gpt-fast" and c.checks[0].split == "fit"}
    # the int4 row is the only one that determines the int4 efficiency: without it, that constant stays at the
    # neutral start instead of keeping the catalog's value (fitted with the row)
    left_out = "gptfast-a100-llama2-7b-int4g32"
    fitted = bench.fit(cases, cat, only={"gpt-fast"}, exclude=frozenset({left_out}), neutral=True)["gpt-fast"]
    assert left_out not in fitted["rows"] and set(fitted["rows"]) == fit_rows - {left_out}
    assert fitted["params"]["bandwidth_efficiency.values.int4"] == pytest.approx(bench.NEUTRAL_EFFICIENCY)
    assert fitted["params"]["bandwidth_efficiency.values.int8"] != pytest.approx(bench.NEUTRAL_EFFICIENCY, abs=0.01)
    results = bench.cross_validate(cases, cat, {"gpt-fast"})
    assert {r["row"] for r in results} == fit_rows
    by_row = {r["row"]: r for r in results}
    # predicted with the neutral int4 efficiency (0.5 of peak) instead of the fitted 0.473: faster than published
    assert by_row[left_out]["error"] > 0.0

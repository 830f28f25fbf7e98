"""benchmarks/llamacpp_repack.py: how llama-bench's rows become repack ratios, and that the catalog's factor is
the recorded measurement's (no llama.cpp is built or run here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import llamacpp_repack as repack  # noqa: E402


def bench_rows(pp: dict[int, float], tg: dict[int, float]) -> list[dict]:
    """llama-bench -o json rows: a pp test has n_gen 0, a tg test n_prompt 0."""
    return ([{"n_prompt": 512, "n_gen": 0, "n_threads": t, "avg_ts": v, "stddev_ts": 0.5} for t, v in pp.items()]
            + [{"n_prompt": 0, "n_gen": 128, "n_threads": t, "avg_ts": v, "stddev_ts": 0.1} for t, v in tg.items()])


def test_ratios_pair_each_test_and_thread_count():
    on = repack.summarise(bench_rows({1: 30.0, 2: 50.0}, {1: 12.0, 2: 20.0}))
    off = repack.summarise(bench_rows({1: 20.0, 2: 40.0}, {1: 10.0}))
    assert on[("pp", 2)] == (50.0, 0.5) and on[("tg", 1)] == (12.0, 0.1)
    # tg on 2 threads has no plain partner: left out rather than guessed
    assert repack.ratios(on, off) == {"pp@t1": 1.5, "pp@t2": 1.25, "tg@t1": 1.2}
    rows = [{"ratio": {"pp@t1": 1.5, "tg@t1": 1.2}}, {"ratio": {"pp@t1": 1.1, "tg@t1": 1.0}},
            {"ratio": {"pp@t1": 1.3}}]
    assert repack.summary(rows) == {"pp@t1": 1.3, "tg@t1": 1.1}


def test_without_the_binaries_it_measures_nothing_and_says_so(capsys, tmp_path):
    assert repack.main(["--bench-on", str(tmp_path / "none"), "--bench-off", str(tmp_path / "none")]) == 0
    assert "nothing measured" in capsys.readouterr().out


@pytest.fixture(scope="module")
def recorded():
    return json.loads((REPO / "benchmarks" / "data" / "llamacpp-repack-measured.json").read_text())["measurements"]


def test_the_catalogs_repack_factor_is_the_recorded_measurement(recorded):
    from advisor.catalog.loader import load_catalog

    catalog, problems, _ = load_catalog([], strict=False, include_env=False)
    rp = catalog.runtimes["llama.cpp"].cpu.repack
    assert rp.formats == ["gguf_q4_0"] and rp.requires == ["avx2"]
    (m,) = [m for m in recorded if "0.3.5" in m["build"]["source"]]
    assert {r["model"] for r in m["rows"]} == {"llama-3.2-1b", "in-cache"}
    # the factor: the median of the recorded ratios over both models and both thread counts, per test
    pp = sorted(r["ratio"][k] for r in m["rows"] for k in r["ratio"] if k.startswith("pp@"))
    tg = sorted(r["ratio"][k] for r in m["rows"] for k in r["ratio"] if k.startswith("tg@"))
    median = lambda xs: (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2   # noqa: E731 (four values each)
    assert len(pp) == len(tg) == 4
    assert rp.prefill.value == round(median(pp), 2) and rp.decode.value == round(median(tg), 2)
    assert "llamacpp-repack-measured.json" in rp.prefill.source and "llamacpp-repack-measured.json" in rp.decode.source

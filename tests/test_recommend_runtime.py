"""recommend models each target with its runtime: vLLM on named GPU targets unless told otherwise."""

from __future__ import annotations

import pytest

from advisor.errors import UsageError
from advisor.recommend.engine import recommend


@pytest.fixture(scope="module")
def rec():
    return recommend("chat", targets=["a10g-24gb"], probe=False, max_params=9e9)


def test_named_gpu_target_defaults_to_vllm(rec):
    [t] = rec.targets
    assert t.runtime == "vllm" and "vLLM" in t.runtime_version
    assert {c.runtime for c in rec.candidates} == {"vllm"}
    assert any("figures model the vllm runtime" in n for n in rec.notes)


def test_community_formats_are_offered_and_labelled(rec):
    by_origin = {}
    for c in rec.candidates:
        by_origin.setdefault(c.format_origin, set()).add(c.format)
    # vLLM's usual community formats appear for models without an official one, marked as such
    assert {"fp8", "awq"} <= by_origin["community or self-quantised"]
    assert "bf16" in by_origin["official"]
    llama = {c.format: c.format_origin for c in rec.candidates if c.model == "llama-3.1-8b"}
    assert llama["bf16"] == "official" and llama["awq"] == "community or self-quantised"


def test_runtime_flag_switches_every_candidate():
    r = recommend("chat", targets=["a10g-24gb"], probe=False, max_params=2e9, runtime="ollama")
    assert r.targets[0].runtime == "llama.cpp"
    assert {c.runtime for c in r.candidates} == {"llama.cpp"}
    assert "q4_k_m" in {c.format for c in r.candidates}
    with pytest.raises(UsageError, match="unknown runtime"):
        recommend("chat", targets=["a10g-24gb"], probe=False, runtime="vlm")

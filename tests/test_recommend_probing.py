"""recommend on the real local CPU with probes: microprobes calibrate, leaders get measured, cache reused."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES

torch = pytest.importorskip("torch")
TINY = str(FIXTURES / "catalog" / "tiny-models.yaml")


@pytest.mark.slow
def test_probes_calibrate_and_measure_the_leaders_then_reuse_the_cache():
    from advisor.recommend.engine import recommend

    first = recommend("tiny-task", targets=["local"], catalog_paths=[TINY], user_models_only=True,
                      probe=True, budget_s=60, formats=["fp32"])
    kinds = [p["kind"] for p in first.probes]
    assert "microprobes" in kinds and "architecture-probe" in kinds
    by_key = {c.key: c for c in first.candidates}
    measured = [c for c in first.candidates if c.latency_basis == "measured"]
    assert measured, "the small-tier leader must have been timed"
    leader = max((c for c in first.candidates if c.passed), key=lambda c: c.quality_proxy)
    assert by_key[leader.key].latency_basis in ("measured", "calibrated")
    assert all(c.latency_basis in ("measured", "calibrated") for c in first.candidates)
    assert any("calibrated with microprobes" in n for n in first.notes)

    second = recommend("tiny-task", targets=["local"], catalog_paths=[TINY], user_models_only=True,
                       probe=True, budget_s=60, formats=["fp32"])
    assert all(p["from_cache"] for p in second.probes)
    # same cache, same figures: deterministic
    strip = lambda r: [c.model_dump() for c in r.candidates]  # noqa: E731
    assert strip(first) == strip(second)


def test_no_probe_keeps_spec_figures():
    from advisor.recommend.engine import recommend

    rec = recommend("tiny-task", targets=["local"], catalog_paths=[TINY], user_models_only=True, probe=False)
    assert rec.probes == [] and all(c.latency_basis == "spec" for c in rec.candidates)

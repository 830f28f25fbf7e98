"""The verdict's sentence when the closest large model fails: the quality gap reads the right way round."""
from __future__ import annotations

import re

import pytest

from advisor.recommend.explain import verdict
from tests.test_recommend_probing_cap import candidate


def large_miss(quality: float):
    c = candidate("big", quality, measured=False, passed=False)
    return c.model_copy(update={"tier": "large", "reasons": ["p95 end-to-end 30.16 s exceeds the budget"]})


@pytest.mark.parametrize("large_quality, words", [(92.5, "2.5 quality-proxy points higher"),
                                                  (87.7, "2.3 quality-proxy points lower")])
def test_the_closest_large_models_gap_has_no_double_negative(large_quality, words):
    pick = candidate("small", 90.0, measured=True, passed=True)
    text = verdict("this machine", pick, pick, None, large_miss(large_quality), 20_000.0)
    assert text.startswith("Use small (fp32): the closest large model, big (fp32), p95 end-to-end 30.16 s")
    assert f"it would score {words}" in text
    assert not re.search(r"it would score -", text)

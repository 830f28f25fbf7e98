"""Property-based fuzzing of every input a user writes (tests/fuzzing.py has the generators).

Each kind runs ADVISOR_FUZZ_CASES generated cases (default 100) in-process through the real CLI
entry point; every case must end in success or a clean error (exit 0/1, or exit 2 with one
"error:" line), never a traceback, an internal error or a hang. A small sample of each kind also
runs as `python -m advisor` in a subprocess, and must agree with the in-process outcome.
benchmarks/fuzz_inputs.py runs the same generators at >= 5,000 cases per kind.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests import fuzzing
from tests.fuzzing import KINDS, run_case, run_case_subprocess, strategy

CASES = int(os.environ.get("ADVISOR_FUZZ_CASES", "100"))  # 200 until 2026-12-01: 195 s of a 2-core run
SUBPROCESS_SAMPLE = int(os.environ.get("ADVISOR_FUZZ_SUBPROCESS", "1"))
CASE_TIMEOUT_S = float(os.environ.get("ADVISOR_FUZZ_CASE_TIMEOUT_S", "6"))
STOP_AFTER = 5  # crashes per kind before giving up (each hang costs CASE_TIMEOUT_S)


@pytest.mark.parametrize("kind", KINDS)
def test_generated_inputs_end_cleanly(kind, tmp_path):
    crashes: list[str] = []
    mismatches: list[str] = []
    counter = [0]

    @seed(int(os.environ.get("ADVISOR_FUZZ_SEED", "8")))
    @settings(max_examples=CASES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy(kind))
    def check(case):
        if len(crashes) >= STOP_AFTER:
            return
        i = counter[0]
        counter[0] += 1
        out = run_case(case, tmp_path / str(i), timeout=CASE_TIMEOUT_S)
        if out.crash:
            case.save(tmp_path / f"crash-{i}")
            crashes.append(f"{out.crash}\n    reproducer: {tmp_path / f'crash-{i}'}\n    {case.describe(200)}")
        if i < SUBPROCESS_SAMPLE:
            sub = run_case_subprocess(case, tmp_path / f"sub-{i}")
            if (sub.rc, bool(sub.crash)) != (out.rc, bool(out.crash)):
                mismatches.append(f"in-process rc={out.rc} {out.crash}; subprocess rc={sub.rc} {sub.crash}; "
                                  f"{case.describe(200)}\n{sub.stderr[-500:]}")

    check()
    assert counter[0] > 0
    assert not crashes, f"{len(crashes)} crashing case(s) of kind {kind}:\n" + "\n".join(crashes)
    assert not mismatches, "\n".join(mismatches)


def test_classify_rules():
    assert fuzzing.classify(0, "", "") is None
    assert fuzzing.classify(1, "", "error: something failed\nerror: another\n") is None
    assert fuzzing.classify(2, "", "warning: x\nerror: bad file\n") is None
    assert fuzzing.classify(2, "", "") is not None
    assert fuzzing.classify(2, "", "error: a\nerror: b\n") is not None
    assert fuzzing.classify(1, "", "error: internal error: KeyError: 'x'\n") is not None
    assert fuzzing.classify(3, "", "error: MLflow down\n") is not None
    assert fuzzing.classify(0, "", "Traceback (most recent call last):\n") is not None


def test_a_hang_is_caught_and_reported(tmp_path, monkeypatch):
    """The harness itself: a case that never ends counts as a crash instead of blocking the run."""
    import time

    case = fuzzing.Case("catalog", {"user.yaml": b"models: []\n"}, ["catalog", "validate", "{dir}/user.yaml"])
    import advisor.catalog.loader as loader

    monkeypatch.setattr(loader, "catalog_files", lambda p: time.sleep(60))
    out = run_case(case, tmp_path, timeout=0.5)
    assert out.crash and out.crash.startswith("hang")

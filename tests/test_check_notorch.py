"""`advisor check` on named targets works where torch is not installed (the CI gate install)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECK = Path(__file__).parent / "fixtures" / "check"


@pytest.fixture
def no_torch_env(tmp_path):
    log = tmp_path / "torch-imports.log"
    path = os.pathsep.join([str(CHECK / "no_torch"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"PYTHONPATH": path, "ADVISOR_TEST_TORCH_LOG": str(log)}, log


@pytest.mark.parametrize("args, expected", [
    (["gate-small", "--max-latency-ms", "600000"], 0),
    (["gate-large", "--max-latency-ms", "3000"], 1),
    (["--model-path", str(CHECK / "tiny-model")], 0),
])
def test_named_target_check_without_torch(advisor_cli, no_torch_env, tmp_path, args, expected):
    env, log = no_torch_env
    junit = tmp_path / "junit.xml"
    proc = advisor_cli("check", *args, "--target", "gate-gpu-24gb", "--catalog", str(CHECK / "catalog.yaml"),
                       "--no-mlflow", "--junit", str(junit), env=env)
    assert proc.returncode == expected, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert ("PASSED" if expected == 0 else "FAILED") in proc.stdout
    assert junit.is_file()
    assert not log.exists(), f"torch was imported: {log.read_text()}"


def test_the_blocker_really_hides_torch(advisor_cli, no_torch_env):
    """Guards the test above: with the blocker, `advisor probe` (which needs torch) cannot run it."""
    import subprocess
    import sys

    env, _ = no_torch_env
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr

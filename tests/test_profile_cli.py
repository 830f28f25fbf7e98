"""`advisor profile` run the way users run it: a subprocess."""

from __future__ import annotations

import importlib.util
import json

from advisor.hardware.profile import TORCH_MISSING_NOTE
from advisor.hardware.schema import HardwareProfile
from tests.conftest import run_advisor


def hw(fixtures, name):
    return str(fixtures / "hardware" / name)


def test_profile_json_on_this_machine():
    out = run_advisor("profile", "--json")
    assert out.returncode == 0, out.stderr
    prof = HardwareProfile.model_validate_json(out.stdout)
    assert prof.source == "detected"
    assert len(prof.fingerprint) == 16
    assert prof.gpu_count == len(prof.gpus)
    assert prof.cpu.logical_cores and prof.cpu.ram_total_bytes
    assert prof.torch is not None and prof.torch.installed == (importlib.util.find_spec("torch") is not None)
    if not prof.gpus:  # the machines without a GPU must say why
        assert any("CPU-only" in n for n in prof.notes)


def test_profile_json_from_a_two_gpu_fixture(fixtures):
    out = run_advisor("profile", "--json", env={"ADVISOR_HARDWARE_FIXTURE": hw(fixtures, "gpu-2x24gb.json")})
    assert out.returncode == 0, out.stderr
    prof = HardwareProfile.model_validate(json.loads(out.stdout))
    assert prof.source == "fixture" and prof.gpu_count == 2
    assert {g.name for g in prof.gpus} == {"NVIDIA GeForce RTX 3090"}
    assert prof.cuda_driver_version == "12.8"


def test_profile_human_cpu_only(fixtures):
    out = run_advisor("profile", env={"ADVISOR_HARDWARE_FIXTURE": hw(fixtures, "cpu-16gb.json")})
    assert out.returncode == 0, out.stderr
    assert "GPUs: none" in out.stdout
    assert "16.00 GB total" in out.stdout
    assert "Intel(R) Core(TM) i7-1260P" in out.stdout
    assert "CPU-only" in out.stdout
    assert out.stderr == ""


def test_profile_human_gpu(fixtures):
    out = run_advisor("profile", env={"ADVISOR_HARDWARE_FIXTURE": hw(fixtures, "gpu-80gb.json"), "COLUMNS": "160"})
    assert out.returncode == 0, out.stderr
    assert "NVIDIA H100 80GB HBM3" in out.stdout
    assert "3352 GB/s" in out.stdout and "9.0 hopper" in out.stdout and "700 W" in out.stdout
    assert "CUDA driver 13.0" in out.stdout


def test_profile_says_when_torch_is_missing(fixtures, tmp_path):
    doc = json.loads((fixtures / "hardware" / "cpu-16gb.json").read_text())
    doc["torch"] = {"installed": False}
    path = tmp_path / "no-torch.json"
    path.write_text(json.dumps(doc))
    out = run_advisor("profile", env={"ADVISOR_HARDWARE_FIXTURE": str(path), "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert TORCH_MISSING_NOTE in out.stdout


def test_profile_no_torch_says_backends_unchecked():
    out = run_advisor("profile", "--no-torch", env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    if importlib.util.find_spec("torch") is not None:
        assert "backends not checked (--no-torch)" in out.stdout
    else:
        assert TORCH_MISSING_NOTE in out.stdout


def test_profile_named_target_from_a_user_catalog(fixtures):
    out = run_advisor("profile", "--json", "--target", "test-h100-80gb", "--catalog", hw(fixtures, "targets.yaml"))
    assert out.returncode == 0, out.stderr
    prof = HardwareProfile.model_validate_json(out.stdout)
    assert prof.source == "target" and prof.target_id == "test-h100-80gb"
    assert prof.gpus[0].memory_total_bytes == 80 * 10**9 and prof.gpus[0].peak_bandwidth_gbs == 3350
    human = run_advisor("profile", "--target", "test-cpu-64gb", "--catalog", hw(fixtures, "targets.yaml"))
    assert human.returncode == 0, human.stderr
    assert "Test server CPU 64 GB" in human.stdout and "64.00 GB total" in human.stdout


def test_profile_builtin_h100_target_and_match(fixtures):
    """The built-in hardware.yaml defines h100-sxm-80gb, and the real H100 readout matches it."""
    out = run_advisor("profile", "--json", "--target", "h100-sxm-80gb")
    assert out.returncode == 0, out.stderr
    target = HardwareProfile.model_validate_json(out.stdout)
    assert target.source == "target" and target.gpus[0].matched_target == "h100-sxm-80gb"
    assert 79e9 < target.gpus[0].memory_total_bytes < 86e9
    env = {"ADVISOR_HARDWARE_FIXTURE": hw(fixtures, "gpu-80gb.json")}
    out = run_advisor("profile", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert HardwareProfile.model_validate_json(out.stdout).gpus[0].matched_target == "h100-sxm-80gb"


def test_profile_target_local_is_this_machine(fixtures):
    env = {"ADVISOR_HARDWARE_FIXTURE": hw(fixtures, "gpu-8gb.json")}
    out = run_advisor("profile", "--json", "--target", "local", env=env)
    assert out.returncode == 0, out.stderr
    assert HardwareProfile.model_validate_json(out.stdout).gpus[0].name == "NVIDIA GeForce RTX 4060"


def test_unknown_target_is_one_line_exit_2(fixtures):
    out = run_advisor("profile", "--target", "test-h100-80g", "--catalog", hw(fixtures, "targets.yaml"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: unknown target 'test-h100-80g'") and "test-h100-80gb" in lines[0]
    assert out.stdout == ""


def test_bad_fixture_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = run_advisor("profile", env={"ADVISOR_HARDWARE_FIXTURE": str(bad)})
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "not valid JSON" in out.stderr

"""Hardware faults not covered by tests/test_hardware_profile.py (which covers NVML missing, init
failure, one failing getter, a device that cannot be opened): a GPU that disappears after it was
counted (every read of it fails with "GPU is lost"), through `advisor profile`; and the energy
counter vanishing between the start and the end of a probe.
"""

from __future__ import annotations

import json

from advisor.hardware import nvml, profile
from tests import fuzzing

# fresh_state: the same autouse fixture (profile cache and NVML state reset around each test)
from tests.test_hardware_profile import NVMLError, fake_pynvml, fresh_state, use_fake  # noqa: F401


def _lose_gpu(module, index: int):
    """Device `index` answers nvmlDeviceGetHandleByIndex, then every read of it raises GPU_IS_LOST."""
    lost = f"h{index}"
    for name in dir(module):
        if not name.startswith("nvmlDevice") or name == "nvmlDeviceGetHandleByIndex" or name == "nvmlDeviceGetCount":
            continue
        real = getattr(module, name)

        def wrapped(*args, _real=real):
            if args and args[0] == lost:
                raise NVMLError("GPU is lost")
            return _real(*args)

        setattr(module, name, wrapped)
    return module


def test_a_gpu_lost_after_counting_degrades_the_profile_and_says_why(monkeypatch):
    use_fake(monkeypatch, _lose_gpu(fake_pynvml(count=2), 1))
    prof = profile.detect_profile(include_torch=False)
    healthy = [g for g in prof.gpus if g.index == 0]
    assert healthy and healthy[0].name == "NVIDIA H100 80GB HBM3" and healthy[0].memory_total_bytes
    lost = [g for g in prof.gpus if g.index == 1]
    assert lost, "the lost GPU must still be listed (with what failed), not silently dropped"
    assert lost[0].memory_total_bytes is None and lost[0].errors
    assert any("GPU is lost" in e for e in lost[0].errors.values())
    assert any("GPU 1" in n for n in prof.notes), prof.notes


def test_profile_command_with_a_lost_gpu_exits_0_with_a_note(monkeypatch, tmp_path):
    use_fake(monkeypatch, _lose_gpu(fake_pynvml(count=2), 1))
    out = fuzzing.run_case(fuzzing.Case("faults", {}, ["profile", "--no-torch", "--json"]), tmp_path)
    assert out.crash is None and out.rc == 0, (out.crash, out.stderr[-500:])
    doc = json.loads(out.stdout)
    assert len(doc["gpus"]) == 2 and any("GPU 1" in n for n in doc["notes"])
    text = fuzzing.run_case(fuzzing.Case("faults", {}, ["profile", "--no-torch"]), tmp_path / "t")
    assert text.crash is None and text.rc == 0 and "GPU 1" in text.stdout


def test_every_gpu_lost_still_gives_a_cpu_profile(monkeypatch, tmp_path):
    module = fake_pynvml(count=2)
    _lose_gpu(module, 0)
    _lose_gpu(module, 1)
    use_fake(monkeypatch, module)
    out = fuzzing.run_case(fuzzing.Case("faults", {}, ["profile", "--no-torch", "--json"]), tmp_path)
    assert out.crash is None and out.rc == 0, (out.crash, out.stderr[-500:])
    doc = json.loads(out.stdout)
    assert doc["cpu"] and all(g["memory_total_bytes"] is None for g in doc["gpus"])


def test_energy_counter_vanishing_mid_probe_gives_no_energy_not_an_error(monkeypatch):
    from advisor.probe import energy

    reads = iter([1_000_000])

    def total_energy_mj(index):
        try:
            return next(reads)
        except StopIteration:
            raise NVMLError("GPU is lost") from None

    monkeypatch.setattr(nvml, "total_energy_mj", total_energy_mj)
    meter = energy.EnergyMeter("cuda:0", rapl_pattern="/nonexistent/*")
    meter.start()
    assert meter._start == 1_000_000        # the counter was there when the probe started
    assert meter.stop() is None

"""Energy counters: RAPL (with wraparound) from a fake sysfs tree, NVML through the hardware module."""

from __future__ import annotations

from pathlib import Path

from advisor.probe.energy import EnergyMeter, _nvml_index, counter_delta


def _zone(root: Path, name: str, energy: int, max_range: int = 1000) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "energy_uj").write_text(f"{energy}\n")
    (z / "max_energy_range_uj").write_text(f"{max_range}\n")
    return z


def test_counter_delta_handles_wraparound():
    assert counter_delta(100, 350, 1000) == 250
    assert counter_delta(900, 100, 1000) == 200       # wrapped once
    assert counter_delta(900, 100, None) == 0         # unknown range: no made-up figure


def test_rapl_meter_sums_packages_and_ignores_subzones(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", 900_000, max_range=1_000_000)
    p1 = _zone(tmp_path, "intel-rapl:1", 10)
    sub = _zone(tmp_path, "intel-rapl:0:0", 5)        # a subzone (core) is part of package 0
    meter = EnergyMeter("cpu", rapl_pattern=str(tmp_path / "intel-rapl:*"))
    assert meter.source == "rapl"
    meter.start()
    (p0 / "energy_uj").write_text("100000\n")         # wrapped: 100_000 uJ past the range
    (p1 / "energy_uj").write_text("510\n")
    (sub / "energy_uj").write_text("999999\n")
    assert meter.stop() == (200_000 + 500) / 1e6


def test_no_readable_counter_gives_none(tmp_path):
    meter = EnergyMeter("cpu", rapl_pattern=str(tmp_path / "intel-rapl:*"))
    meter.start()
    assert meter.source is None and meter.stop() is None
    z = _zone(tmp_path, "intel-rapl:0", 5)
    meter = EnergyMeter("cpu", rapl_pattern=str(tmp_path / "intel-rapl:*"))
    meter.start()
    (z / "energy_uj").unlink()                        # became unreadable
    assert meter.stop() is None


def test_nvml_meter_reads_total_energy(monkeypatch):
    readings = iter([5_000, 7_500])
    monkeypatch.setattr("advisor.hardware.nvml.total_energy_mj", lambda index: next(readings))
    meter = EnergyMeter("cuda:0")
    meter.start()
    assert meter.stop() == 2.5


def test_nvml_index_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert _nvml_index("cuda:1") == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-uuid")
    assert _nvml_index("cuda:0") == 0

"""The probe cache: hits, --refresh, corrupt and foreign files ignored with a warning, unwritable dirs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from advisor.catalog.schema import ModelEntry
from advisor.estimate.schema import LatencyMeasurement, MeasuredRates, Spread
from advisor.probe import api
from advisor.probe.arch_probe import ArchProbeDetail, ComponentTimes
from advisor.probe.cache import CacheKey, ProbeCache, ProbeCacheWarning

FIX = Path(__file__).parent / "fixtures" / "probe"
pytest.importorskip("torch")


def entry() -> ModelEntry:
    return ModelEntry.model_validate_json((FIX / "tiny_entry.json").read_text())


@pytest.fixture
def fake_probes(monkeypatch):
    """Replace the measurements by canned ones and count how often each runs."""
    calls = {"arch": 0, "micro": 0}

    def fake_arch(model_id, arch, fmt, batch, prompt_tokens, **kw):
        calls["arch"] += 1
        s = Spread.from_values([float(calls["arch"]), 11.0, 12.0])
        m = LatencyMeasurement(model=model_id, format=fmt, device="cpu", prompt_tokens=prompt_tokens, batch=batch,
                               prefill_ms=s, decode_ms_per_token=s, method="architecture-probe", layers_timed=[2])
        c = ComponentTimes(fixed_ms=1, layer_ms=1, lm_head_ms=1, layer_samples=2, samples=1)
        return m, ArchProbeDetail(depth=2, full_depth=6, backend="fake", prefill=c, decode=c, wall_s=0.1)

    def fake_micro(device, **kw):
        calls["micro"] += 1
        return MeasuredRates(device=device, matmul_tflops={"fp32": 0.1}, bandwidth_gbs=20.0, step_overhead_ms=0.01)

    monkeypatch.setattr(api, "probe_architecture", fake_arch)
    monkeypatch.setattr("advisor.probe.micro.run_microprobes", fake_micro)
    return calls


def _calibrate(**kw):
    return api.local_calibration(entry(), "fp32", 1, 64, 8, device="cpu", **kw)


def _cache_files() -> list[Path]:
    from advisor.paths import cache_dir

    return sorted((cache_dir() / "probes").glob("calibration-*.json"))


def test_second_call_is_a_cache_hit(fake_probes):
    first = _calibrate()
    assert not first.from_cache and first.measurement is not None
    second = _calibrate()
    assert second.from_cache
    assert second.measurement == first.measurement
    assert fake_probes["arch"] == 1 and fake_probes["micro"] == 1
    # the cache is plain JSON carrying its key
    doc = json.loads(_cache_files()[0].read_text())
    assert doc["key"]["model"] == "tiny-llama-test" and doc["key"]["prompt_tokens"] == 64


def test_other_request_shape_is_not_a_hit(fake_probes):
    _calibrate()
    other = api.local_calibration(entry(), "fp32", 1, 128, 8, device="cpu")
    assert not other.from_cache
    assert fake_probes["arch"] == 2


def test_refresh_measures_again(fake_probes):
    first = _calibrate()
    again = _calibrate(refresh=True)
    assert not again.from_cache
    assert fake_probes["arch"] == 2 and fake_probes["micro"] == 2
    assert again.measurement.prefill_ms.mean != first.measurement.prefill_ms.mean
    assert _calibrate().measurement == again.measurement   # the refreshed figure replaced the old one


def test_run_false_only_reads_the_cache(fake_probes):
    res = _calibrate(run=False)
    assert res.measurement is None and "not probed yet" in res.skipped
    assert fake_probes["arch"] == 0
    _calibrate()
    assert _calibrate(run=False).from_cache


@pytest.mark.parametrize("garbage", ["{not json", '{"schema_version": 1}', "[]", '{"a": ' * 5000])
def test_corrupt_file_is_ignored_with_a_warning(fake_probes, garbage):
    _calibrate()
    path = _cache_files()[0]
    path.write_text(garbage)
    with pytest.warns(ProbeCacheWarning, match="corrupt"):
        res = _calibrate()
    assert not res.from_cache and fake_probes["arch"] == 2


def test_foreign_key_file_is_ignored_with_a_warning(fake_probes):
    _calibrate()
    path = _cache_files()[0]
    doc = json.loads(path.read_text())
    doc["key"]["fingerprint"] = "another-machine"
    doc["payload"]["measurement"]["prefill_ms"]["p50"] = 0.001
    path.write_text(json.dumps(doc))
    with pytest.warns(ProbeCacheWarning, match="another machine"):
        res = _calibrate()
    assert not res.from_cache
    assert res.measurement.prefill_ms.p50 != 0.001


def test_unwritable_cache_dir_still_measures(fake_probes, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(blocker))
    with pytest.warns(ProbeCacheWarning, match="cannot write"):
        res = _calibrate()
    assert res.measurement is not None and not res.from_cache


def test_cache_never_unpickles(tmp_path):
    cache = ProbeCache(tmp_path)
    key = CacheKey(kind="microprobes", fingerprint="x", device="cpu")
    cache.path_for(key).write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.")   # a pickle
    with pytest.warns(ProbeCacheWarning):
        assert cache.load(key, MeasuredRates) is None


def test_unprobed_format_is_skipped_without_measuring(fake_probes):
    res = api.local_calibration(entry(), "int4", 1, 64, 8)
    assert res.measurement is None and "int4" in res.skipped
    assert fake_probes["arch"] == 0


def test_no_warning_on_a_clean_hit(fake_probes):
    _calibrate()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbeCacheWarning)
        assert _calibrate().from_cache


def test_results_taken_on_a_busy_machine_are_cached_as_such_and_replaced_when_quiet(fake_probes, monkeypatch):
    """A busy machine reuses its earlier busy figures (probing again would measure the same load); the
    first run on a quiet machine measures again and replaces them."""
    monkeypatch.delenv("ADVISOR_PROBE_IGNORE_LOAD")
    import advisor.probe.machine_load as machine_load

    monkeypatch.setattr(machine_load, "busy_note", lambda: ["the machine was busy (load average 9.0 on 2 cores)"])
    first = _calibrate()
    assert first.measurement is not None and any("busy" in n for n in first.notes)
    assert fake_probes["arch"] == 1
    second = _calibrate()                                   # still busy: reused, and says so
    assert second.from_cache and fake_probes["arch"] == 1
    assert any("busy" in n for n in second.notes)
    monkeypatch.setattr(machine_load, "busy_note", lambda: [])
    third = _calibrate()                                    # quiet now: measured again
    assert not third.from_cache and fake_probes["arch"] == 2
    fourth = _calibrate()
    assert fourth.from_cache and fake_probes["arch"] == 2
    assert not any("busy" in n for n in fourth.notes)


def test_microprobe_rates_taken_under_load_are_reused_while_busy_and_replaced_when_quiet(fake_probes, monkeypatch):
    monkeypatch.delenv("ADVISOR_PROBE_IGNORE_LOAD")
    import advisor.probe.machine_load as machine_load

    monkeypatch.setattr(machine_load, "busy_note", lambda: ["busy"])
    api.microprobe_rates("cpu")
    api.microprobe_rates("cpu")
    assert fake_probes["micro"] == 1
    monkeypatch.setattr(machine_load, "busy_note", lambda: [])
    api.microprobe_rates("cpu")
    api.microprobe_rates("cpu")
    assert fake_probes["micro"] == 2

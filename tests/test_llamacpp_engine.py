"""The llama.cpp engine probe's supervisor: real child processes, a real synthetic GGUF, no llama.cpp.

The child that stands in for llama-cpp-python is a small Python script: it crashes with a real SIGSEGV
when asked for llama.cpp's default buffers, exits with an error, or prints timings that depend on the
depth of the GGUF it was given, so the fallback, the error path and the extrapolation are each checked
end to end. The child that really runs llama.cpp (advisor/probe/llamacpp_worker.py) needs llama-cpp-python
and is exercised by benchmarks/llamacpp_local.py on a machine that has it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("gguf")

from advisor.catalog.loader import get_catalog  # noqa: E402
from advisor.catalog.schema import Architecture  # noqa: E402
from advisor.probe import llamacpp_engine as le  # noqa: E402

TINY = Architecture(model_type="llama", hidden_size=64, num_hidden_layers=10, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=160, vocab_size=96)

# prefill = 10 + 5 ms per layer, decode = 1 + 0.5 ms per layer; crashes on default buffers if told to
FAKE_ENGINE = textwrap.dedent("""
    import json, os, re, signal, sys
    args = json.loads(sys.argv[-1])
    layers = int(re.search(r"synthetic-(\\d+)", args["path"]).group(1))
    assert os.path.getsize(args["path"]) > 0
    if args["extra_bufts"] and os.environ.get("FAKE_CRASH_DEFAULT") == "1":
        os.kill(os.getpid(), signal.SIGSEGV)
    if os.environ.get("FAKE_FAIL") == "1":
        print(json.dumps({"error": "llama.cpp could not load the synthetic GGUF"})); sys.exit(3)
    print("some log line")
    decode = [1 + 0.5 * layers] * 5 + ([20.0] if os.environ.get("FAKE_NOISY") == "1" else [])
    print(json.dumps({"prefill_ms": [10 + 5 * layers] * 3, "decode_ms": decode,
                      "llama_cpp_python": "fake", "system_info": "AVX2 = 1"}))
""")


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_ENGINE)
    return [sys.executable, str(script)]


def test_extrapolate_is_linear_in_depth():
    # 1 layer 12 ms, 3 layers 20 ms: 4 ms per layer, 32 layers = 12 + 31 x 4
    assert le.extrapolate(12.0, 20.0, 1, 3, 32) == pytest.approx(136.0)
    assert le.extrapolate(12.0, 11.0, 1, 3, 32) == 12.0        # noise below zero per layer: the shallow figure


def test_depth_plan_and_room_check():
    cat = get_catalog(())
    assert le.plan_depths(cat.model("qwen2.5-0.5b").arch, "q4_0") == [24]
    assert le.plan_depths(cat.model("llama-3.1-8b").arch, "q4_0") == [le.SHALLOW, le.DEEP]
    with pytest.raises(le.EngineProbeRefused, match="RAM"):
        le.check_room(cat.model("llama-3.1-8b").arch, "q4_0", [1, 3], 512, available_bytes=2_000_000_000,
                      memory_fraction=0.5, free_disk_bytes=10**12)
    with pytest.raises(le.EngineProbeRefused, match="disk"):
        le.check_room(TINY, "q4_0", [10], 512, available_bytes=10**11, memory_fraction=0.5, free_disk_bytes=1000)


def test_a_crashing_child_is_an_outcome_not_an_exception():
    segfault = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    crash = le.run_worker({}, 30, command=[sys.executable, "-c", segfault])
    assert crash.result is None and crash.crash == "crashed with SIGSEGV"
    slow = le.run_worker({}, 0.5, command=[sys.executable, "-c", "import time; time.sleep(5)"])
    assert slow.crash and "no result within" in slow.crash


def test_default_buffers_crash_then_plain_buffers_are_timed(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CRASH_DEFAULT", "1")
    notes: list[str] = []
    t = le.time_depth(TINY, "q4_0", 3, threads=2, prompt=64, steps=4, repeats=3, budget_s=20, workdir=tmp_path,
                      notes=notes, command=fake)
    assert (t.layers, t.extra_bufts, t.prefill_ms) == (3, False, [25, 25, 25])
    assert "crashed with SIGSEGV" in notes[0] and "use_extra_bufts=False" in notes[0]
    assert not list(tmp_path.glob("*.gguf"))                     # the file is deleted afterwards


def test_every_attempt_failing_is_refused_with_both_reasons(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(le.EngineProbeRefused, match="could not load.*could not load"):
        le.time_depth(TINY, "q8_0", 1, threads=1, prompt=8, steps=2, repeats=1, budget_s=20, workdir=tmp_path,
                      notes=[], command=fake)


def test_a_large_model_is_timed_at_two_depths_and_extrapolated(fake, monkeypatch):
    monkeypatch.setattr(le, "FULL_DEPTH_MAX_BYTES", 1000)     # force the two-depth plan on the tiny model
    m, details = le.probe_engine(TINY, "q4_0", model_id="tiny", threads=2, prompt=64, steps=4, budget_s=30,
                                 command=fake)
    assert details.layers_timed == [1, 3] and details.extrapolated and details.extra_bufts
    assert m.prefill_ms.p50 == pytest.approx(10 + 5 * 10)       # the fake engine's line, at the full 10 layers
    assert m.decode_ms_per_token.p50 == pytest.approx(1 + 0.5 * 10)
    assert m.method == "llama.cpp-engine" and m.layers_timed == [1, 3]
    assert any("extrapolated linearly to 10" in n for n in m.notes)


def test_cli_without_the_engine_extra_says_what_to_install():
    from importlib.util import find_spec

    if find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    proc = subprocess.run([sys.executable, "-m", "advisor", "probe-engine", "qwen2.5-0.5b"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model-advisor[engine]" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_json_of_the_worker_is_the_last_json_line(tmp_path):
    script = tmp_path / "w.py"
    script.write_text("import json\nprint(json.dumps({'prefill_ms': [1.0]}))\nprint('{not json: a log line')\n")
    out = le.run_worker({}, 30, command=[sys.executable, str(script)])
    assert out.result == {"prefill_ms": [1.0]}
    assert json.loads(json.dumps(out.result))


def _measurement(method: str):
    from advisor.estimate.schema import LatencyMeasurement, Spread

    return LatencyMeasurement(model="qwen2.5-0.5b", format="q8_0", device="cpu", prompt_tokens=256, batch=1,
                              prefill_ms=Spread.from_values([1000.0, 1010.0]),
                              decode_ms_per_token=Spread.from_values([40.0, 41.0]), method=method)


def test_a_measurement_counts_only_for_the_runtime_it_timed():
    from advisor.estimate.engine import estimate

    kw = dict(target="cpu-server", format="q8_0", runtime="llama.cpp", prompt_tokens=256, new_tokens=16, probe=False)
    engine = estimate("qwen2.5-0.5b", measurement=_measurement("llama.cpp-engine"), **kw)
    assert engine.latency.basis == "measured" and engine.latency.prefill_ms == pytest.approx(1005.0)
    # the torch architecture probe timed PyTorch: not llama.cpp's latency, so not "measured" for llama.cpp
    torch_timed = estimate("qwen2.5-0.5b", measurement=_measurement("architecture-probe"), **kw)
    assert torch_timed.latency.basis == "spec" and torch_timed.latency.prefill_ms != pytest.approx(1005.0)
    assert any("timed transformers, not llama.cpp" in n and "probe-engine" in n for n in torch_timed.notes)
    kw["runtime"] = "transformers"
    kw["format"] = "fp32"
    assert estimate("qwen2.5-0.5b", measurement=_measurement("architecture-probe"), **kw).latency.basis == "measured"


def test_estimate_on_this_machine_uses_the_cached_engine_measurement(tmp_path, monkeypatch):
    import psutil

    from advisor.catalog.loader import get_catalog
    from advisor.estimate.engine import estimate

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(le, "engine_version", lambda: "0.3.36-test")     # as if llama-cpp-python were installed
    entry = get_catalog(()).model("qwen2.5-0.5b")
    kw = dict(target="local", format="q8_0", runtime="llama.cpp", prompt_tokens=256, new_tokens=16)
    before = estimate(entry, **kw)
    assert before.latency.basis != "measured"
    assert any("advisor probe-engine qwen2.5-0.5b --format q8_0 --prompt-tokens 256" in n for n in before.notes)
    m = _measurement("llama.cpp-engine")
    threads = psutil.cpu_count(logical=False) or psutil.cpu_count()
    assert le.save(m, entry.arch, threads=threads, steps=le.DEFAULT_STEPS) is not None
    after = estimate(entry, **kw)
    assert after.latency.basis == "measured" and after.latency.prefill_ms == pytest.approx(1005.0)
    assert any("probe-engine" in n and "probe cache" in n for n in after.notes)
    # another engine build, thread count or prompt is another request: not reused
    monkeypatch.setattr(le, "engine_version", lambda: "0.3.99")
    assert estimate(entry, **kw).latency.basis != "measured"
    assert le.cached(entry.arch, "q8_0", model_id=entry.id, threads=threads + 1, prompt=256, steps=16) is None


def test_recommend_on_this_machine_with_llama_cpp_uses_the_engine_measurement(tmp_path, monkeypatch):
    import psutil

    from advisor.catalog.loader import get_catalog
    from advisor.estimate.schema import LatencyMeasurement, Spread
    from advisor.recommend.engine import recommend

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(le, "engine_version", lambda: "0.3.36-test")
    entry = get_catalog(()).model("qwen2.5-0.5b")
    threads = psutil.cpu_count(logical=False) or psutil.cpu_count()
    m = LatencyMeasurement(model=entry.id, format="q4_k_m", device="cpu", prompt_tokens=300, batch=1,
                           prefill_ms=Spread.from_values([777.0]), decode_ms_per_token=Spread.from_values([33.0]),
                           method="llama.cpp-engine")
    le.save(m, entry.arch, threads=threads, steps=le.DEFAULT_STEPS)
    rec = recommend("summarization", targets=["local"], runtime="llama.cpp", prompt_tokens=300, new_tokens=50,
                    probe=False, user_models_only=False)
    cand = next(c for c in rec.candidates if c.model == entry.id and c.format == "q4_k_m")
    assert cand.latency_basis == "measured" and cand.ttft_ms == pytest.approx(777.0, rel=0.05)
    assert any("probe-engine" in n and "qwen2.5-0.5b q4_k_m" in n for n in rec.notes)
    other = next(c for c in rec.candidates if c.model == entry.id and c.format == "q8_0")
    assert other.latency_basis != "measured"


def test_noisy_decode_steps_are_measured_but_not_trusted_for_the_cache(fake, monkeypatch):
    monkeypatch.setenv("FAKE_NOISY", "1")
    m, _ = le.probe_engine(TINY, "q8_0", model_id="tiny", threads=1, prompt=16, steps=4, budget_s=30, command=fake)
    assert any("not cached" in n and "spread" in n for n in m.notes)
    assert not le.trusted(m)
    monkeypatch.setenv("FAKE_NOISY", "0")
    quiet, _ = le.probe_engine(TINY, "q8_0", model_id="tiny", threads=1, prompt=16, steps=4, budget_s=30,
                               command=fake)
    assert le.trusted(quiet) or any("busy" in n for n in quiet.notes)


def test_a_cached_measurement_says_how_it_was_taken(tmp_path, monkeypatch):
    import psutil

    from advisor.catalog.loader import get_catalog

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(le, "engine_version", lambda: "0.3.36-test")
    entry = get_catalog(()).model("qwen2.5-0.5b")
    m = _measurement("llama.cpp-engine").model_copy(update={"notes": [
        "timed at 1 and 3 layers, extrapolated linearly to 24",
        "llama.cpp's default CPU buffers (repacked/AMX kernels) crashed with SIGSEGV; timed with plain CPU buffers"]})
    le.save(m, entry.arch, threads=psutil.cpu_count(logical=False) or psutil.cpu_count(), steps=le.DEFAULT_STEPS)
    hit, note = le.lookup(entry, "q8_0", prompt=256, batch=1)
    assert hit is not None and "extrapolated" in note and "plain CPU buffers" in note and "synthetic" in note
    assert le.lookup(entry, "q8_0", prompt=256, batch=4) == (None, None)     # batch 1 only


def test_sigterm_kills_the_engine_child_and_removes_the_synthetic_file(tmp_path):
    import os
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    slow = tmp_path / "slow_engine.py"
    slow.write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    work = tmp_path / "tmp"
    work.mkdir()
    parent = textwrap.dedent(f"""
        import sys
        from advisor.catalog.schema import Architecture
        from advisor.probe import llamacpp_engine as le
        arch = Architecture(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=160, vocab_size=96)
        le.probe_engine(arch, "q8_0", model_id="tiny", threads=1, prompt=8, steps=2, budget_s=60,
                        command=[sys.executable, {str(slow)!r}])
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], env={**os.environ, "TMPDIR": str(work)})
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "the fake engine never started"
    child = int(pid_file.read_text())
    assert list(work.glob("advisor-gguf-*/synthetic-*.gguf"))          # the file exists while it runs
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    time.sleep(0.2)
    assert not list(work.glob("advisor-gguf-*"))                        # removed with its folder
    try:
        os.kill(child, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the engine child outlived the probe"


def test_a_busy_machine_is_noted_and_its_measurement_not_cached(fake, monkeypatch):
    from advisor.probe import machine_load

    monkeypatch.setattr(machine_load, "cpu_pressure", lambda path="/proc/pressure/cpu": 75.0)
    m, _ = le.probe_engine(TINY, "q8_0", model_id="tiny", threads=1, prompt=16, steps=4, budget_s=30, command=fake)
    assert any("busy before the timing (CPU pressure 75%)" in n for n in m.notes)
    assert not le.trusted(m)
    monkeypatch.setattr(machine_load, "cpu_pressure", lambda path="/proc/pressure/cpu": None)   # no PSI here
    assert le._busy("after") == []

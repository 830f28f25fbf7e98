"""Probe faults not covered by the probe engineer's tests (tests/test_probe_*.py cover OOM, the
time budget, torch missing, unwritable and corrupt caches):

- the GPU disappearing mid-probe (a CUDA runtime error that is not out-of-memory), during
  `advisor probe` and during `advisor recommend`'s probing: a clear result, no crash, memory freed;
- Ctrl-C during probing: exit 130 with one line, memory freed, no cache entry or half-written
  file left behind; and a real SIGINT to a real probe process;
- a full disk under the cache (ENOSPC): the tool still works, uncached, nothing half-written.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import fuzzing
from tests.conftest import REPO

pytest.importorskip("torch")

GPU_LOST = "CUDA error: unspecified launch failure (GPU has fallen off the bus)"


@pytest.fixture
def freed(monkeypatch):
    """Count free_device() calls made by the probes."""
    import advisor.probe.safety as safety

    calls: list[str] = []
    real = safety.free_device

    def spy(device, *args, **kwargs):
        calls.append(device)
        real(device, *args, **kwargs)

    monkeypatch.setattr(safety, "free_device", spy)
    return calls


@pytest.fixture
def fake_rates(monkeypatch):
    """Microprobes answer at once (they are not what these tests break)."""
    from advisor.estimate.schema import MeasuredRates

    rates = MeasuredRates(device="cpu", matmul_tflops={"fp32": 0.06}, bandwidth_gbs=20.0, step_overhead_ms=0.05)
    monkeypatch.setattr("advisor.probe.micro.run_microprobes", lambda device, **kw: rates)
    return rates


def _break_measure(monkeypatch, exc: BaseException, allocated: list):
    """ArchProbe._measure allocates a tensor, then the device fails with `exc`."""
    import torch

    from advisor.probe.arch_probe import ArchProbe

    def broken(self, budget, state):
        state["weights"] = torch.zeros(1024, 1024)
        allocated.append(state)
        raise exc

    monkeypatch.setattr(ArchProbe, "_measure", broken)


def _cli(tmp_path, *argv) -> fuzzing.Outcome:
    return fuzzing.run_case(fuzzing.Case("faults", {}, list(argv)), tmp_path, timeout=120)


def _no_half_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and (".tmp" in p.name or p.stat().st_size == 0)]


@pytest.mark.parametrize("argv", [
    ["probe", "qwen2.5-0.5b", "--budget-s", "30", "--json"],
    ["recommend", "--task", "summarization", "--target", "local", "--budget-s", "30", "--no-mlflow", "--json",
     "--max-params", "1b"],
])
def test_gpu_lost_mid_probe_gives_a_clear_result_and_frees_memory(argv, tmp_path, monkeypatch, freed, fake_rates):
    allocated: list = []
    _break_measure(monkeypatch, RuntimeError(GPU_LOST), allocated)
    out = _cli(tmp_path, *argv)
    assert out.crash is None, f"{out.crash}\n{out.stderr[-800:]}"
    assert allocated, "the fault was never reached: the test did not probe"
    assert all(not state for state in allocated), "probe state (tensors) still referenced after the failure"
    assert freed, "device memory was not released after the failure"
    if out.rc == 2:
        assert "GPU" in out.stderr or "CUDA" in out.stderr or "probe" in out.stderr
    else:
        text = out.stdout + out.stderr
        assert "launch failure" in text or "probe failed" in text or "not measured" in text, text[-800:]
    probes = tmp_path / "cache" / "probes"
    assert list(probes.glob("microprobes-*.json")), "the microprobes' result was cached before the fault"
    assert not list(probes.glob("calibration-*")), "a failed probe must not be cached"
    assert not _no_half_files(tmp_path / "cache")


def test_ctrl_c_during_probing_exits_130_frees_memory_and_caches_nothing(tmp_path, monkeypatch, freed, fake_rates):
    allocated: list = []
    _break_measure(monkeypatch, KeyboardInterrupt(), allocated)
    out = _cli(tmp_path, "probe", "qwen2.5-0.5b", "--budget-s", "30")
    assert out.rc == 130, (out.rc, out.crash, out.stderr[-500:])
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("error:")] == ["error: interrupted"]
    assert allocated and freed
    probes = tmp_path / "cache" / "probes"
    assert list(probes.glob("microprobes-*.json")), "the microprobes' result was cached before the interrupt"
    assert not list(probes.glob("calibration-*")), "an interrupted probe must not be cached"
    assert not _no_half_files(tmp_path / "cache")


def _stderr_watch(stream, marker: bytes) -> tuple[threading.Event, bytearray, threading.Thread]:
    """Read `stream` to its end in a thread; the event is set when `marker` shows up (or at the end)."""
    seen, buf = threading.Event(), bytearray()

    def read() -> None:
        while chunk := os.read(stream.fileno(), 65536):
            buf.extend(chunk)
            if marker in buf:
                seen.set()
        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return seen, buf, reader


def test_real_sigint_stops_a_real_probe_promptly(tmp_path):
    """The real CLI probing a real (truncated, random-weight) model on this CPU; Ctrl-C once it measures.

    The signal goes when the progress bar on stderr says the first timed prefill started (rich draws
    it on a pipe when TTY_COMPATIBLE / TTY_INTERACTIVE say so), not after a fixed sleep: on a loaded
    machine the probe started measuring 27 s in, on a quiet one it had finished within 8 s."""
    env = {**os.environ, "ADVISOR_REPORTS_DIR": str(tmp_path / "reports"),
           "ADVISOR_CACHE_DIR": str(tmp_path / "cache"), "ADVISOR_HARDWARE_FIXTURE": "", "PYTHONUNBUFFERED": "1",
           "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    with open(tmp_path / "stdout", "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "advisor", "probe", "qwen2.5-0.5b", "--budget-s", "120",
                              "--prompt-tokens", "256", "--refresh"],
                             stdout=out, stderr=subprocess.PIPE, env=env, cwd=REPO)
        try:
            measuring, err_buf, reader = _stderr_watch(p.stderr, b"qwen2.5-0.5b: prefill 256 tokens")
            measuring.wait(timeout=600)                 # a guard against a hang, not a speed bound
            assert p.poll() is None, f"the probe ended before it was interrupted:\n{bytes(err_buf)[-800:]!r}"
            assert measuring.is_set(), "the probe never reported measuring"
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("Ctrl-C did not stop the probe within 60 s")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    reader.join(timeout=60)                              # stderr ends when the process has gone
    assert not reader.is_alive()
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bytes(err_buf).decode(errors="replace"))
    assert p.returncode == 130, err[-800:]
    assert "Traceback" not in err and "internal error" not in err, err[-800:]
    assert err.strip().splitlines()[-1] == "error: interrupted", err[-300:]
    probes = tmp_path / "cache" / "probes"
    assert list(probes.glob("microprobes-*.json")), "the microprobes ran and were cached before the probe"
    assert not list(probes.glob("calibration-*")), "an interrupted probe must not be cached"
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_a_full_disk_under_the_cache_only_costs_the_caching(tmp_path, monkeypatch, fake_rates):
    """ENOSPC on every cache write: the measurement is still returned, with a warning, and no
    half-written file is left in the cache folder."""
    import warnings

    from advisor.probe import api
    from advisor.probe.cache import ProbeCacheWarning

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    real_write = Path.write_text

    def full(self, data, *a, **k):
        if "probes" in self.parts:
            real_write(self, data[: len(data) // 2], *a, **k)     # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rates = api.microprobe_rates("cpu", refresh=True)
    assert rates is not None and rates.bandwidth_gbs == 20.0
    assert any(issubclass(w.category, ProbeCacheWarning) and "No space" in str(w.message) for w in caught)
    assert (tmp_path / "cache" / "probes").is_dir()          # the write was tried there ...
    leftovers = list((tmp_path / "cache").rglob("*"))
    assert [p for p in leftovers if p.is_file()] == [], leftovers   # ... and left nothing behind
    # and the next run, still without space, is not fooled by anything half-written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert api.microprobe_rates("cpu", run=False) is None


def test_a_full_disk_under_the_cache_through_the_cli(tmp_path, monkeypatch, fake_rates):
    """The same through `advisor probe`: exit 0 with the measurement, a warning line, no traceback."""
    import torch  # noqa: F401 - imported before the patch

    real_write = Path.write_text

    def full(self, data, *a, **k):
        if "probes" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data, *a, **k)

    from advisor.probe import api

    def fake_probe(model_id, arch, fmt, batch, prompt_tokens, **kw):
        from advisor.estimate.schema import LatencyMeasurement, Spread
        from advisor.probe.arch_probe import ArchProbeDetail, ComponentTimes

        s = Spread.from_values([10.0, 11.0, 12.0])
        m = LatencyMeasurement(model=model_id, format=fmt, device="cpu", prompt_tokens=prompt_tokens, batch=batch,
                               prefill_ms=s, decode_ms_per_token=s, method="architecture-probe", layers_timed=[2])
        c = ComponentTimes(fixed_ms=1, layer_ms=1, lm_head_ms=1, layer_samples=2, samples=1)
        return m, ArchProbeDetail(depth=2, full_depth=24, backend="fake", prefill=c, decode=c, wall_s=0.1)

    monkeypatch.setattr(api, "probe_architecture", fake_probe)
    monkeypatch.setattr(Path, "write_text", full)
    out = _cli(tmp_path, "probe", "qwen2.5-0.5b", "--budget-s", "30", "--json")
    assert out.crash is None and out.rc == 0, (out.crash, out.stderr[-600:])
    assert "cannot write" in out.stderr or "not cached" in out.stderr, out.stderr[-600:]

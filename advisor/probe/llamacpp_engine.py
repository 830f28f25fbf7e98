"""Time the real llama.cpp engine on this machine (optional: the [engine] extra, llama-cpp-python + gguf).

The architecture is written as a GGUF with random weights (advisor/probe/gguf_synth.py) and timed by
llama.cpp itself in a child process (advisor/probe/llamacpp_worker.py): prefill of the prompt in n_batch
chunks, as llama-bench's pp test, and single-token decode steps after it (llama-bench's tg starts empty). A model whose
file would exceed FULL_DEPTH_MAX_BYTES is written twice, at SHALLOW and DEEP layers, and the difference
gives the cost of one layer (the embedding lookup, the LM head and the fixed costs stay in the shallow
figure), extrapolated to the model's depth, as the torch architecture probe does.

Safe: free RAM and disk are checked before anything is written, each child has a time limit, the files
are deleted afterwards, and a child that crashes (a native fault in an engine kernel) costs one attempt:
the probe first runs llama.cpp's default CPU buffers (repacked or AMX kernels, what a deployment runs) and,
if that crashes, once more with plain CPU buffers, and says so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from advisor.catalog.schema import Architecture
from advisor.estimate.schema import LatencyMeasurement, Spread
from advisor.probe import gguf_synth

FULL_DEPTH_MAX_BYTES = 1_500_000_000   # a file up to this size is timed at full depth
SHALLOW, DEEP = 1, 3                   # layers of the two files of a larger model
UBATCH = 512                           # llama-bench's -b / -ub default
DEFAULT_STEPS = 16                     # decode steps timed (what `advisor probe-engine` caches by default)
RUNTIME_BUFFERS = 600_000_000          # compute buffer (ubatch x vocab logits), thread pool, Python
NOISY_SPREAD = 1.5                     # max / median of the timed steps above this: too noisy to cache


class EngineUnavailable(RuntimeError):
    """llama-cpp-python or gguf is not installed (the message says how to install it)."""


class EngineProbeRefused(RuntimeError):
    """The probe would not fit in free memory or disk, or every attempt failed (the message says why)."""


def missing() -> str | None:
    """None when the engine probe can run, else what to install."""
    needed = (("llama-cpp-python", "llama_cpp"), ("gguf", "gguf"))
    absent = [name for name, module in needed if find_spec(module) is None]
    if not absent:
        return None
    return (f"the llama.cpp engine probe needs {' and '.join(absent)}: pip install 'model-advisor[engine]' "
            "(llama-cpp-python compiles llama.cpp, several minutes)")


@dataclass
class DepthTiming:
    layers: int
    prefill_ms: list[float]
    decode_ms: list[float]
    extra_bufts: bool
    system_info: str = ""
    version: str = ""


@dataclass
class WorkerOutcome:
    result: dict | None = None
    crash: str | None = None        # signal name or error text


@dataclass
class EngineDetails:
    """What the measurement rests on, for notes and JSON."""

    threads: int
    layers_timed: list[int]
    extrapolated: bool
    extra_bufts: bool
    llama_cpp_python: str
    system_info: str
    notes: list[str] = field(default_factory=list)


def run_worker(args: dict, timeout_s: float, command: list[str] | None = None) -> WorkerOutcome:
    """One child process; a signal, a non-zero exit or a timeout is an outcome, not an exception."""
    cmd = (command or [sys.executable, "-m", "advisor.probe.llamacpp_worker"]) + [json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return WorkerOutcome(crash=f"no result within {timeout_s:.0f} s")
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return WorkerOutcome(crash=f"crashed with {name}")
    payload: dict | None = None
    for line in reversed(proc.stdout.splitlines()):   # llama.cpp may log to stdout too: the last JSON line
        try:
            payload = json.loads(line)
            break
        except ValueError:
            continue
    if not isinstance(payload, dict):
        payload = None
    if proc.returncode != 0 or payload is None or "error" in payload:
        why = (payload or {}).get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return WorkerOutcome(crash=f"exit {proc.returncode}: {why[:200]}")
    return WorkerOutcome(result=payload)


def extrapolate(shallow: float, deep: float, shallow_layers: int, deep_layers: int, layers: int) -> float:
    """Linear in depth: what `layers` layers cost from two timed depths (never below the shallow figure)."""
    per_layer = max(0.0, (deep - shallow) / (deep_layers - shallow_layers))
    return shallow + per_layer * (layers - shallow_layers)


def plan_depths(arch: Architecture, fmt: str) -> list[int]:
    full = arch.num_hidden_layers
    if gguf_synth.file_bytes(arch, fmt) <= FULL_DEPTH_MAX_BYTES or full <= DEEP:
        return [full]
    return [SHALLOW, DEEP]


def check_room(arch: Architecture, fmt: str, depths: list[int], prompt: int, *, available_bytes: int,
               memory_fraction: float, free_disk_bytes: int) -> int:
    """Bytes the probe will hold at its peak; raises EngineProbeRefused when that exceeds what it may use."""
    biggest = max(gguf_synth.file_bytes(arch, fmt, d) for d in depths)
    kv = 2 * max(depths) * (prompt + 64) * arch.kv_heads * arch.head_size * 2
    # the writer holds the tensors until it writes them; llama.cpp then reads the file into its buffers
    need = 2 * biggest + kv + RUNTIME_BUFFERS
    allowed = int(available_bytes * memory_fraction)
    if need > allowed:
        raise EngineProbeRefused(f"the engine probe needs about {need / 1e9:.1f} GB of RAM and may use "
                                 f"{allowed / 1e9:.1f} GB ({memory_fraction:.0%} of the {available_bytes / 1e9:.1f} GB "
                                 "free); raise --memory-fraction or free memory")
    if biggest * 1.1 > free_disk_bytes:
        raise EngineProbeRefused(f"the synthetic GGUF needs {biggest / 1e9:.1f} GB of disk; "
                                 f"{free_disk_bytes / 1e9:.1f} GB free in the temporary folder")
    return need


def time_depth(arch: Architecture, fmt: str, layers: int, *, threads: int, prompt: int, steps: int, repeats: int,
               budget_s: float, workdir: Path, notes: list[str], command: list[str] | None = None) -> DepthTiming:
    path = workdir / f"synthetic-{layers}.gguf"
    gguf_synth.write(arch, fmt, path, layers, context=prompt + steps + 8)
    try:
        failures: list[str] = []
        for extra in (True, False):
            args = {"path": str(path), "threads": threads, "prompt": prompt, "steps": steps, "ubatch": UBATCH,
                    "repeats": repeats, "budget_s": budget_s, "extra_bufts": extra, "vocab": arch.vocab_size}
            outcome = run_worker(args, timeout_s=budget_s + 60, command=command)
            if outcome.result is not None:
                if failures:
                    notes.append(f"llama.cpp's default CPU buffers (repacked/AMX kernels) {failures[0]}; "
                                 "timed with plain CPU buffers instead (use_extra_bufts=False)")
                r = outcome.result
                return DepthTiming(layers, r["prefill_ms"], r["decode_ms"], extra, r.get("system_info", ""),
                                   r.get("llama_cpp_python", ""))
            failures.append(outcome.crash or "failed")
        raise EngineProbeRefused(f"llama.cpp failed at {layers} layer(s): default buffers {failures[0]}; "
                                 f"plain CPU buffers {failures[1]}")
    finally:
        path.unlink(missing_ok=True)


def _combined(shallow: list[float], deep: list[float], a: int, b: int, layers: int) -> list[float]:
    n = min(len(shallow), len(deep))
    s, d = sorted(shallow)[:n], sorted(deep)[:n]
    return [extrapolate(x, y, a, b, layers) for x, y in zip(s, d)]


ENGINE_METHOD_VERSION = "llama.cpp-engine-2"   # 2: Q6_K output as llama-quantize, layer sampling, warm-up steps


@functools.lru_cache(maxsize=1)
def engine_version() -> str | None:
    """llama-cpp-python's version from package metadata (reading the cache must not import it)."""
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None


def cache_key(arch: Architecture, fmt: str, *, model_id: str, threads: int, prompt: int, steps: int,
              version: str | None = None):
    """The probe cache's key: this machine, the llama-cpp-python build, the request and the threads."""
    from advisor.probe.cache import CacheKey, architecture_hash, machine_fingerprint

    # the engine build is part of the method: another llama-cpp-python times other kernels
    method = f"{ENGINE_METHOD_VERSION}/llama-cpp-python-{version or engine_version()}"
    return CacheKey(kind="llama.cpp-engine", fingerprint=machine_fingerprint(), device=f"cpu:t{threads}",
                    method=method, model=model_id,
                    architecture=architecture_hash(arch), format=fmt, batch=1, prompt_tokens=prompt,
                    new_tokens=steps)


def cached(arch: Architecture, fmt: str, *, model_id: str, threads: int, prompt: int, steps: int,
           cache=None) -> LatencyMeasurement | None:
    """A measurement `advisor probe-engine` saved for exactly this request on this machine, or None."""
    from advisor.probe.cache import ProbeCache

    if engine_version() is None:
        return None
    key = cache_key(arch, fmt, model_id=model_id, threads=threads, prompt=prompt, steps=steps)
    return (cache or ProbeCache()).load(key, LatencyMeasurement)


def lookup(entry, fmt: str, *, prompt: int, batch: int) -> tuple[LatencyMeasurement | None, str | None]:
    """What `advisor probe-engine` measured for this request on this machine (batch 1, every physical core,
    DEFAULT_STEPS decode steps), and a note: where it came from, or the command that would measure it."""
    import psutil

    gguf_fmt = gguf_synth.CATALOG_TO_GGUF.get(fmt, fmt)
    if gguf_fmt not in gguf_synth.GGUF_FORMATS or engine_version() is None or batch != 1:
        return None, None
    try:
        gguf_synth.layout(entry.arch)
    except gguf_synth.UnsupportedArchitecture:
        return None, None
    threads = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    hit = cached(entry.arch, gguf_fmt, model_id=entry.id, threads=threads, prompt=prompt, steps=DEFAULT_STEPS)
    if hit is None:
        return None, (f"llama.cpp is installed: 'advisor probe-engine {entry.id} --format {gguf_fmt} "
                      f"--prompt-tokens {prompt}' times it on this machine, and later estimates use that measurement")
    how = [n for n in hit.notes if "extrapolated" in n or "plain CPU buffers" in n or "busy" in n]
    return hit, (f"{entry.id} {fmt}: llama.cpp timed on this machine by 'advisor probe-engine' (probe cache; "
                 f"synthetic weights{'; ' + '; '.join(how) if how else ''})")


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a CI job cancelled, `kill`) unwinds like Ctrl-C: subprocess.run kills the llama.cpp child
    and the temporary folder with its GB-sized GGUF is removed, instead of both being left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _busy(when: str) -> list[str]:
    """A note when other tasks waited for a CPU (Linux PSI avg10 above 40%). The load average cannot tell:
    it counts the probe's own llama.cpp threads, which use every core."""
    from advisor.probe.machine_load import cpu_pressure

    psi = cpu_pressure()
    if psi is not None and psi > 40:
        return [f"the machine was busy {when} the timing (CPU pressure {psi:.0f}%): figures may be inflated; "
                "not cached"]
    return []


def trusted(measurement: LatencyMeasurement) -> bool:
    """Whether a measurement may be cached: not taken on a busy machine, steps not noisy."""
    return not any("busy" in n or "not cached" in n for n in measurement.notes)


def save(measurement: LatencyMeasurement, arch: Architecture, *, threads: int, steps: int, cache=None):
    from advisor.probe.cache import ProbeCache

    key = cache_key(arch, measurement.format, model_id=measurement.model, threads=threads,
                    prompt=measurement.prompt_tokens, steps=steps)
    return (cache or ProbeCache()).save(key, measurement)


def probe_engine(arch: Architecture, fmt: str, *, model_id: str, threads: int, prompt: int = 512,
                 steps: int = DEFAULT_STEPS,
                 repeats: int = 3, budget_s: float = 180.0, memory_fraction: float = 0.5,
                 progress: Callable[[str, float], None] | None = None,
                 command: list[str] | None = None) -> tuple[LatencyMeasurement, EngineDetails]:
    """Prefill and decode of the whole model under llama.cpp on this CPU (synthetic weights)."""
    import psutil

    why = missing() if command is None else None
    if why:
        raise EngineUnavailable(why)
    gguf_synth.layout(arch)                        # an unsupported architecture fails before any work
    depths = plan_depths(arch, fmt)
    tmp = Path(tempfile.gettempdir())
    need = check_room(arch, fmt, depths, prompt, available_bytes=psutil.virtual_memory().available,
                      memory_fraction=memory_fraction, free_disk_bytes=shutil.disk_usage(tmp).free)
    notes: list[str] = _busy("before")
    timings: list[DepthTiming] = []
    per_depth = budget_s / len(depths)
    try:
        with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="advisor-gguf-") as work:
            for i, layers in enumerate(depths):
                if progress:
                    progress(f"{layers} layer(s) under llama.cpp", i / len(depths))
                timings.append(time_depth(arch, fmt, layers, threads=threads, prompt=prompt, steps=steps,
                                          repeats=repeats, budget_s=per_depth, workdir=Path(work), notes=notes,
                                          command=command))
    except OSError as exc:       # a full disk, an unwritable temporary folder
        raise EngineProbeRefused(f"could not write the synthetic GGUF: {exc.strerror or exc}") from None
    for t in timings:
        spread = max(t.decode_ms) / max(1e-9, sorted(t.decode_ms)[len(t.decode_ms) // 2])
        if spread > NOISY_SPREAD:
            notes.append(f"decode steps at {t.layers} layer(s) spread {spread:.1f}x around their median "
                         "(other work on the machine?): not cached")
            break
    if not any("busy" in n for n in notes):
        notes.extend(_busy("after"))
    if progress:
        progress("done", 1.0)
    full = arch.num_hidden_layers
    if len(timings) == 1:
        prefill, decode = timings[0].prefill_ms, timings[0].decode_ms
    else:
        a, b = timings
        prefill = _combined(a.prefill_ms, b.prefill_ms, a.layers, b.layers, full)
        decode = _combined(a.decode_ms, b.decode_ms, a.layers, b.layers, full)
        notes.append(f"timed at {a.layers} and {b.layers} layers, extrapolated linearly to {full}")
    notes.append("synthetic weights (random blocks of the format): llama.cpp's speed depends on shapes and types")
    extra = all(t.extra_bufts for t in timings)
    measurement = LatencyMeasurement(
        model=model_id, format=fmt, device="cpu", prompt_tokens=prompt, batch=1,
        prefill_ms=Spread.from_values(prefill), decode_ms_per_token=Spread.from_values(decode),
        peak_bytes=need, method="llama.cpp-engine", layers_timed=[t.layers for t in timings], notes=notes)
    details = EngineDetails(threads=threads, layers_timed=[t.layers for t in timings], extrapolated=len(timings) > 1,
                            extra_bufts=extra, llama_cpp_python=timings[-1].version,
                            system_info=timings[-1].system_info, notes=notes)
    return measurement, details

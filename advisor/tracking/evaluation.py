"""The work behind the `advisor` model evaluator: time a pyfunc model's predict, and estimate fit.

Timing (CPU or whatever the model runs on, in this process):
  first_call_ms            the very first predict on one row (lazy loading included; TTFT proxy)
  latency_row_p50/p95_ms   one row per call, after `warmup` calls, `repeats` times over <= max_rows rows
  latency_batch_p50/p95_ms all (<= max_rows) rows in one call, `repeats` times
  rows_per_s               rows / batch p50
  predict_peak_mb          how far this process's resident memory rose above where it stood during one
                           batch call: Python objects and torch tensors alike (Linux: the kernel's peak
                           counter, reset just before the call; elsewhere sampled every 2 ms)
  cuda_peak_mb             torch's peak CUDA allocation during that call, when the model uses CUDA
  peak_rss_mb              the process's peak resident set (ru_maxrss; includes everything before)
Fit: when a transformers config.json is found (evaluator_config["hf_config"], a pyfunc artifact
holding one, or a transformers pipeline's model config), each id in evaluator_config["targets"]
is estimated with advisor.estimate.engine.estimate (spec basis, no probes) -> <target>/memory_gb,
<target>/fits, <target>/e2e_p95_ms, <target>/ttft_ms, <target>/tokens_per_s.
  fit_estimated            1 when a config.json was found and read, else 0 (the notes say why)
  fit_targets_failed       targets that could not be estimated (unknown id, ...), with a note each
The settings (DEFAULTS overlaid with evaluator_config) are logged as params `advisor.<key>`, and the
notes as the tag `advisor.evaluation.notes`, so a reader never needs evaluation.json to see a failure.
Every metric is prefixed `advisor/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFIX = "advisor/"
DEFAULTS = {"warmup": 1, "repeats": 5, "max_rows": 32, "targets": [], "format": "bf16",
            "prompt_tokens": 512, "new_tokens": 128}


def _rows(features: Any, max_rows: int) -> list[Any]:
    n = min(len(features), max_rows)
    if hasattr(features, "iloc"):
        return [features.iloc[i:i + 1] for i in range(n)]
    return [features[i:i + 1] for i in range(n)]


def _head(features: Any, max_rows: int) -> Any:
    return features.iloc[:max_rows] if hasattr(features, "iloc") else features[:max_rows]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def time_predict(predict: Callable[[Any], Any], features: Any, *, warmup: int = 1, repeats: int = 5,
                 max_rows: int = 32) -> dict[str, Any]:
    """Latency and memory of `predict` on the dataset's rows; returns metrics and raw spreads."""
    import resource

    from advisor.estimate.schema import Spread

    rows = _rows(features, max_rows)
    if not rows:
        raise ValueError("the evaluation dataset has no rows")
    batch = _head(features, max_rows)
    first = _timed(lambda: predict(rows[0]))
    for _ in range(max(0, warmup)):
        predict(rows[0])
    per_row = [_timed(lambda r=r: predict(r)) for _ in range(max(1, repeats)) for r in rows]
    per_batch = [_timed(lambda: predict(batch)) for _ in range(max(1, repeats))]
    with PeakMemory() as mem:
        predict(batch)
    row, bat = Spread.from_values(per_row), Spread.from_values(per_batch)
    metrics = {
        "rows": float(len(rows)),
        "first_call_ms": first,
        "latency_row_p50_ms": row.p50,
        "latency_row_p95_ms": row.p95,
        "latency_batch_p50_ms": bat.p50,
        "latency_batch_p95_ms": bat.p95,
        "rows_per_s": len(rows) / (bat.p50 / 1000.0) if bat.p50 > 0 else 0.0,
        "predict_peak_mb": mem.rise_bytes / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if mem.cuda_bytes is not None:
        metrics["cuda_peak_mb"] = mem.cuda_bytes / 1e6
    return {"metrics": metrics, "row_ms": row.model_dump(), "batch_ms": bat.model_dump()}


class PeakMemory:
    """How far resident memory rises during the enclosed call, torch tensors included (tracemalloc sees
    only Python's own allocations: 0.07 MB for a torch model). Linux resets the kernel's high-water mark
    (VmHWM, /proc/self/clear_refs) and reads it after; elsewhere a thread samples the RSS."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.rise_bytes = 0
        self.cuda_bytes: int | None = None
        self._hwm = False

    @staticmethod
    def _status_kb(field: str) -> int | None:
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def __enter__(self):
        import sys
        import threading

        import psutil

        self._torch = sys.modules.get("torch")   # only when the model already imported it
        if self._torch is not None and self._torch.cuda.is_available() and self._torch.cuda.is_initialized():
            self._torch.cuda.reset_peak_memory_stats()
            self._cuda_base = self._torch.cuda.memory_allocated()
        else:
            self._torch = None
        self._proc = psutil.Process()
        self.baseline = self._proc.memory_info().rss
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")   # reset the peak RSS to the current RSS (Linux >= 4.0)
            self._hwm = self._status_kb("VmHWM") is not None
        except OSError:
            self._hwm = False
        self._peak = self.baseline
        self._stop = threading.Event()
        self._thread = None
        if not self._hwm:
            def sample():
                while not self._stop.is_set():
                    self._peak = max(self._peak, self._proc.memory_info().rss)
                    self._stop.wait(self.interval_s)
            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        peak = (self._status_kb("VmHWM") if self._hwm else None) or max(self._peak, self._proc.memory_info().rss)
        self.rise_bytes = max(0, peak - self.baseline)
        if self._torch is not None:
            self.cuda_bytes = max(0, self._torch.cuda.max_memory_allocated() - self._cuda_base)
        return False


def evaluation_params(config: dict) -> dict[str, str]:
    """The evaluator's effective settings as run params (advisor.<key>)."""
    out = {}
    for key in DEFAULTS:
        value = config.get(key)
        out[f"advisor.{key}"] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    if config.get("hf_config"):
        out["advisor.hf_config"] = str(config["hf_config"])
    return out


def _config_from_path(path: Path) -> dict | None:
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("config.json"), key=lambda p: (len(p.parts), str(p)))
        path = found[0] if found else path / "config.json"
    if path.name != "config.json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and ("model_type" in data or "hidden_size" in data) else None


def find_hf_config(model: Any, config: dict) -> tuple[dict | None, str | None]:
    """A transformers config (dict) and where it came from, or (None, None)."""
    if config.get("hf_config"):
        return _config_from_path(Path(config["hf_config"])), str(config["hf_config"])
    impl = getattr(model, "_model_impl", None)
    artifacts = getattr(getattr(impl, "context", None), "artifacts", None) or {}
    for name, path in sorted(artifacts.items()):
        found = _config_from_path(Path(path))
        if found:
            return found, f"artifact '{name}'"
    pipeline = getattr(impl, "pipeline", None)
    hf_model_config = getattr(getattr(pipeline, "model", None), "config", None)
    if hf_model_config is not None and hasattr(hf_model_config, "to_dict"):
        return hf_model_config.to_dict(), "transformers pipeline"
    return None, None


def estimate_fit(hf_config: dict, origin: str, config: dict) -> tuple[dict[str, float], dict[str, Any]]:
    """Spec-based fit on each named target; errors are reported per target, never raised."""
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    try:
        from advisor.catalog.hfconfig import architecture_from_config
        from advisor.catalog.params import derived_params
        from advisor.catalog.schema import ModelEntry
        from advisor.estimate.engine import estimate

        arch = architecture_from_config(hf_config, origin=origin)
        entry = ModelEntry(id="evaluated-model", name="evaluated model", family="external",
                           params_total=derived_params(arch), params_source=f"derived from {origin}",
                           architecture=arch, architecture_source=origin, license="unknown",
                           license_source="not in the catalog")
    except Exception as exc:  # ImportError (estimator not installed) or an unusable config
        return {}, {"error": f"{type(exc).__name__}: {exc}"}
    for target in config.get("targets") or []:
        key = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(target))
        try:
            est = estimate(entry, target=str(target), format=config["format"], probe=False,
                           prompt_tokens=int(config["prompt_tokens"]), new_tokens=int(config["new_tokens"]))
        except Exception as exc:  # one bad target must not hide the others
            details[key] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        metrics.update({
            f"{key}/memory_gb": est.memory.per_device_bytes / 1e9,
            f"{key}/fits": 1.0 if est.memory.fits else 0.0,
            f"{key}/ttft_ms": est.latency.ttft_ms,
            f"{key}/e2e_p95_ms": est.latency.e2e_p95_ms,
            f"{key}/tokens_per_s": est.latency.tokens_per_s,
        })
        details[key] = {"verdict": est.memory.verdict, "basis": est.latency.basis}
    return metrics, details


def evaluate_model(model: Any, features: Any, evaluator_config: dict | None) -> tuple[dict[str, float], dict]:
    """Metrics (prefixed advisor/) and a JSON-able report for one model on one dataset."""
    config = {**DEFAULTS, **(evaluator_config or {})}
    notes: list[str] = []
    report: dict[str, Any] = {"config": {k: config[k] for k in DEFAULTS}, "params": evaluation_params(config),
                              "notes": notes}
    metrics: dict[str, float] = {}
    if model is not None:
        timing = time_predict(model.predict, features, warmup=int(config["warmup"]),
                              repeats=int(config["repeats"]), max_rows=int(config["max_rows"]))
        metrics.update(timing["metrics"])
        report["timing"] = timing
    hf_config, origin = find_hf_config(model, config)
    targets = [str(t) for t in config.get("targets") or []]
    if hf_config is None:
        metrics["fit_estimated"] = 0.0
        where = f"evaluator_config hf_config={config['hf_config']!r}" if config.get("hf_config") else \
            "the model's artifacts (or evaluator_config hf_config)"
        notes.append(f"fit not estimated: no transformers config.json in {where}"
                     + (f"; targets {', '.join(targets)} were not checked" if targets else ""))
    else:
        fit_metrics, details = estimate_fit(hf_config, origin or "config.json", config)
        metrics.update(fit_metrics)
        report["fit"] = {"source": origin, **details}
        if isinstance(details.get("error"), str):   # the config itself (per-target errors are dicts)
            metrics["fit_estimated"] = 0.0
            notes.append(f"fit not estimated: the config.json from {origin} could not be read ({details['error']})")
        else:
            metrics["fit_estimated"] = 1.0
            failed = {k: v["error"] for k, v in details.items() if isinstance(v, dict) and "error" in v}
            metrics["fit_targets_failed"] = float(len(failed))
            notes += [f"fit on {k} not estimated: {v}" for k, v in failed.items()]
    return {PREFIX + k: float(v) for k, v in metrics.items()}, report

"""Real-model probe: run a local transformers model folder (or an MLflow model's artifacts) on prompts of
the task's lengths and measure time to first token, per-token latency and peak memory.

Loading is local only: from_pretrained(..., local_files_only=True, trust_remote_code=False).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from advisor.errors import InfraError, UsageError
from advisor.estimate.schema import LatencyMeasurement, Spread
from advisor.probe.base import Budget, Probe, ProbeConfig, Progress, report
from advisor.probe.safety import dtype_bytes, ensure_fits
from advisor.probe.timing import sync

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _is_model_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file())
    return isinstance(data, dict) and "model_type" in data and has_weights


def find_transformers_dir(root: Path) -> Path:
    """The folder under `root` holding a transformers config.json next to weight files."""
    root = Path(root)
    if root.is_dir() and _is_model_dir(root):
        return root
    candidates = sorted((p.parent for p in root.rglob("config.json") if _is_model_dir(p.parent)),
                        key=lambda p: len(p.parts))
    if not candidates:
        raise UsageError(f"{root}: no transformers model folder (config.json with model_type next to weight files)")
    return candidates[0]


def download_mlflow_model(uri: str, dst: Path) -> Path:
    """Download an MLflow model's artifacts (models:/NAME/VERSION or models:/NAME@ALIAS) into dst."""
    if not uri.startswith("models:/") or len(uri) <= len("models:/"):
        raise UsageError(f"'{uri}' is not an MLflow model URI", hint="use models:/NAME/VERSION or models:/NAME@ALIAS")
    from advisor.tracking.connection import require_store

    require_store()  # the embedded sqlite registry without full MLflow: one line naming the extra
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except MlflowException as exc:
        msg = " ".join(str(exc).split())[:200]
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in msg.lower():
            raise UsageError(f"MLflow model {uri} not found ({msg})") from None
        raise InfraError(f"cannot download {uri} from MLflow ({msg})") from None
    except OSError as exc:
        raise InfraError(f"cannot download {uri} from MLflow ({exc})") from None
    return find_transformers_dir(Path(local))


def weights_bytes_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


class PeakRSS:
    """Samples this process's resident memory in a background thread (CPU peak memory)."""

    def __init__(self, interval_s: float = 0.01):
        import psutil

        self._proc = psutil.Process()
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


class RealModelProbe(Probe):
    name = "real-model"

    def __init__(self, path: Path, model_name: str, fmt: str, batch: int, prompt_tokens: int, new_tokens: int, *,
                 device: str, config: ProbeConfig | None = None, progress: Progress | None = None):
        super().__init__(config, progress)
        self.path, self.model_name, self.fmt = Path(path), model_name, fmt
        self.batch, self.prompt_tokens, self.new_tokens, self.device = batch, prompt_tokens, new_tokens, device

    def _needed_bytes(self) -> int:
        from advisor.catalog.hfconfig import read_config_json

        cfg = read_config_json(self.path)
        stored = str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32")
        factor = dtype_bytes(self.fmt) / (4 if "32" in stored else 2)
        vocab = int(cfg.get("vocab_size") or 0)
        logits = self.batch * self.prompt_tokens * vocab * 4
        return int(weights_bytes_on_disk(self.path) * factor + 2 * logits)

    def run(self, budget: Budget) -> LatencyMeasurement:
        ensure_fits(self._needed_bytes(), self.device, self.config.memory_fraction, f"loading {self.model_name}")
        return self.measure_safely(self._measure, budget, self.device, f"running {self.model_name}")

    def _load(self, st: dict):
        import torch
        from transformers import AutoModelForCausalLM

        from advisor.probe.build import torch_dtype

        kw = dict(local_files_only=True, trust_remote_code=False, attn_implementation="sdpa")
        try:
            model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=torch_dtype(self.fmt), **kw)
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(str(self.path), torch_dtype=torch_dtype(self.fmt), **kw)
        st["model"] = model.to(torch.device(self.device)).eval()
        return st["model"]

    def _measure(self, budget: Budget, st: dict) -> LatencyMeasurement:
        import torch

        from advisor.probe.energy import EnergyMeter

        dev, cfg, B, P = self.device, self.config, self.batch, self.prompt_tokens
        cuda = dev.startswith("cuda")
        from advisor.probe.machine_load import busy_note

        notes: list[str] = busy_note()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        report(self.progress, f"loading {self.model_name}", 0.02)
        with PeakRSS() as rss:
            model = self._load(st)
            from advisor.probe.hf_cache import cache_name, cache_of

            kv = cache_name(model)
            vocab = int(model.config.vocab_size)
            gen = torch.Generator(device="cpu").manual_seed(0)
            ids = torch.randint(0, vocab, (B, P), generator=gen).to(dev)

            def prefill(n):
                sync(dev)
                t = time.perf_counter()
                out = model(input_ids=ids[:, :n], use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                sync(dev)
                return 1000 * (time.perf_counter() - t), cache_of(out), nxt

            def step(tok, past):
                sync(dev)
                t = time.perf_counter()
                out = model(input_ids=tok, use_cache=True, **{kv: past})
                nxt = out.logits[:, -1:].argmax(-1)
                sync(dev)
                return 1000 * (time.perf_counter() - t), cache_of(out), nxt

            with torch.inference_mode():
                budget.check("the warm-up")
                report(self.progress, "warm-up", 0.1)
                _, past, tok = prefill(min(P, 32))
                for _ in range(min(cfg.warmup_steps, 2)):
                    _, past, tok = step(tok, past)
                budget.check("the first prefill")
                pre: list[float] = []
                report(self.progress, f"prefill {P} tokens", 0.2)
                ms, past, tok = prefill(P)
                pre.append(ms)
                for _ in range(cfg.warmup_steps):
                    _, past, tok = step(tok, past)
                steps: list[float] = []
                meter = EnergyMeter(dev)
                meter.start()
                for i in range(self.new_tokens):
                    if i >= 2 and budget.exhausted():
                        notes.append(f"stopped at the time budget after {i} of {self.new_tokens} decode steps")
                        break
                    if i < 2:
                        budget.check("two decode steps were timed")
                    ms, past, tok = step(tok, past)
                    steps.append(ms)
                    report(self.progress, "decode steps", 0.3 + 0.5 * (i + 1) / self.new_tokens)
                joules = meter.stop()
                del past
                repeats = cfg.prefill_repeats or 3
                for r in range(1, repeats):
                    if budget.left < 1.2 * pre[0] / 1000:
                        notes.append(f"stopped at the time budget after {r} of {repeats} prefill repeats")
                        break
                    ms, past, _ = prefill(P)
                    pre.append(ms)
                    del past
        peak = int(torch.cuda.max_memory_allocated(dev)) if cuda else int(rss.peak - rss.baseline)
        notes.append("peak memory: torch.cuda.max_memory_allocated" if cuda
                     else "peak memory: growth of this process's resident memory while loading and running")
        jpt = joules / (len(steps) * B) if joules is not None and steps else None
        report(self.progress, "done", 1.0)
        return LatencyMeasurement(model=self.model_name, format=self.fmt, device=dev, prompt_tokens=P, batch=B,
                                  prefill_ms=Spread.from_values(pre), decode_ms_per_token=Spread.from_values(steps),
                                  peak_bytes=peak, joules_per_token=jpt, method="real-model", notes=notes)

"""Accuracy of the architecture probe against the full model, measured in the same run.

For each architecture: the probe's prediction (truncated model, extrapolated) and the full model
(transformers, random weights, measured the way /work/shared/tools/measure_transformers.py does:
a 32-token warm-up forward, the prompt forward, 12 warm decode steps, median of the timed steps),
side by side, with the errors and the wall time of each.

Usage: python benchmarks/probe_accuracy.py [--models gpt2,smollm2-135m,...] [--prompt 256] [--new 32]
       [--format fp32] [--repeat-full 2]
Goal: |error| <= 15% for prefill and decode of every model; probe wall time <= 1/5 of the full one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# Architectures used when the catalog lacks an entry (values from the models' config.json files,
# see /work/shared/reference/catalog-facts.md).
FALLBACK_ARCHS = {
    "gpt2": dict(model_type="gpt2", n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024,
                 tie_word_embeddings=True),
    "smollm2-135m": dict(model_type="llama", hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                         max_position_embeddings=8192, tie_word_embeddings=True),
    "smollm2-360m": dict(model_type="llama", hidden_size=960, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5, intermediate_size=2560, vocab_size=49152,
                         max_position_embeddings=8192, tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                         max_position_embeddings=32768, tie_word_embeddings=True),
}


def architecture(name: str):
    from advisor.catalog.schema import Architecture

    try:
        from advisor.catalog.loader import get_catalog

        return get_catalog().model(name).arch, "catalog"
    except Exception:
        return Architecture(**FALLBACK_ARCHS[name]), "built-in table"


def measure_full(arch, fmt: str, prompt: int, new: int) -> dict:
    """The full model, transformers from_config (default init), as the shared measuring tool does."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from advisor.probe.build import hf_config_kwargs, torch_dtype

    t0 = time.perf_counter()
    kw = hf_config_kwargs(arch, arch.num_hidden_layers, arch.vocab_size, prompt + new + 16)
    cfg = AutoConfig.for_model(arch.model_type, **kw)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype(fmt), attn_implementation="sdpa").eval()
    ids = torch.randint(0, arch.vocab_size, (1, prompt))
    with torch.inference_mode():
        model(ids[:, :32], use_cache=True)
        t = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill_ms = 1000 * (time.perf_counter() - t)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        for _ in range(12):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        steps = []
        for _ in range(new):
            t = time.perf_counter()
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            steps.append(1000 * (time.perf_counter() - t))
    del model, out, past
    return {"prefill_ms": prefill_ms, "decode_ms": statistics.median(steps[2:]),
            "wall_s": time.perf_counter() - t0}


def measure_probe(name: str, arch, fmt: str, prompt: int, new: int) -> dict:
    from advisor.probe.api import probe_architecture

    t0 = time.perf_counter()
    m, detail = probe_architecture(name, arch, fmt, 1, prompt, new_tokens=new, device="cpu", budget_s=60)
    return {"prefill_ms": m.prefill_ms.p50, "decode_ms": m.decode_ms_per_token.p50,
            "prefill_p95": m.prefill_ms.p95, "decode_p95": m.decode_ms_per_token.p95,
            "wall_s": time.perf_counter() - t0, "detail": detail}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="gpt2,smollm2-135m,smollm2-360m,qwen2.5-0.5b")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--format", default="fp32")
    args = ap.parse_args(argv)

    import torch

    from advisor.probe.api import microprobe_rates

    torch.manual_seed(0)
    # The first timings of a process are slow (imports, allocator, thread pool): a throw-away probe of a
    # toy architecture first, so that neither side of the comparison pays for them.
    from advisor.catalog.schema import Architecture
    from advisor.probe.api import probe_architecture

    probe_architecture("warm-up", Architecture(model_type="llama", hidden_size=64, num_hidden_layers=2,
                                               num_attention_heads=4, vocab_size=256), args.format, 1, 32,
                       new_tokens=4, device="cpu")
    t = time.perf_counter()
    rates = microprobe_rates(device="cpu", budget_s=10)
    print(f"microprobes ({time.perf_counter() - t:.1f} s, once per machine, cached): "
          f"matmul {rates.matmul_tflops} TFLOPS, copy {rates.bandwidth_gbs:.1f} GB/s, "
          f"step {rates.step_overhead_ms:.3f} ms, per-layer host {rates.per_layer_overhead_ms} ms")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.format}, "
          f"batch 1, prompt {args.prompt}, {args.new} new tokens\n")
    head = (f"{'model':<14} {'prefill ms pred/meas':>22} {'err':>7} {'decode ms/tok pred/meas':>24} {'err':>7}"
            f" {'probe s':>8} {'full s':>7} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    worst = {"prefill": 0.0, "decode": 0.0, "ratio": 0.0}
    for name in args.models.split(","):
        arch, src = architecture(name)
        p = measure_probe(name, arch, args.format, args.prompt, args.new)
        f = measure_full(arch, args.format, args.prompt, args.new)
        ep = (p["prefill_ms"] - f["prefill_ms"]) / f["prefill_ms"]
        ed = (p["decode_ms"] - f["decode_ms"]) / f["decode_ms"]
        ratio = p["wall_s"] / f["wall_s"]
        load = os.getloadavg()[0]
        worst["prefill"] = max(worst["prefill"], abs(ep))
        worst["decode"] = max(worst["decode"], abs(ed))
        worst["ratio"] = max(worst["ratio"], ratio)
        print(f"{name:<14} {p['prefill_ms']:>10.1f} /{f['prefill_ms']:>9.1f} {100 * ep:>+6.1f}% "
              f"{p['decode_ms']:>11.2f} /{f['decode_ms']:>10.2f} {100 * ed:>+6.1f}% "
              f"{p['wall_s']:>8.2f} {f['wall_s']:>7.2f} {ratio:>6.2f}", flush=True)
        d = p["detail"]
        print(f"{'':<14} probe p95: prefill {p['prefill_p95']:.1f} ms, decode {p['decode_p95']:.2f} ms; "
              f"parts: layer {d.prefill.layer_ms:.1f}/{d.decode.layer_ms:.2f} ms, head "
              f"{d.prefill.lm_head_ms:.1f}/{d.decode.lm_head_ms:.2f} ms, fixed {d.prefill.fixed_ms:.1f}/"
              f"{d.decode.fixed_ms:.2f} ms ({d.depth} of {d.full_depth} layers; arch from {src}; "
              f"load average {load:.1f})", flush=True)
    ok = worst["prefill"] <= 0.15 and worst["decode"] <= 0.15 and worst["ratio"] <= 0.2
    print(f"\nworst |error|: prefill {100 * worst['prefill']:.1f}%, decode {100 * worst['decode']:.1f}%; "
          f"worst probe/full wall-time ratio {worst['ratio']:.2f} -> goal {'MET' if ok else 'NOT MET'} "
          "(15% / 0.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

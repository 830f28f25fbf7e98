"""Child process of the llama.cpp engine probe: loads one GGUF with llama-cpp-python and times it.

Run as `python -m advisor.probe.llamacpp_worker '<json>'`; prints one JSON line. It runs in its own
process because a native crash in an engine kernel (seen: SIGSEGV in the AMX path on a VM) must cost
the probe one attempt, not the advisor process.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

# Decode steps run before the timed ones: the first steps after a prefill run slower (the switch from
# batch to single-token graphs, caches), more so in the shallow files of an extrapolated model.
WARM_STEPS = 4


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    import llama_cpp as lc

    lc.llama_backend_init()
    params = lc.llama_model_default_params()
    params.n_gpu_layers = 0           # this CPU: a CUDA or Metal build would otherwise offload every layer
    if hasattr(params, "use_extra_bufts"):
        params.use_extra_bufts = bool(args["extra_bufts"])
    t0 = time.perf_counter()
    model = lc.llama_model_load_from_file(args["path"].encode(), params)
    if not model:
        print(json.dumps({"error": "llama.cpp could not load the synthetic GGUF"}))
        return 3
    cp = lc.llama_context_default_params()
    prompt, steps, ubatch = int(args["prompt"]), int(args["steps"]), int(args["ubatch"])
    cp.n_ctx = prompt + steps + WARM_STEPS + 8
    cp.n_batch = cp.n_ubatch = ubatch
    cp.n_threads = cp.n_threads_batch = int(args["threads"])
    for flag in ("offload_kqv", "op_offload"):     # keep the KV cache and every op on the CPU
        if hasattr(cp, flag):
            setattr(cp, flag, False)
    ctx = lc.llama_init_from_model(model, cp)
    if not ctx:
        print(json.dumps({"error": "llama.cpp could not create a context (memory?)"}))
        lc.llama_model_free(model)
        return 3
    load_s = time.perf_counter() - t0
    memory = lc.llama_get_memory(ctx)
    deadline = time.monotonic() + float(args["budget_s"])

    def prefill() -> float:
        lc.llama_memory_clear(memory, True)
        start = time.perf_counter()
        done = 0
        while done < prompt:          # llama-bench's pp test: the prompt in n_batch chunks
            n = min(ubatch, prompt - done)
            toks = (lc.llama_token * n)(*[(3 + (done + i) * 7919) % args["vocab"] for i in range(n)])
            if lc.llama_decode(ctx, lc.llama_batch_get_one(toks, n)) != 0:
                raise RuntimeError("llama_decode failed in prefill")
            done += n
        return (time.perf_counter() - start) * 1e3

    prefill()                         # warm-up: first-touch of the weights, thread pool start
    prefill_ms = [prefill()]
    while len(prefill_ms) < int(args["repeats"]) and time.monotonic() < deadline:
        prefill_ms.append(prefill())
    decode_ms = []
    for k in range(WARM_STEPS + steps):   # after the last prefill: contexts prompt .. prompt + 4 + steps
        one = (lc.llama_token * 1)((11 + k * 31) % args["vocab"])
        start = time.perf_counter()
        if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed in decode")
        if k >= WARM_STEPS:
            decode_ms.append((time.perf_counter() - start) * 1e3)
        if time.monotonic() > deadline and len(decode_ms) >= 3:
            break
    info = lc.llama_print_system_info()
    print(json.dumps({"prefill_ms": prefill_ms, "decode_ms": decode_ms, "load_s": load_s,
                      "system_info": info.decode() if isinstance(info, bytes) else str(info),
                      "llama_cpp_python": getattr(lc, "__version__", "unknown"),
                      "decode_ms_median": statistics.median(decode_ms)}))
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

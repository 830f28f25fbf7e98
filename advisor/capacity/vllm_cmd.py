"""The serving layout of a plan in words, and a vLLM command line per replica (pure; deploys nothing).

The model is the catalog entry's Hugging Face repo id (its instruct variant where the quality proxy is
the instruct one). fp8 and nf4 are quantised by vLLM at load time from the 16-bit checkpoint
(`--quantization fp8`, `--quantization bitsandbytes`); AWQ, GPTQ, int8 and int4 need a checkpoint
that is already quantised, which the catalog does not name: the command carries a placeholder for it
(vLLM reads the method from that checkpoint's config).
"""

from __future__ import annotations

import shlex

from advisor.catalog.schema import ModelEntry

# vLLM quantises these itself from the 16-bit weights (docs.vllm.ai, Quantization: FP8 W8A8 online
# dynamic quantization; BitsAndBytes in-flight quantization)
ONLINE = {"fp8": "fp8", "nf4": "bitsandbytes"}
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
PREQUANTISED = {"awq": "AWQ", "gptq": "GPTQ", "int4": "int4 (AWQ or GPTQ)", "int8": "int8 (W8A8)",
                "mxfp4": "MXFP4", "nvfp4": "NVFP4"}


def repo_id(entry: ModelEntry, instruct: bool = True) -> str:
    """The entry's org/name alias: the instruct one when asked and listed, else the first."""
    repos = [a for a in entry.aliases if "/" in a]
    if not repos:
        return entry.id
    if instruct:
        for r in repos:
            low = r.lower()
            if "instruct" in low or low.endswith("-it") or "-chat" in low:
                return r
    return repos[0]


def model_argument(entry: ModelEntry, fmt: str, instruct: bool = True) -> tuple[str, list[str], str | None]:
    """(model argument, extra flags, placeholder note) for serving `entry` in `fmt`."""
    repo = repo_id(entry, instruct)
    if fmt in DTYPES:
        return repo, ["--dtype", DTYPES[fmt]], None
    if fmt in ONLINE:
        return repo, ["--quantization", ONLINE[fmt]], None
    if fmt == "mxfp4" and not entry.official_16bit:
        return repo, [], None                       # the release itself is MXFP4 (gpt-oss)
    label = PREQUANTISED.get(fmt, fmt)
    return (f"<{label} checkpoint of {repo}>", [],
            f"replace <{label} checkpoint of {repo}> with the {label} repo you serve")


def replica_commands(entry: ModelEntry, fmt: str, *, tensor_parallel: int, replicas: int, gpus_per_node: int,
                     max_model_len: int, max_num_seqs: int | None = None, gpu_memory_utilization: float | None = None,
                     kv_cache_dtype: str | None = None, instruct: bool = True, base_port: int = 8000) -> list[str]:
    """One `vllm serve` line per replica; replicas are packed onto nodes of `gpus_per_node` GPUs, each on
    its own GPUs (CUDA_VISIBLE_DEVICES) and port."""
    model, flags, _ = model_argument(entry, fmt, instruct)
    per_node = max(1, gpus_per_node // max(1, tensor_parallel))
    out = []
    for i in range(replicas):
        slot = i % per_node
        gpus = ",".join(str(slot * tensor_parallel + g) for g in range(tensor_parallel))
        args = ["vllm", "serve", model, "--tensor-parallel-size", str(tensor_parallel),
                "--max-model-len", str(max_model_len), *flags]
        if max_num_seqs:
            args += ["--max-num-seqs", str(max_num_seqs)]
        if gpu_memory_utilization:
            args += ["--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]
        if kv_cache_dtype and kv_cache_dtype != "fp16":
            args += ["--kv-cache-dtype", kv_cache_dtype]
        args += ["--port", str(base_port + slot)]
        line = " ".join(a if a.startswith("<") else shlex.quote(a) for a in args)
        node = f"# node {i // per_node + 1}: " if replicas > per_node else ""
        out.append(f"{node}CUDA_VISIBLE_DEVICES={gpus} {line}")
    return out


def layout_text(runtime: str, *, tensor_parallel: int, replicas: int, gpus_per_node: int, device_name: str,
                instances: int | None = None, instance: str | None = None) -> str:
    """'vLLM with TP 2, 3 replicas behind a load balancer (6 x NVIDIA L40S on 1 node)'."""
    name = {"vllm": "vLLM", "sglang": "SGLang", "tgi": "TGI", "tensorrt-llm": "TensorRT-LLM"}.get(runtime, runtime)
    gpus = replicas * tensor_parallel
    if instances:
        where = f"{instances} x {instance or 'instance'}"
    else:
        per_node = max(1, gpus_per_node // max(1, tensor_parallel))
        nodes = -(-replicas // per_node)
        where = f"{gpus} x {device_name} on {nodes} node{'s' if nodes > 1 else ''}"
    lb = " behind a load balancer" if replicas > 1 else ""
    tp = f"TP {tensor_parallel}" if tensor_parallel > 1 else "one GPU per replica"
    return f"{name} with {tp}, {replicas} replica{'s' if replicas > 1 else ''}{lb} ({where})"

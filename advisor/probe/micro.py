"""Hardware microprobes (a few seconds): matmul rate per dtype, copy bandwidth, the weight-streaming
rate of a matrix-vector product per dtype (what batch-1 decode does), the fixed cost of one framework
step and the host overhead of one (tiny) transformer layer -> MeasuredRates."""

from __future__ import annotations

import statistics
from functools import partial

from advisor.estimate.schema import MeasuredRates
from advisor.probe.base import Budget, DoesNotFit, Progress, report
from advisor.probe.safety import allowance_bytes, free_device, is_oom
from advisor.probe.timing import repeat_ms, sync

# Inference-like GEMM shapes: (rows = tokens, inner = hidden, cols = projection width).
CPU_GEMM = (256, 1024, 4096)
# bf16/fp16 GEMMs run 20-50x slower than fp32 on CPUs without native kernels: a smaller shape.
CPU_GEMM_HALF = (64, 1024, 2048)
CUDA_GEMM = (4096, 4096, 4096)
# Decode-shaped product: one token times a weight matrix (32 MiB in fp32, 16 MiB in bf16).
GEMV_SHAPE = (2048, 4096)
CUDA_GEMV_SHAPE = (8192, 8192)
CPU_COPY_BYTES = 128 << 20
CUDA_COPY_BYTES = 1 << 30


def default_dtypes(device: str) -> list[str]:
    if device.startswith("cuda"):
        import torch

        out = ["fp16"]
        if torch.cuda.is_bf16_supported():
            out.insert(0, "bf16")
        return out
    # Catalog models are offered in bf16/fp16 too; on CPU their speed differs wildly from fp32.
    return ["fp32", "bf16", "fp16"]


def matmul_tflops(device: str, fmt: str, shape: tuple[int, int, int], deadline) -> float:
    import torch

    from advisor.probe.build import torch_dtype

    m, k, n = shape
    a = torch.randn(m, k, device=device).to(torch_dtype(fmt))
    b = torch.randn(k, n, device=device).to(torch_dtype(fmt))
    try:
        ts = repeat_ms(partial(torch.matmul, a, b), device, repeats=10, warmup=2, deadline=deadline)
    finally:
        del a, b
    return 2 * m * k * n / (statistics.median(ts) / 1000) / 1e12


def gemv_gbs(device: str, fmt: str, shape: tuple[int, int], deadline) -> float:
    """Weight bytes streamed per second by x[1, k] @ W[k, n]: the decode step's matmul shape.

    On CPUs the bf16/fp16 matrix-vector kernels can be 20x slower than fp32 even where bf16 GEMMs are
    fast (seen here: AVX512-BF16, bf16 GEMM 86 GFLOPS but bf16 GEMV 0.5 GB/s vs fp32 10.6 GB/s), so
    copy bandwidth alone cannot predict decode.
    """
    import torch

    from advisor.probe.build import torch_dtype

    k, n = shape
    dtype = torch_dtype(fmt)
    w = torch.randn(k, n, device=device).to(dtype)
    x = torch.randn(1, k, device=device).to(dtype)
    try:
        ts = repeat_ms(partial(torch.matmul, x, w), device, repeats=8, warmup=2, deadline=deadline)
    finally:
        nbytes = w.numel() * w.element_size()
        del w, x
    return nbytes / (statistics.median(ts) / 1000) / 1e9


def copy_gbs(device: str, nbytes: int, deadline) -> float:
    import torch

    x = torch.ones(nbytes // 4, device=device, dtype=torch.float32)
    y = torch.empty_like(x)
    try:
        ts = repeat_ms(partial(y.copy_, x), device, repeats=8, warmup=1, deadline=deadline)
    finally:
        del x, y
    return 2 * nbytes / (statistics.median(ts) / 1000) / 1e9


def step_overhead_ms(device: str, deadline, ops: int = 200) -> float:
    """Fixed cost of one framework op: a loop of tiny in-place adds, per op."""
    import torch

    x = torch.zeros(8, device=device)

    def loop():
        for _ in range(ops):
            x.add_(1.0)

    ts = repeat_ms(loop, device, repeats=5, warmup=1, deadline=deadline)
    return statistics.median(ts) / ops


def per_layer_overhead_ms(device: str, deadline) -> float:
    """Host cost of one decoder layer with negligible arithmetic: (T(5 layers) - T(1 layer)) / 4."""
    import torch

    from advisor.catalog.schema import Architecture
    from advisor.probe.blocks import build_llama_like

    arch = Architecture(model_type="llama", hidden_size=64, num_hidden_layers=5, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=128, vocab_size=64)
    with torch.device(device):
        model = build_llama_like(arch, 5).eval()
    tok = torch.zeros(1, 1, dtype=torch.long, device=device)
    out = {}
    try:
        with torch.inference_mode():
            _, full_cache = model(torch.zeros(1, 16, dtype=torch.long, device=device))
            for depth in (1, 5):
                layers = model.layers
                model.layers = torch.nn.ModuleList(list(layers)[:depth])
                cache = full_cache[:depth]
                out[depth] = statistics.median(
                    repeat_ms(partial(model, tok, cache), device, repeats=20, warmup=3, deadline=deadline))
                model.layers = layers
    finally:
        del model
    return max(0.0, (out[5] - out[1]) / 4)


def run_microprobes(device: str, *, budget: Budget, dtypes: list[str] | None = None,
                    memory_fraction: float = 0.5, fingerprint: str | None = None,
                    progress: Progress | None = None) -> MeasuredRates:
    import torch

    cuda = device.startswith("cuda")
    dtypes = dtypes or default_dtypes(device)
    deadline = lambda: budget.exhausted()  # noqa: E731
    copy_bytes = CUDA_COPY_BYTES if cuda else CPU_COPY_BYTES
    cap = allowance_bytes(device, memory_fraction)
    if cap is not None:
        copy_bytes = min(copy_bytes, cap // 3)
        if copy_bytes < (8 << 20):
            raise DoesNotFit(f"less than {3 * 8} MB of the allowed memory is free on {device}")
    rates: dict[str, float] = {}
    decode: dict[str, float] = {}

    def dtype_rates(fmt: str, at: float) -> None:
        budget.check(f"the {fmt} matmul probe")
        report(progress, f"microprobe: {fmt} matmul", at)
        shape = CUDA_GEMM if cuda else (CPU_GEMM if fmt == "fp32" else CPU_GEMM_HALF)
        rates[fmt] = matmul_tflops(device, fmt, shape, deadline)
        if not budget.exhausted():
            decode[fmt] = gemv_gbs(device, fmt, CUDA_GEMV_SHAPE if cuda else GEMV_SHAPE, deadline)

    try:
        report(progress, "microprobe: step overhead", 0.0)
        budget.check("the microprobes")
        step = step_overhead_ms(device, deadline)
        # What every estimate needs comes first (the first dtype, the copy bandwidth); the other dtypes only
        # refine and take what is left: on a CPU without bf16 kernels one bf16 matmul probe can take seconds,
        # and it must not leave the bandwidth probe without budget.
        first, *refinements = dtypes
        dtype_rates(first, 0.1)
        budget.check("the bandwidth probe")
        report(progress, "microprobe: memory bandwidth", 0.3)
        bw = copy_gbs(device, copy_bytes, deadline)
        per_layer = None
        if not budget.exhausted():
            report(progress, "microprobe: per-layer overhead", 0.4)
            per_layer = per_layer_overhead_ms(device, deadline)
        for i, fmt in enumerate(refinements):
            if budget.exhausted():
                break  # later dtypes only refine: their formats stay uncalibrated
            dtype_rates(fmt, 0.5 + 0.5 * i / len(refinements))
        sync(device)
    except Exception as exc:
        if is_oom(exc):
            raise DoesNotFit(f"out of memory during the microprobes on {device}") from None
        raise
    finally:
        free_device(device)
    report(progress, "microprobes done", 1.0)
    return MeasuredRates(device=device, matmul_tflops=rates, decode_gbs=decode, bandwidth_gbs=bw, step_overhead_ms=step,
                         per_layer_overhead_ms=per_layer, torch_version=torch.__version__,
                         fingerprint=fingerprint)

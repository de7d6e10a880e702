"""GPU measurements of the acceptance run (gpucnn.bench.acceptance): the training step three ways
against PyTorch + cuDNN, each kernel of a convolution, and every matrix product of a step with
kernels/gemm.cu and with cuBLAS.  Device-resident batches, CUDA events around each call
(:func:`gpucnn.bench.timing.make_timer`), steady state (:func:`time_steady`: untimed calls,
then consecutive timed ones, rounds alternating the order).  Runs on the stand-in CuPy too
(its events time the host), which is how the acceptance run is rehearsed on a CPU.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..device import import_cupy
from .memory import cuda_peak_memory
from .nets import NETS, Config, gpucnn_model, gpucnn_step, make_data
from .timing import make_timer, summarize, time_steady
from .torch_twins import torch_step

# The variants of a training step: gpucnn's, then PyTorch's (torch_device's)
STEP_VARIANTS = {
    "eager": "gpucnn eager, cuBLAS products (what training without a graph runs)",
    "gemm": "gpucnn eager, gemm.cu products",
    "replay": "gpucnn CUDA graph, one replay (the batch already on the device)",
    "graph": "gpucnn CUDA graph as the Trainer steps it (batch upload, replay, loss read)",
    "torch": "PyTorch + cuDNN, default settings (cudnn.benchmark on; TF32 convolutions)",
    "torchfp32": "PyTorch + cuDNN with TF32 off (float32 arithmetic, as gpucnn's)",
}


def _cuda():
    from .. import primitives

    return primitives.for_array_module(import_cupy())


def _stream_timer(stream):
    """make_timer's CUDA timer with its events on ``stream`` (a graph's side stream)."""
    cupy = import_cupy()

    def timer(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1e3

    return timer


def _graph_step(cfg: Config, dtype):
    """(GraphStep of a fresh model for cfg, its host batch) after the warm-up and the capture."""
    from ..optim import SGD
    from ..train.graph import GraphStep
    from .nets import LR

    model = gpucnn_model(cfg, dtype, "cuda")
    step = GraphStep(model, SGD(model.parameters(), lr=LR))
    X, y = make_data(cfg, dtype)
    for _ in range(2):
        step.step(X, y)
    return step, X, y


def _torch_fp32(torch, step):
    def fp32():
        flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return step()
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    return fp32


def train_row(cfg: Config, dtype, torch_mod, torch_device, rounds, steps, warmup) -> dict:
    """One config's training step in every STEP_VARIANTS (PyTorch's where ``torch_mod``):
    median ms [q1, q3], images/s, time relative to PyTorch's default, peak device memory."""
    cuda = _cuda()
    eager, _ = gpucnn_step(cfg, dtype, "cuda")

    def gemm():
        with cuda.gemm_kernels():
            return eager()

    graph, X, y = _graph_step(cfg, dtype)
    fns = {"eager": eager, "gemm": gemm, "graph": lambda: graph.step(X, y)}
    timers = {k: make_timer("cuda", "gpucnn") for k in fns}
    notes = {}
    if graph.graph is not None:
        fns["replay"], timers["replay"] = (lambda: graph.graph.launch(graph.stream),
                                           _stream_timer(graph.stream))
    else:
        notes["graph"] = graph.failed
    if torch_mod is not None:
        # the twin of gpucnn_model(cfg) on torch's device: seed 0, the same starting weights
        fns["torch"] = torch_step(cfg, dtype, torch_device)
        fns["torchfp32"] = _torch_fp32(torch_mod, torch_step(cfg, dtype, torch_device))
        timers.update({k: make_timer(torch_device, "torch") for k in ("torch", "torchfp32")})
    res = time_steady(fns, timers, rounds, steps, warmup)
    row = {"config": cfg.name, "net": cfg.net, "batch": cfg.batch, "notes": notes,
           "variants": {k: res[k] for k in fns}}
    for k, r in row["variants"].items():
        r["images_per_s"] = cfg.batch / (r["median_ms"] / 1e3)
        if "torch" in row["variants"]:
            r["vs_torch"] = r["median_ms"] / row["variants"]["torch"]["median_ms"]
    row["memory"] = {"eager_mb": cuda_peak_memory("gpucnn", eager)["peak_mb"],
                     "graph_pool_mb": graph.pool.total_bytes() / 2**20}
    if torch_mod is not None and torch_device == "cuda":
        row["memory"]["torch_mb"] = cuda_peak_memory("torch", fns["torch"])["peak_mb"]
    return row


def _timed(fn, timer, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    return summarize([timer(fn) for _ in range(reps)])


def conv_rows(net: str, batch: int, size: int, dtype, torch_mod, torch_device, reps) -> list:
    """Net ``net``'s convolution at ``batch`` images of ``size`` pixels: each of its kernels
    alone (im2col, the three products with cuBLAS and with gemm.cu, the bias gradient, col2im),
    then forward + backward as a training step runs it (no dx for the first layer) with each
    GEMM, and PyTorch's (cuDNN)."""
    cupy, cuda, s = import_cupy(), _cuda(), NETS[net]
    rng = np.random.default_rng(0)
    k, pad = s.ksize, s.pad
    x = cupy.asarray(rng.standard_normal((batch, s.channels, size, size)).astype(dtype))
    w = cupy.asarray(rng.standard_normal((s.filters, s.channels, k, k)).astype(dtype))
    b = cupy.asarray(rng.standard_normal(s.filters).astype(dtype))
    cols = cuda.im2col(x, k, k, 1, pad)
    side = size + 2 * pad - k + 1  # stride 1
    wmat, dmat = w.reshape(s.filters, -1), cupy.asarray(
        rng.standard_normal((s.filters, cols.shape[1])).astype(dtype))
    dout = dmat.reshape(s.filters, batch, side, side).transpose(1, 0, 2, 3)  # as pooling writes it
    cache = F.conv2d_forward(x, w, b, 1, pad)[1]

    def both(fn):
        with cuda.gemm_kernels():
            return fn()

    step = (lambda: F.conv2d_backward(dout, F.conv2d_forward(x, w, b, 1, pad)[1], need_dx=False))
    items = {
        "im2col": lambda: cuda.im2col(x, k, k, 1, pad),
        "forward GEMM, cuBLAS": lambda: cuda.matmul(wmat, cols),
        "forward GEMM, gemm.cu": lambda: cuda.gemm(wmat, cols),
        "bias gradient": lambda: cuda.bias_grad(dmat.reshape(1, s.filters, -1)),
        "weight-gradient GEMM, cuBLAS": lambda: cuda.matmul(dmat, cols.T),
        "weight-gradient GEMM, gemm.cu": lambda: cuda.gemm(dmat, cols.T),
        "input-gradient GEMM, cuBLAS": lambda: cuda.matmul(wmat.T, dmat),
        "input-gradient GEMM, gemm.cu": lambda: cuda.gemm(wmat.T, dmat),
        "col2im": lambda: cuda.col2im(cols, x.shape, k, k, 1, pad),
        "forward + backward (no dx), cuBLAS": step,
        "forward + backward (no dx), gemm.cu": lambda: both(step),
        "backward only, cuBLAS": lambda: F.conv2d_backward(dout, cache, need_dx=False),
    }
    rows = [{"net": net, "batch": batch, "kernel": name,
             **_timed(fn, make_timer("cuda", "gpucnn"), reps, 2)} for name, fn in items.items()]
    if torch_mod is not None:
        rows.append({"net": net, "batch": batch, "kernel": "PyTorch forward + backward (cuDNN)",
                     **_timed(_torch_conv(torch_mod, torch_device, x, w, b, pad, dout),
                              make_timer(torch_device, "torch"), reps, 2)})
    return rows


def _torch_conv(torch, device, x, w, b, pad, dout):
    from ..device import to_numpy

    t = {n: torch.from_numpy(to_numpy(a)).to(device) for n, a in
         (("x", x), ("w", w), ("b", b), ("dout", dout))}
    t["w"].requires_grad_(True)
    t["b"].requires_grad_(True)

    def step():
        out = torch.nn.functional.conv2d(t["x"], t["w"], t["b"], padding=pad)
        return torch.autograd.grad(out, (t["w"], t["b"]), t["dout"])

    return step


def step_products(cfg: Config) -> list:
    """(name, A shape as stored, A transposed, B shape as stored, B transposed) of every
    product one training step of ``cfg`` takes, laid out as the step lays them out."""
    s, n = cfg.spec, cfg.batch
    k2, p = s.channels * s.ksize ** 2, n * s.size ** 2
    d = s.filters * s.pooled ** 2
    return [("conv forward", (s.filters, k2), False, (k2, p), False),
            ("conv weight gradient", (s.filters, p), False, (k2, p), True),
            ("hidden forward", (n, d), False, (d, s.hidden), False),
            ("hidden weight gradient", (n, d), True, (n, s.hidden), False),
            ("hidden input gradient", (n, s.hidden), False, (d, s.hidden), True),
            ("output forward", (n, s.hidden), False, (s.hidden, s.classes), False),
            ("output weight gradient", (n, s.hidden), True, (n, s.classes), False),
            ("output input gradient", (n, s.classes), False, (s.hidden, s.classes), True)]


def product_rows(cfg: Config, dtype, reps: int) -> list:
    """Every product of a training step of ``cfg``, with gemm.cu and with cuBLAS: median ms and
    GFLOP/s of each."""
    cupy, cuda = import_cupy(), _cuda()
    rng = np.random.default_rng(0)
    rows = []
    for name, a_shape, ta, b_shape, tb in step_products(cfg):
        a = cupy.asarray(rng.standard_normal(a_shape).astype(dtype))
        b = cupy.asarray(rng.standard_normal(b_shape).astype(dtype))
        a, b = (a.T if ta else a), (b.T if tb else b)
        flop = 2 * a.shape[0] * a.shape[1] * b.shape[1]
        row = {"config": cfg.name, "product": name, "m_k_n": [a.shape[0], a.shape[1], b.shape[1]]}
        for what, fn in (("cublas", lambda: cuda.matmul(a, b)), ("gemm", lambda: cuda.gemm(a, b))):
            t = _timed(fn, make_timer("cuda", "gpucnn"), reps, 2)
            row[what] = {**t, "gflops": flop / (t["median_ms"] / 1e3) / 1e9}
        row["gemm_vs_cublas"] = row["gemm"]["median_ms"] / row["cublas"]["median_ms"]
        rows.append(row)
    return rows

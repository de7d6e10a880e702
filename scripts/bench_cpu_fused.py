"""Time the CPU's batch norm and ReLU passes (gpucnn/cpu_fused.py) against the NumPy reference
and PyTorch's ops, one thread, side by side.

    python scripts/bench_cpu_fused.py [--rounds 15] [--batches 64,8] [--dtype float32] [--wall]

Shapes are the ResNet's (examples/resnet.toml on 3x32x32): (N, 16, 32, 32) and (N, 32, 16, 16).
Each op is forward + backward: batch norm in training mode followed by a ReLU (gpucnn: the fused
native op, or gpucnn.batchnorm's NumPy code then NumPy's relu; PyTorch: BatchNorm2d, relu,
autograd backward), and a residual sum followed by a ReLU.  Each round times every candidate
once (interleaved, so machine noise hits all alike); the table shows medians over rounds of
this thread's CPU time (``time.thread_time``; ``--wall`` for wall-clock).  Inputs are fresh
every call (a cycle of 8 arrays, 32 MB or more), as in a training step where each layer reads
what the one before wrote, not a cache-resident array.
"""
from __future__ import annotations

import os

os.environ["GPUCNN_CPU_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gpucnn import batchnorm, cpu, native  # noqa: E402


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def cases(shape, dtype, torch):
    rng = np.random.default_rng(0)
    C = shape[1]
    xs = itertools.cycle([rng.standard_normal(shape).astype(dtype) for _ in range(8)])
    dout = rng.standard_normal(shape).astype(dtype)
    g, b = np.ones(C, dtype), np.zeros(C, dtype)
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)

    def bn_gpucnn():
        out, saved = cpu.batchnorm_forward(next(xs), g, b, rm, rv, True, 0.1, 1e-5, True)
        cpu.batchnorm_backward(dout, saved, True)

    def bn_numpy():
        out, saved = batchnorm.forward(np, next(xs), g, b, rm, rv, True, 0.1, 1e-5, False)
        out = np.maximum(out, 0)
        batchnorm.backward(dout * (out > 0), saved, True)

    def add_gpucnn():
        out = cpu.add_relu_forward(next(xs), next(xs))
        cpu.relu_backward(dout, out)

    def add_numpy():
        out = np.maximum(next(xs) + next(xs), 0)
        _ = dout * (out > 0)

    ops = {"batchnorm + relu, gpucnn": bn_gpucnn, "batchnorm + relu, numpy": bn_numpy,
           "residual sum + relu, gpucnn": add_gpucnn, "residual sum + relu, numpy": add_numpy}
    if torch is not None:
        bn = torch.nn.BatchNorm2d(C).to(getattr(torch, np.dtype(dtype).name))
        txs = itertools.cycle([torch.from_numpy(next(xs)).requires_grad_() for _ in range(8)])
        td = torch.from_numpy(dout)

        def bn_torch():
            torch.relu(bn(next(txs))).backward(td)

        def add_torch():
            torch.relu(next(txs) + next(txs)).backward(td)

        ops.update({"batchnorm + relu, pytorch": bn_torch, "residual sum + relu, pytorch": add_torch})
    return ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batches", default="64,8")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of thread CPU time")
    args = ap.parse_args()
    clock = time.perf_counter if args.wall else time.thread_time
    torch = _torch()
    print(f"native: {native.isa if native.available else native.reason}; "
          f"pytorch: {torch.__version__ if torch else 'not installed'}; {args.dtype}, 1 thread, "
          f"median {'wall' if args.wall else 'CPU'} ms of {args.rounds} rounds (forward + backward)")
    for batch in (int(v) for v in args.batches.split(",")):
        for shape in ((batch, 16, 32, 32), (batch, 32, 16, 16)):
            ops = cases(shape, np.dtype(args.dtype), torch)
            times = {k: [] for k in ops}
            for fn in ops.values():
                fn()
            for _ in range(args.rounds):
                for k, fn in ops.items():
                    t = clock()
                    fn()
                    times[k].append(clock() - t)
            print(f"\n{shape}")
            for k, ts in times.items():
                print(f"  {k:<32} {statistics.median(ts) * 1e3:8.3f}")


if __name__ == "__main__":
    main()

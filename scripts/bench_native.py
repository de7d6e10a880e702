"""Time gpucnn.native's kernels against the NumPy path, one thread, side by side.

    python scripts/bench_native.py [--rounds 15] [--dtype float32] [--more] [--isa avx2] [--wall]

Shapes are the seeds': (a) x (50, 3, 32, 32), w (32, 3, 7, 7), pad 3; (b) x (64, 1, 28, 28),
w (16, 1, 5, 5), pad 2; pooling 2x2 stride 2 on (a)'s conv output (50, 32, 32, 32) stored
(C, N, H, W) and on (b)'s (64, 16, 28, 28); L2 and the SGD step on (a)'s 4.1M hidden weights.
NumPy path: gpucnn.cpu.im2col + ``w.reshape(F, -1) @ cols`` (forward), ``dmat @ cols.T``
(weight gradient, cols reused from the forward as gpucnn does), cpu.maxpool_forward/backward
with relu around them, and ``g += reg * W; p -= lr * g``.  Each round times every candidate once
(interleaved, so machine noise hits all alike); the table shows medians over rounds.  Times are
this thread's CPU time (``time.thread_time``; ``--wall`` for wall-clock): everything runs on
one thread, and on a shared VM the CPU clock does not count the time other processes hold the
core.  Cache and memory-bandwidth contention still show: trust ratios from one run.
"""
from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads OpenBLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gpucnn import cpu, native  # noqa: E402


CLOCK = time.thread_time


def timed(fn, reps):
    fn()
    t = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - t) / reps


def conv_cases(shape_x, shape_w, pad, dtype, rng):
    x = rng.standard_normal(shape_x).astype(dtype)
    w = rng.standard_normal(shape_w).astype(dtype)
    b = rng.standard_normal(shape_w[0]).astype(dtype)
    F, _, KH, KW = w.shape
    N = x.shape[0]
    out = native.conv2d_forward(x, w, b, 1, pad)
    dout = rng.standard_normal(out.shape).astype(dtype)
    cols = cpu.im2col(x, KH, KW, 1, pad)
    dmat = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(F, -1)
    w2 = w.reshape(F, -1)
    flop = 2.0 * out.size * w[0].size
    bufs = dict(out=np.empty_like(out), dw=np.empty_like(w), db=np.empty_like(b))
    return flop, {
        "forward, numpy im2col+GEMM": lambda: (w2 @ cpu.im2col(x, KH, KW, 1, pad)) + b[:, None],
        "forward, native": lambda: native.conv2d_forward(x, w, b, 1, pad, out=bufs["out"]),
        "weight grad, numpy GEMM (cols cached)": lambda: (dmat @ cols.T, dmat.sum(axis=1)),
        "weight grad, native": lambda: native.conv2d_backward_weight(
            x, dout, KH, KW, 1, pad, dw=bufs["dw"], db=bufs["db"]),
        "input grad, numpy GEMM+col2im": lambda: cpu.col2im(w2.T @ dmat, x.shape, KH, KW, 1, pad),
        "input grad, native": lambda: native.conv2d_backward_input(dout, w, x.shape, 1, pad),
    }, N


def pool_cases(shape, cnhw, dtype, rng):
    """relu + 2x2 max-pool on x of ``shape`` (N, C, H, W), stored (C, N, H, W) if ``cnhw``."""
    N, C, H, W = shape
    x = (rng.standard_normal((C, N, H, W)).astype(dtype).transpose(1, 0, 2, 3) if cnhw
         else rng.standard_normal(shape).astype(dtype))
    out, argmax = native.relu_maxpool_forward(x, 2, 2)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def numpy_forward():
        r = np.maximum(x, 0)
        return cpu.maxpool_forward(r, 2, 2), r

    (_, ref_argmax), relu_out = numpy_forward()

    def numpy_backward():
        dx = cpu.maxpool_backward(dout, ref_argmax, x.shape, 2, 2)
        dx *= relu_out > 0
        return dx

    bufs = dict(out=np.empty_like(out), argmax=np.empty_like(argmax), dx=np.empty(x.shape, dtype))
    return {
        "relu+pool forward, numpy": numpy_forward,
        "relu+pool forward, native": lambda: native.relu_maxpool_forward(
            x, 2, 2, out=bufs["out"], argmax=bufs["argmax"]),
        "relu+pool backward, numpy": numpy_backward,
        "relu+pool backward, native": lambda: native.relu_maxpool_backward(
            dout, argmax, out, x.shape, 2, 2, dx=bufs["dx"]),
    }


def update_cases(n, dtype, rng):
    """L2's gradient and the SGD step on n weights: NumPy's passes against the native one."""
    p, g, w = (rng.standard_normal(n).astype(dtype) for _ in range(3))

    def numpy_update():
        g2 = g.copy()
        g2 += 1e-3 * p  # what model.loss did with L2 in the gradients
        p2 = w.copy()
        p2 -= 1e-3 * g2
        return p2

    def native_update():
        p2 = w.copy()
        native.sgd_update(p2, g, None, 1e-3, 1e-3, 0.0, False)
        return p2

    return {"g += reg * W; p -= lr * g, numpy (+2 copies)": numpy_update,
            "sgd_update with decay, native (+1 copy)": native_update,
            "sum of squares, numpy (cpu, einsum)": lambda: float(np.einsum("i,i->", p, p)),
            "sum of squares, native": lambda: native.sum_of_squares(p)}


def run(name, cases, rounds, reps, flop=None):
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for k, fn in cases.items():
            times[k].append(timed(fn, reps))
    print(f"\n{name}")
    for k, ts in times.items():
        med = statistics.median(ts)
        rate = f"{flop / med / 1e9:7.1f} GFLOP/s" if flop else ""
        print(f"  {k:42s} {med * 1e3:8.3f} ms  {rate}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of thread CPU time")
    ap.add_argument("--more", action="store_true", help="also hidden-layer shapes (c)-(e)")
    ap.add_argument("--isa", choices=["avx512f", "avx2", "baseline"], help="cap the kernels' instruction set")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.thread_time
    if not native.available:
        raise SystemExit(f"gpucnn.native unavailable: {native.reason}")
    if args.isa:
        native.use_isa(args.isa)
    rng = np.random.default_rng(0)
    print(f"native kernels: {native.isa}; numpy {np.__version__}; {args.dtype}; one thread; "
          f"medians of {args.rounds} interleaved rounds of {'wall' if args.wall else 'thread CPU'} time")
    shapes = [((50, 3, 32, 32), (32, 3, 7, 7), 3), ((64, 1, 28, 28), (16, 1, 5, 5), 2)]
    if args.more:  # hidden layers of deeper nets: many channels, narrow images
        shapes += [((50, 32, 32, 32), (32, 32, 3, 3), 1), ((50, 32, 16, 16), (64, 32, 3, 3), 1),
                   ((50, 16, 8, 8), (32, 16, 3, 3), 1)]
    for k, (sx, sw, pad) in enumerate(shapes):
        flop, cases, _ = conv_cases(sx, sw, pad, args.dtype, rng)
        run(f"({'abcde'[k]}) x {sx}, w {sw}, pad {pad}", cases, args.rounds, 3, flop)
    run("pool 2x2 stride 2 on (50, 32, 32, 32) stored (C, N, H, W)",
        pool_cases((50, 32, 32, 32), True, args.dtype, rng), args.rounds, 5)
    run("pool 2x2 stride 2 on (64, 16, 28, 28) (rows of 14 outputs)",
        pool_cases((64, 16, 28, 28), False, args.dtype, rng), args.rounds, 5)
    run("L2 and SGD step on (a)'s 4.1M hidden weights", update_cases(8192 * 500, args.dtype, rng),
        args.rounds, 3)


if __name__ == "__main__":
    main()

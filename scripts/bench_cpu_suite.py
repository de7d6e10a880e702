"""The bench suite's nets on one thread, by CPU time: what still means something on a busy VM.

    python scripts/bench_cpu_suite.py --modes [--held-out] [--rounds 8]
    python scripts/bench_cpu_suite.py --ops [--held-out] [--baseline DIR] [--rounds 8]
    python scripts/bench_cpu_suite.py --nets [--suite all] [--rounds 7]

Every time is this thread's CPU time (``time.thread_time``), one thread for every framework
(OpenBLAS, PyTorch, gpucnn's worker threads), the minimum over interleaved rounds: on a shared
2-vCPU VM the minimum of a kernel's thread CPU time repeats within ~2% where medians of wall
time move 20% and more (other processes take the core, not this thread's clock; cache
pollution still shows).  ``gpucnn bench --parts suite`` is the 2-thread wall-clock measure.

``--modes``: each convolution layer of the suite's tuning nets (gpucnn/bench/suite_nets.py;
``--held-out`` for the others) at batch 32 (one thread's half of 64), GFLOP/s of the native
forward, weight gradient and input gradient under each mode (flat rows, row blocks, batch in
lanes, filters in lanes: csrc/conv_geom.h; im2col + GEMM) and the mode the cost model picks:
the tuning rows are the data its constants were fitted to.
``--ops``: the same layers, the native kernels against PyTorch's (oneDNN), and against a
``--baseline`` build of gpucnn (a folder holding ``gpucnn/_native*.so``, e.g. main's csrc built
with ``python setup.py build_ext --inplace`` in a copy): an A/B in one process.
``--nets``: each suite case's training step or inference pass, gpucnn against its PyTorch twin
(same weights and data), with the time gpucnn spent in its Conv2d layers.
"""
from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads OpenBLAS
os.environ["GPUCNN_CPU_THREADS"] = "1"

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gpucnn import cpu_runtime, native, nn  # noqa: E402
from gpucnn.bench.suite_nets import NETS, parse_cases  # noqa: E402
from gpucnn.models import build_model  # noqa: E402

CLOCK = time.thread_time


def best_times(cases: dict, rounds: int, reps: int = 2) -> dict:
    """{key: minimum over ``rounds`` of the mean thread CPU time of ``reps`` calls}, the
    candidates interleaved in every round, each called once untimed first."""
    best = {}
    for _ in range(rounds):
        for k, fn in cases.items():
            fn()
            t = CLOCK()
            for _ in range(reps):
                fn()
            best[k] = min(best.get(k, float("inf")), (CLOCK() - t) / reps)
    return best


def suite_conv_shapes(batch: int, role: str) -> dict:
    """{(x shape, w shape, stride, pad): net} for the Conv2d layers of the suite's ``role``
    nets at ``batch``, found by running each net once on two images."""
    shapes = {}
    for net in (n for n in NETS.values() if n.role == role):
        model = build_model(list(net.layers), net.input_dim, seed=0)
        seen = []
        for m in model.modules():
            if type(m) is nn.Conv2d:
                m.forward = lambda x, *args, m=m, **kw: (seen.append((m, x.shape)),
                                                         type(m).forward(m, x, *args, **kw))[1]
        model.loss(np.zeros((2,) + net.input_dim, np.float32))
        for m, xs in seen:
            shapes.setdefault(((batch,) + xs[1:], m.weight.shape, m.stride, m.padding), net.name)
    return shapes


def _layer_inputs(xs, ws, stride, pad, rng):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    oh, ow = (xs[2] + 2 * pad - ws[2]) // stride + 1, (xs[3] + 2 * pad - ws[3]) // stride + 1
    dout = rng.standard_normal((xs[0], ws[0], oh, ow)).astype(np.float32)
    return x, w, dout, 2.0 * dout.size * w[0].size


def _kernels(lib, x, w, dout, stride, pad):
    """Forward, weight gradient (with the bias's) and input gradient of a raw _native module."""
    b, out = np.zeros(w.shape[0], np.float32), np.empty_like(dout)
    dw, db, dx = np.empty_like(w), np.empty_like(w[:, 0, 0, 0]), np.empty_like(x)
    n = x.shape[0]
    return {"fwd": lambda: lib.conv2d_forward(x, w, b, out, stride, pad, 0, n, False, 1),
            "wg": lambda: lib.conv2d_backward_weight(x, dout, dw, db, stride, pad, 0, n, 1),
            "dx": lambda: lib.conv2d_backward_input(dout, w, dx, stride, pad, 0, n, 1)}


def _torch_kernels(x, w, dout, stride, pad):
    import torch

    tx, tw, td = (torch.from_numpy(a) for a in (x, w, dout))
    tb = torch.zeros(w.shape[0])

    def grads(which):
        return lambda: torch.ops.aten.convolution_backward(
            td, tx, tw, [w.shape[0]], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1, which)
    return {"fwd": lambda: torch.conv2d(tx, tw, tb, stride, pad),
            "wg": grads([False, True, True]), "dx": grads([True, False, False])}


def _load_build(folder: str):
    """The _native module of another build (its own module name, so both load in one process)."""
    found = glob.glob(os.path.join(folder, "gpucnn", "_native*.so"))
    if not found:
        raise SystemExit(f"--baseline={folder}: expected a built gpucnn/_native*.so in it")
    name = "baseline._native"
    loader = importlib.machinery.ExtensionFileLoader(name, found[0])
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(module)
    if hasattr(module, "use_blas"):  # the same BLAS as gpucnn.native (gpucnn.cpu's import gave it)
        module.use_blas(*(cpu_runtime.cblas_gemm() or (0, 0, False)))
    return module


def _row(net, xs, ws, stride, pad, cells):
    layer = f"{ws[1]}->{ws[0]} {ws[2]}x{ws[3]} s{stride} p{pad} on {xs[2]}x{xs[3]}"
    print(f"{net:14s} {layer:28s} | " + " | ".join(cells), flush=True)


def run_modes(role: str, rounds: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    modes = "/".join(native.CONV_MODES)
    print(f"{'net':14s} {'layer':28s} | forward {modes} pick | weight gradient | input gradient")
    for (xs, ws, stride, pad), net in suite_conv_shapes(batch, role).items():
        x, w, dout, flop = _layer_inputs(xs, ws, stride, pad, rng)
        kernels = _kernels(native._lib, x, w, dout, stride, pad)
        best, taken = {}, {}
        for mode in native.CONV_MODES:
            native.use_conv_mode(mode)
            best.update({(k, mode): t for k, t in best_times(kernels, rounds).items()})
            fwd, wg, dx = native.conv_plan(xs, ws, stride, pad)
            # a forced mode that cannot take the layer (winograd off 3x3 and 5x5 stride 1) shows "-"
            taken.update({("fwd", mode): fwd == mode, ("wg", mode): wg == mode,
                          ("dx", mode): mode in dx})
        native.use_conv_mode("auto")
        fwd, wg, dx = native.conv_plan(xs, ws, stride, pad)
        _row(net, xs, ws, stride, pad,
             [" ".join(f"{flop / best[k, m] / 1e9:4.0f}" if taken[k, m] else "   -"
                       for m in native.CONV_MODES) + f" {pick:>5s}"
              for k, pick in (("fwd", fwd), ("wg", wg), ("dx", "/".join(dx)))])


def run_ops(role: str, rounds: int, baseline: str | None, batch: int) -> None:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    sides = (["baseline"] if baseline else []) + ["gpucnn", "torch"]
    print(f"{'net':14s} {'layer':28s} | GFLOP/s {'/'.join(sides)}: forward | weight gradient | input gradient")
    other = _load_build(baseline) if baseline else None
    for (xs, ws, stride, pad), net in suite_conv_shapes(batch, role).items():
        x, w, dout, flop = _layer_inputs(xs, ws, stride, pad, rng)
        cases = {("gpucnn", k): f for k, f in _kernels(native._lib, x, w, dout, stride, pad).items()}
        cases.update({("torch", k): f for k, f in _torch_kernels(x, w, dout, stride, pad).items()})
        if other is not None:
            cases.update({("baseline", k): f for k, f in _kernels(other, x, w, dout, stride, pad).items()})
        best = best_times(cases, rounds)
        _row(net, xs, ws, stride, pad, [" ".join(f"{flop / best[s, k] / 1e9:4.0f}" for s in sides)
                                        for k in ("fwd", "wg", "dx")])


def run_nets(selection: str, rounds: int) -> None:
    import torch

    from gpucnn.bench.nets import LR, REG
    from gpucnn.bench.torch_twins import torch_infer_step, torch_train_step, torch_twin
    from gpucnn.optim import SGD

    torch.set_num_threads(1)
    for case in parse_cases(selection):
        net = case.net
        model = build_model(list(net.layers), net.input_dim, reg=REG, seed=0)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((case.batch,) + net.input_dim).astype(np.float32)
        y = rng.integers(0, 10, case.batch)
        twin = torch_twin(model.net)
        if case.mode == "train":
            opt = SGD(model.parameters(), lr=LR)
            steps = {"gpucnn": lambda: model.train_step(X, y, opt), "torch": torch_train_step(twin, X, y)}
        else:
            steps = {"gpucnn": lambda: model.loss(X), "torch": torch_infer_step(twin, X)}
        conv = [0.0]
        for m in model.modules():  # the time spent in Conv2d layers, forward and backward
            if type(m) is nn.Conv2d:
                for name in ("forward", "backward"):
                    def timed(*a, _f=getattr(m, name), **k):
                        t = CLOCK()
                        try:
                            return _f(*a, **k)
                        finally:
                            conv[0] += CLOCK() - t
                    setattr(m, name, timed)
        best = {}
        for _ in range(rounds):
            for k, fn in steps.items():
                fn()
                conv[0], t = 0.0, CLOCK()
                for _ in range(3):
                    fn()
                took = (CLOCK() - t) / 3
                if took < best.get(k, (float("inf"),))[0]:
                    best[k] = (took, conv[0] / 3)
        (g, c), (t, _) = best["gpucnn"], best["torch"]
        print(f"{case.name:26s} {net.role:9s} gpucnn {g * 1e3:8.2f} ms (conv {c * 1e3:7.2f})  "
              f"torch {t * 1e3:8.2f} ms  ratio {g / t:5.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--modes", action="store_true", help="each suite conv layer under each mode")
    what.add_argument("--ops", action="store_true", help="each suite conv layer against PyTorch")
    what.add_argument("--nets", action="store_true", help="each suite case against PyTorch")
    ap.add_argument("--held-out", action="store_true", help="--modes, --ops: the held-out nets' layers")
    ap.add_argument("--baseline", metavar="DIR", help="--ops: also this folder's build of gpucnn._native")
    ap.add_argument("--suite", default="all", help="--nets: the cases, as gpucnn bench --suite")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32, help="--modes, --ops: images per layer call "
                    "(default 32: one thread's half of batch 64)")
    args = ap.parse_args()
    if not native.available:
        raise SystemExit(f"gpucnn.native unavailable: {native.reason}")
    role = "held-out" if args.held_out else "tuning"
    if args.modes:
        run_modes(role, args.rounds, args.batch)
    elif args.ops:
        run_ops(role, args.rounds, args.baseline, args.batch)
    else:
        run_nets(args.suite, args.rounds)


if __name__ == "__main__":
    main()

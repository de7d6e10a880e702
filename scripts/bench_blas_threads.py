"""How much CPU threads other than gpucnn's own burn during gpucnn training steps: OpenBLAS's
workers (which busy-wait ~0.1 s after every call they take part in) and, with ``--torch``,
PyTorch's, in a process that imported NumPy first (the default, as most scripts do) or gpucnn.

    python scripts/bench_blas_threads.py [--order numpy|gpucnn] [--torch] [--configs a50,b64]

Reads every thread's CPU ticks from /proc/self/task before and after ``--steps`` steps; gpucnn's
threads are the main thread and its worker pool, every other thread is someone else's.  CPU
time of threads, not wall time, so the answer holds on a loaded machine: with gpucnn's matmuls
on its own threads and OpenBLAS single-threaded in each (gpucnn/cpu_runtime.py), the other
threads should burn nothing, whatever the import order.  Linux only (/proc).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time


def _ticks() -> dict:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", choices=["numpy", "gpucnn"], default="numpy",
                    help="what the script imports first (default: numpy)")
    ap.add_argument("--torch", action="store_true", help="import PyTorch (2 threads) too")
    ap.add_argument("--configs", default="a50,b64", help="bench configs, as gpucnn bench's")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.order == "numpy":
        import numpy  # noqa: F401
    if args.torch:
        import torch
        torch.set_num_threads(2)
    import numpy as np

    from gpucnn.bench.nets import gpucnn_step, parse_config

    hz = os.sysconf("SC_CLK_TCK")
    for text in args.configs.split(","):
        step, _ = gpucnn_step(parse_config(text), np.float32, "cpu")
        for _ in range(3):
            step()
        ours = {t.native_id for t in threading.enumerate()}
        before, t0 = _ticks(), time.perf_counter()
        for _ in range(args.steps):
            step()
        after, wall = _ticks(), time.perf_counter() - t0
        mine = sum(v - before.get(t, 0) for t, v in after.items() if t in ours) / hz
        other = sum(v - before.get(t, 0) for t, v in after.items() if t not in ours) / hz
        print(f"{text}, {args.order} imported first{', torch loaded' if args.torch else ''}: "
              f"{args.steps} steps in {wall:.2f} s wall; gpucnn's threads {mine:.2f} s CPU, "
              f"other threads {other:.2f} s CPU ({len(after) - len(ours)} of them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Timers (wall clock on the CPU, device events on CUDA) and interleaved repetitions."""
from __future__ import annotations

import time

import numpy as np


def make_timer(device: str, framework: str):
    """A function ``timer(fn) -> seconds`` for one call of ``fn`` on ``device``.

    CPU: wall clock around the call.  CUDA: device events recorded on the current stream around
    the call, then synchronised (cupy events for gpucnn, torch.cuda events for PyTorch).
    """
    if device == "cpu":
        def timer(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return timer
    if framework == "torch":
        import torch

        def timer(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        return timer
    import cupy

    def timer(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1e3
    return timer



def summarize(times) -> dict:
    """Seconds -> {median, q1, q3, min, max, n} in milliseconds."""
    t = np.asarray(times, dtype=np.float64) * 1e3
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(t.min()), "max_ms": float(t.max()), "n": int(t.size)}



def time_interleaved(fns: dict, timers: dict, reps: int, warmup: int, pause: float = 0.0,
                     block: int = 1) -> dict:
    """Time every fn ``reps`` times after ``warmup`` untimed calls; {key: summary}.

    Keys are "<framework>" or "<framework>_<part>"; frameworks take turns every ``block``
    repetitions, with ``pause`` seconds of sleep before each turn.  The pause matters on a small
    machine: OpenBLAS and OpenMP worker threads spin for up to ~0.1 s after their last task, and
    would otherwise steal the CPUs of whichever framework runs next.
    """
    groups = {}
    for k in fns:
        groups.setdefault(k.split("_")[0], []).append(k)
    for keys in groups.values():
        time.sleep(pause)
        for _ in range(warmup):
            for k in keys:
                fns[k]()
    times = {k: [] for k in fns}
    for start in range(0, reps, block):
        for keys in groups.values():
            time.sleep(pause)
            for _ in range(min(block, reps - start)):
                for k in keys:
                    times[k].append(timers[k](fns[k]))
    return {k: summarize(v) for k, v in times.items()}

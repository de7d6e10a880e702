"""The worker threads gpucnn.cpu splits the native kernels' work over.

The kernels release the GIL and take a range (of images, or of elements), so :func:`split` runs
the first range on the calling thread and the others on persistent pool threads.  One thread per
CPU this process may use; ``GPUCNN_CPU_THREADS`` overrides.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

from . import env

_pool: ThreadPoolExecutor | None = None


def threads() -> int:
    """Worker threads the native kernels split their work over."""
    return env.count("GPUCNN_CPU_THREADS") or _usable_cpus()


@functools.lru_cache(maxsize=None)
def _usable_cpus() -> int:
    """CPUs this process may use, read once (a system call: ~13 per training step otherwise)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


MIN_WORK_PER_THREAD = 1 << 16  # output elements: below this a thread's hand-off costs more
# Memory-bound elementwise passes (the update, the sum of squares) gain from a second thread
# only on large arrays: one sgd_update pass over 1M floats took 0.39 ms on one thread and 0.41
# on two (a hand-off costs ~40 us when the other CPU idles, more when it is busy); 4M: 1.43
# against 0.90.
MIN_ELEMENTWISE_PER_THREAD = 1 << 20


def split(n: int, fn, work: int, elementwise: bool = False) -> list:
    """[fn(n0, n1), ...] over contiguous ranges of ``range(n)``, one per worker thread, fewer
    when ``work`` (output elements) leaves a thread less than MIN_WORK_PER_THREAD
    (MIN_ELEMENTWISE_PER_THREAD for an ``elementwise`` pass); this thread runs the first range."""
    global _pool
    least = MIN_ELEMENTWISE_PER_THREAD if elementwise else MIN_WORK_PER_THREAD
    k = min(n, work // least)
    if k <= 1:  # without reading the thread count (an environment lookup, ~1 us)
        return [fn(0, n)]
    k = min(threads(), k)
    if k == 1:
        return [fn(0, n)]
    bounds = [n * i // k for i in range(k + 1)]
    if _pool is None or _pool._max_workers < k - 1:
        _pool = ThreadPoolExecutor(k - 1, thread_name_prefix="gpucnn-cpu")
    futures = [_pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    first = fn(bounds[0], bounds[1])
    return [first] + [f.result() for f in futures]

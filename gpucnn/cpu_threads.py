"""How many threads gpucnn.cpu splits the work of a kernel over, and the Python pool for what
the native extension does not run itself.

The native kernels take a range (of images, channels, elements or matrix rows) and ``parts``:
the extension cuts the range into that many pieces and runs them on its own worker threads
(csrc/pool.h), so gpucnn.cpu only asks :func:`parts`; the matmuls and ReLU passes go there too.
Where the work is a Python call on each piece (the optimizer update and the sums of squares,
matmuls BLAS cannot take as they lie), :func:`split` runs the first piece on the calling thread
and the others on persistent Python pool threads; a hand-off there costs 150-230 us when the
worker slept, 1-2 us in the extension's pool, which is why the layers' kernels do not go
through it.  One thread per CPU this process may use; ``GPUCNN_CPU_THREADS``
overrides.
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


def parts(n: int, work: int, elementwise: bool = False) -> int:
    """Pieces to cut ``range(n)`` into: one per worker thread, fewer when ``work`` (output
    elements) leaves a thread less than MIN_WORK_PER_THREAD (MIN_ELEMENTWISE_PER_THREAD for an
    ``elementwise`` pass), never more than n."""
    least = MIN_ELEMENTWISE_PER_THREAD if elementwise else MIN_WORK_PER_THREAD
    k = min(n, work // least)
    if k <= 1:  # without reading the thread count (an environment lookup, ~1 us)
        return 1
    return min(threads(), k)


def split(n: int, fn, work: int, elementwise: bool = False) -> list:
    """[fn(n0, n1), ...] over the :func:`parts` contiguous ranges of ``range(n)``; this thread
    runs the first range, Python pool threads the others."""
    global _pool
    k = parts(n, work, elementwise)
    if k == 1:
        return [fn(0, n)]
    bounds = [n * i // k for i in range(k + 1)]
    if _pool is None or _pool._max_workers < k - 1:
        _pool = ThreadPoolExecutor(k - 1, thread_name_prefix="gpucnn-cpu")
    futures = [_pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    first = fn(bounds[0], bounds[1])
    return [first] + [f.result() for f in futures]

"""Process-wide settings the CPU path depends on, made through C APIs (ctypes) so that they hold
whatever was imported before gpucnn: glibc's malloc thresholds, and OpenBLAS's thread count.

**malloc.**  A training step frees and re-allocates the same activation-sized arrays every
step.  glibc serves blocks over its mmap threshold (128 KiB, raised at run time only up to
the size of a freed block) from fresh mappings and trims the heap top over its trim
threshold, so steps kept faulting new pages in: the ResNet (examples/resnet.toml, 3x32x32,
batch 64, one thread) took 2700-5400 page faults a step, 97-110 ms of CPU; with the mmap
threshold at 32 MiB (glibc's largest) and the trim threshold at 128 MiB, 0 faults and 83-85 ms,
and a lower peak resident set (85 against 92 MiB).  :func:`tune_malloc` sets them once, unless
the user chose their own (a ``MALLOC_*_`` variable set) or ``GPUCNN_MALLOPT=0``.

**OpenBLAS.**  :func:`openblas` finds the library NumPy loaded and its symbol prefix (NumPy's
wheels ship scipy-openblas with prefixed symbols).  OpenBLAS's idle workers busy-wait (x86:
nops, no yield) for 2^28 cycles (~0.1 s) after every call they took part in, stealing a core
from whatever runs next; ``OPENBLAS_THREAD_TIMEOUT`` shortens that, but only when set before
NumPy loads (a script that imports NumPy first kept the spin: (a) b50 read 0.89-0.94x
PyTorch's time instead of 0.65-0.69x), and then every call waits for sleeping workers to wake.
So gpucnn never hands OpenBLAS work to its workers: :func:`one_blas_thread` sets its thread
count to 1 around gpucnn's matmuls (0.2 us a switch), which run on gpucnn's own worker threads
(gpucnn.cpu.matmul), and restores it after, so the user's own NumPy calls keep their threads.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os

from . import env

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 128 << 20
_USER_MALLOC = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                "MALLOC_MMAP_MAX_")


@functools.lru_cache(maxsize=None)
def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (see the module docstring);
    True when they were set, False where glibc is absent or the user set their own."""
    if not env.switch("GPUCNN_MALLOPT", default=True) or any(v in os.environ for v in _USER_MALLOC):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, glibc = libc.mallopt, libc.gnu_get_libc_version
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    del glibc
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@functools.lru_cache(maxsize=None)
def openblas():
    """(ctypes library, symbol prefix, symbol suffix) of the OpenBLAS NumPy loaded, or None
    (another BLAS, or no /proc to find it in)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()
                            and line.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "")):
            if hasattr(lib, f"{prefix}_get_num_threads{suffix}"):
                return lib, prefix, suffix
    return None


@functools.lru_cache(maxsize=None)
def cblas_gemm():
    """(address of cblas_sgemm, of cblas_dgemm, whether their integers are 64-bit) in the
    OpenBLAS NumPy loaded, for the native convolution's im2col + GEMM path; None without one.
    NumPy's wheels name them scipy_cblas_sgemm64_ (ILP64), plain OpenBLAS cblas_sgemm."""
    found = openblas()
    if found is None:
        return None
    lib, prefix, suffix = found
    stem = "scipy_cblas_" if prefix.startswith("scipy") else "cblas_"
    try:
        fns = [getattr(lib, f"{stem}{t}gemm{suffix}") for t in "sd"]
    except AttributeError:
        return None
    return (*(ctypes.cast(f, ctypes.c_void_p).value for f in fns), suffix == "64_")


@functools.lru_cache(maxsize=None)
def _thread_calls():
    """(get, set) of OpenBLAS's thread count as ctypes functions, or None."""
    found = openblas()
    if found is None:
        return None
    lib, prefix, suffix = found
    return getattr(lib, f"{prefix}_get_num_threads{suffix}"), \
        getattr(lib, f"{prefix}_set_num_threads{suffix}")


@contextlib.contextmanager
def one_blas_thread():
    """Inside, OpenBLAS runs every call on the calling thread alone (its workers stay asleep);
    its thread count is restored after.  Without OpenBLAS (another BLAS) nothing changes."""
    calls = _thread_calls()
    n = calls[0]() if calls is not None else 1
    if n == 1:
        yield
        return
    calls[1](1)
    try:
        yield
    finally:
        calls[1](n)

"""The CPU's batch norm, ReLU passes and matmul (primitives of :mod:`gpucnn.primitives`,
exported by :mod:`gpucnn.cpu`): native one-pass kernels split over the worker threads when the
extension is built, else the NumPy reference (for batch norm, :mod:`gpucnn.batchnorm`'s array
code); matmuls split over the same threads, OpenBLAS single-threaded in each
(:mod:`gpucnn.cpu_runtime` says why) and called from the extension's threads.

Batch norm natively reads x twice and writes out once per channel (NumPy's mean, var, subtract,
scale and shift took seven passes and three temporaries), keeps x rather than a normalised copy
for the backward, and with ``relu`` applies the ReLU in the same pass, its backward recomputing
the mask from x.  The work is split by channels.  float32 results equal the reference within
rounding (the sums are blocked, not pairwise; per-channel arithmetic in double); the ReLU passes
equal NumPy's bit for bit.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import batchnorm, native
from .cpu_runtime import one_blas_thread
from .cpu_threads import parts, split

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Planes smaller than this go to NumPy: the kernels walk one channel's runs of H*W values, so
# (N, D) features (1 value a run) and tiny maps are per-element scalar work there.
MIN_PLANE = 8


def _memory_views(*arrays):
    """C-contiguous views of ``arrays`` when all are laid out alike in memory: C order, or an
    (N, C, H, W) view of (C, N, H, W) memory (a conv output's on the NumPy path); else None."""
    if all(a.flags.c_contiguous for a in arrays):
        return arrays
    if all(a.ndim == 4 and a.transpose(1, 0, 2, 3).flags.c_contiguous for a in arrays):
        return [a.transpose(1, 0, 2, 3) for a in arrays]
    return None


def _native_elementwise(kernel, out, *inputs) -> bool:
    """Runs native ``kernel(*inputs, out, parts=)``, its elements split over the extension's
    threads; False (nothing done) when the arrays do not qualify (native off, other dtypes,
    layouts).  Its hand-off is cheap enough for 64K elements a thread (MIN_WORK_PER_THREAD): the
    digits ResNet's residual sum + ReLU at batch 256, 262K elements, took 129 us on one thread
    (hot in L2: 63 us, half of them 31)."""
    if not native.available or out.dtype not in _FLOATS or any(
            a.dtype != out.dtype or a.shape != out.shape for a in inputs):
        return False
    views = _memory_views(*inputs, out)
    if views is None:
        return False
    kernel(*views, parts=parts(out.size, out.size))
    return True


def relu_forward(x):
    """max(x, 0); np.maximum propagates NaN."""
    out = np.empty_like(x)
    if _native_elementwise(native.relu_forward, out, x):
        return out
    return np.maximum(x, 0, out=out)


def relu_backward(dout, out):
    """dout * (out > 0): a multiply, not a select, so inf/NaN in dout propagate."""
    dx = np.empty_like(out, dtype=dout.dtype)
    if _native_elementwise(native.relu_backward, dx, dout, out):
        return dx
    return np.multiply(dout, out > 0, out=dx)


def add_relu_forward(a, b):
    """relu(a + b) in one pass (np.add then np.maximum without the native kernels)."""
    out = np.empty_like(a, dtype=np.result_type(a, b))
    if _native_elementwise(native.add_relu, out, a, b):
        return out
    np.add(a, b, out=out)
    return np.maximum(out, 0, out=out)


# A thread's share of a matmul is at least 2M multiply-adds where a Python pool thread takes
# it (MIN_WORK_PER_THREAD * 32, ~40 us on one core, what that hand-off costs), 256K where the
# extension's pool does (its hand-off: 1-2 us).
_MACS_PER_WORK = 32
_MACS_PER_WORK_NATIVE = 4


def matmul(a, b):
    """a (M, K) @ b (K, N) -> (M, N) C-contiguous: split over the worker threads by rows of a or
    columns of b, whichever operand is larger (each thread then reads half of it), each part
    one single-threaded BLAS call, from the extension's threads where it can (one float dtype,
    strides BLAS reads), else from Python's."""
    M, K, N = a.shape[0], a.shape[1], b.shape[1]
    out = np.empty((M, N), dtype=np.result_type(a, b))
    by_rows = a.size >= b.size if min(M, N) > 1 else M > 1
    n = M if by_rows else N
    with one_blas_thread():
        if native.available and a.dtype == b.dtype and a.dtype in _FLOATS and M * N * K > 0 and \
                native.matmul(a, b, out, by_rows=by_rows,
                              parts=parts(n, M * N * K // _MACS_PER_WORK_NATIVE)):
            return out
        if by_rows:
            def part(i0, i1):
                np.matmul(a[i0:i1], b, out=out[i0:i1])
        else:
            def part(i0, i1):
                np.matmul(a, b[:, i0:i1], out=out[:, i0:i1])
        split(n, part, M * N * K // _MACS_PER_WORK)
    return out


class _Native(NamedTuple):
    """What the native batch norm backward needs: x, the (4, C) per-channel statistics the
    forward used (mean, 1/sqrt(var + eps), gamma/sqrt(var + eps), beta) and its mode."""
    x: np.ndarray
    stats: np.ndarray
    train: bool
    relu: bool


def _native_bn(x) -> bool:
    return native.available and x.dtype in _FLOATS and x.ndim == 4 and \
        x.shape[2] * x.shape[3] >= MIN_PLANE


def _unit_w(a):
    """a, or a C-contiguous copy when its W axis is strided (the kernels read rows)."""
    return a if a.strides[3] == a.itemsize or a.shape[3] == 1 else np.ascontiguousarray(a)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train: bool, momentum: float,
                      eps: float, relu: bool):
    """Native: channels split over the threads, out laid out like x; else the reference.

    The channels split as any kernel's work, not as a memory-bound pass's (1M elements a
    thread): the native pool hands a part over in 1-2 us, and forward + backward ran 1.6-1.9x
    as fast on two threads from 46K elements (16x24x11x11: 78 -> 49 us) to 1M (64x16x32x32,
    the ResNet's, which ran on one: 1055 -> 557 us; wall clock, 2-vCPU Zen 3)."""
    if not _native_bn(x):
        return batchnorm.forward(np, x, gamma, beta, running_mean, running_var, train, momentum,
                                 eps, relu)
    x = _unit_w(x)
    out = np.empty_like(x)
    stats = np.empty((4, x.shape[1]), dtype=x.dtype)
    native.batchnorm_forward(x, out, gamma, beta, running_mean, running_var, stats, train,
                             momentum, eps, relu, parts=parts(x.shape[1], x.size))
    return out, _Native(x, stats, train, relu)


def batchnorm_backward(dout, saved, need_dx: bool):
    """dout is read in its own layout (cast to x's dtype); dx is laid out like x."""
    if not isinstance(saved, _Native):
        return batchnorm.backward(dout, saved, need_dx)
    x, stats, train, relu = saved
    dout = _unit_w(dout.astype(x.dtype, copy=False))
    C = x.shape[1]
    dgamma, dbeta = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
    dx = np.empty_like(x) if need_dx else None
    native.batchnorm_backward(dout, x, stats, dx, dgamma, dbeta, train, relu,
                              parts=parts(C, x.size))
    return dx, dgamma, dbeta

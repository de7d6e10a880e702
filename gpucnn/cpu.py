"""NumPy implementation of every device primitive (the reference; see :mod:`gpucnn.primitives`).

:mod:`gpucnn.cuda` has the same functions over CuPy arrays and our CUDA kernels.

Layout: im2col builds one contiguous matrix laid out (C, KH, KW, N, OH, OW), so the conv is one
GEMM ``w (F, C*KH*KW) @ cols -> (F, N*OH*OW)`` whose result, viewed as (N, F, OH, OW), is a free
transpose.  Activations therefore often live in memory as (C, N, H, W) behind an NCHW view;
every function here accepts any strides and returns arrays in the layout of its input
(``order="K"``), so no op pays for a transpose the next op would undo.

When the optional C extension is built (:mod:`gpucnn.native`), convolution and the fused
ReLU + max-pool run its kernels instead: direct convolution keeps its accumulators in registers,
twice the GFLOP/s of im2col + GEMM at the seeds' shapes (docs/benchmarks.md); dense 1x1 convs
of many channels run there as OpenBLAS products.  The kernels split the batch over ``threads()``
worker threads (one per CPU this process may use; ``GPUCNN_CPU_THREADS`` overrides).  The
NumPy functions below stay the reference every native path is tested against.
"""
from __future__ import annotations

import sys

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import native
from .cpu_fused import (add_relu_forward, batchnorm_backward, batchnorm_forward,  # noqa: F401
                        matmul, relu_backward, relu_forward)
from .cpu_conv import native_conv_backward, native_conv_forward
from .cpu_runtime import cblas_gemm, tune_malloc
from .cpu_threads import parts, split, threads
from .shapes import out_size
from .rng import random_bits


tune_malloc()  # steps re-allocate the same arrays: without it, thousands of page faults a step
if native.available:
    native.use_blas(cblas_gemm())  # the im2col + GEMM convolutions (kept at one BLAS thread)


def _pad_cnhw(x, pad):
    """x (N, C, H, W) -> a (C, N, H + 2*pad, W + 2*pad) array (a view when pad == 0)."""
    xc = x.transpose(1, 0, 2, 3)
    if pad == 0:
        return xc
    C, N, H, W = xc.shape
    xpad = np.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    xpad[:, :, pad:pad + H, pad:pad + W] = xc
    return xpad


def op_paths() -> dict:
    """{op: what runs it on the CPU}, for ``gpucnn info``."""
    blas = f"OpenBLAS, one thread in each of {threads()} gpucnn worker threads"
    if native.available:
        kernels = f"native C kernel ({native.isa}, {threads()} threads)"
        gemm = " or im2col + OpenBLAS products" if native.blas else ""
        return {"conv2d": f"{kernels}: direct convolution (flat rows, row blocks or images in "
                          f"the vector lanes){gemm}, per shape, a relu after it fused",
                "relu + max-pool": f"{kernels}: fused, one pass",
                "batch norm (+ relu)": f"{kernels}: two reads and one write, relu fused",
                "relu, sum + relu": f"{kernels}: one pass",
                "SGD update, L2": f"native C kernel ({native.isa}): one pass per parameter",
                "matmul": blas, "everything else": "NumPy"}
    why = f"NumPy (the native kernels are off: {native.reason})"
    return {"conv2d": f"{why}: im2col + GEMM", "relu + max-pool": f"{why}: pool, then relu",
            "batch norm (+ relu)": f"{why}: array expressions",
            "relu, sum + relu": f"{why}: array expressions",
            "SGD update, L2": f"{why}: array expressions", "matmul": blas,
            "everything else": "NumPy"}


_numpy_path_noticed = False


def _notice_numpy_path() -> None:
    """Say once per process that the slower NumPy path runs because the extension is missing
    (not when GPUCNN_NATIVE=0 asked for it)."""
    global _numpy_path_noticed
    if not _numpy_path_noticed and native.reason.startswith("not built"):
        _numpy_path_noticed = True
        print(f"gpucnn: convolution runs on the slower NumPy path: the native CPU kernels are "
              f"{native.reason}; reinstall gpucnn where a C compiler is present", file=sys.stderr)


# --- convolution ------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride: int, pad: int):
    """-> (out, saved): native direct convolution (saved = x) when built, else im2col + one GEMM
    ``w (F, C*KH*KW) @ cols`` (saved = the columns, which the weight gradient reuses)."""
    return _conv(x, w, b, stride, pad, relu=False)


def conv2d_relu_forward(x, w, b, stride: int, pad: int):
    """relu(conv2d_forward(x, w, b)) -> (out, saved): the native conv clamps each output as
    it stores it, one pass over the output less than a ReLU after it (strided net, batch 256:
    the separate ReLUs took 15% of an inference pass)."""
    return _conv(x, w, b, stride, pad, relu=True)


def _conv(x, w, b, stride, pad, relu):
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = out_size(H, KH, stride, pad), out_size(W, KW, stride, pad)
    if native.available:
        return native_conv_forward(x, w, b, stride, pad, relu, (N, F, OH, OW)), x
    _notice_numpy_path()
    cols = im2col(x, KH, KW, stride, pad)  # (C*KH*KW, N*OH*OW)
    out = w.reshape(F, -1) @ cols  # (F, N*OH*OW)
    if b is not None:
        out += b[:, None]
    if relu:
        np.maximum(out, 0, out=out)
    return out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3), cols


def conv2d_backward(dout, saved, w, x_shape, stride: int, pad: int, need_dx: bool, need_db: bool):
    """dw = dout' @ cols^T, db = sum of dout over all axes but F, dx = col2im(w^T @ dout') (the
    im2col derivation, seeds/002) -- or the same sums done directly by the native kernels."""
    F, C, KH, KW = w.shape
    if native.available:
        return native_conv_backward(dout, saved, w, x_shape, stride, pad, need_dx, need_db)
    dmat = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*OH*OW)
    db = dmat.sum(axis=1) if need_db else None
    dw = (dmat @ saved.T).reshape(w.shape)
    dx = col2im(w.reshape(F, -1).T @ dmat, x_shape, KH, KW, stride, pad) if need_dx else None
    return dx, dw, db


def im2col(x, kh: int, kw: int, stride: int, pad: int):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); rows ordered (c, i, j), columns (n, oh, ow)."""
    N, C, H, W = x.shape
    oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    xpad = _pad_cnhw(x, pad)
    sc, sn, sh, sw = xpad.strides
    windows = as_strided(xpad, shape=(C, kh, kw, N, oh, ow),
                         strides=(sc, sh, sw, sn, sh * stride, sw * stride), writeable=False)
    cols = np.empty((C, kh, kw, N, oh, ow), dtype=x.dtype)
    np.copyto(cols, windows)
    return cols.reshape(C * kh * kw, N * oh * ow)


def col2im(dcols, x_shape, kh: int, kw: int, stride: int, pad: int):
    """Adjoint of :func:`im2col`: dcols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlaps.

    One strided slice-add per kernel offset (KH*KW of them); no per-pixel loops, no ``add.at``.
    """
    N, C, H, W = x_shape
    oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    d = dcols.reshape(C, kh, kw, N, oh, ow)
    dxpad = np.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] += d[:, i, j]
    return dxpad[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)


def empty_like_layout(shape, like, zero=False, dtype=None):
    """A new (N, C, H, W) array of ``shape`` (and ``dtype``, default ``like``'s) stored
    (C, N, H, W) when ``like`` is, else NCHW."""
    alloc = np.zeros if zero else np.empty
    dtype = like.dtype if dtype is None else dtype
    if _is_cnhw(like):
        N, C, H, W = shape
        return alloc((C, N, H, W), dtype=dtype).transpose(1, 0, 2, 3)
    return alloc(shape, dtype=dtype)


def _is_cnhw(a) -> bool:
    """True for a 4-D (N, C, H, W) view of memory laid out (C, N, H, W)."""
    return a.ndim == 4 and a.transpose(1, 0, 2, 3).flags.c_contiguous and not a.flags.c_contiguous


def _window_views(x, size: int, stride: int, oh: int, ow: int):
    """The size*size strided views x[:, :, i::stride, j::stride] (cropped to OH x OW), row-major."""
    return [x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            for i in range(size) for j in range(size)]


def _argmax_dtype(size: int):
    return np.uint8 if size * size <= 256 else np.int32


def maxpool_forward(x, size: int, stride: int):
    """x (N, C, H, W) -> out (N, C, OH, OW) and argmax (N, C, OH, OW), the row-major offset of
    the first maximum inside each window (ties go to the first).  Both in ``x``'s layout.

    Branch-free passes over the size*size strided views: a running ``maximum`` for the values,
    and for the offsets ``argmax = max(argmax, t * (v > running max))``, which keeps the first
    maximum because t only grows (masked copies, ``copyto(where=)``, were 10x slower).  A window
    holding NaN gives NaN, its argmax the first NaN, as on the GPU.
    """
    N, C, H, W = x.shape
    oh, ow = out_size(H, size, stride), out_size(W, size, stride)
    swap = _is_cnhw(x)  # iterate in memory order: strided ufuncs are 2x faster that way
    xs = x.transpose(1, 0, 2, 3) if swap else x
    views = _window_views(xs, size, stride, oh, ow)
    out = views[0].copy()
    argmax = np.zeros(out.shape, dtype=_argmax_dtype(size))
    better = np.empty(out.shape, dtype=bool)
    offset = np.empty(out.shape, dtype=argmax.dtype)
    for t, v in enumerate(views[1:], start=1):
        np.greater(v, out, out=better)  # strict: an equal later value never takes the max
        np.maximum(out, v, out=out)
        np.multiply(better, argmax.dtype.type(t), out=offset)
        np.maximum(argmax, offset, out=argmax)
    nan = np.isnan(out)
    if nan.any():  # NaN wins at its first position (np.maximum already put it in out); rare
        where = np.nonzero(nan)
        argmax[where] = np.argmax(np.isnan(np.stack([v[where] for v in views])), axis=0)
    if swap:
        return out.transpose(1, 0, 2, 3), argmax.transpose(1, 0, 2, 3)
    return out, argmax


def maxpool_backward(dout, argmax, x_shape, size: int, stride: int):
    """Route each dout element to the input position its window's argmax names.

    dx is laid out like ``argmax`` (the forward input's layout), so the next backward op, the
    conv's, reads it in memory order.
    """
    N, C, H, W = x_shape
    oh, ow = dout.shape[2:]
    tiles = stride == size and H % size == 0 and W % size == 0
    # Non-overlapping windows that tile the input: every input element is written exactly once,
    # so no zero fill and no accumulation are needed.
    dx = empty_like_layout(x_shape, argmax, zero=not tiles, dtype=dout.dtype)
    hit = np.empty(dout.shape, dtype=bool)
    for t, view in enumerate(_window_views(dx, size, stride, oh, ow)):
        np.equal(argmax, t, out=hit)
        if tiles:
            np.multiply(dout, hit, out=view)
        else:
            view += dout * hit
    return dx


def relu_maxpool_forward(x, size: int, stride: int):
    """maxpool(relu(x)): one native pass when built, else relu of the pooled values (ReLU is
    monotone, so pooling first gives the same values and argmax on 1/size^2 of the data)."""
    if native.available:
        N, C, H, W = x.shape
        oh, ow = out_size(H, size, stride), out_size(W, size, stride)
        out = np.empty((N, C, oh, ow), dtype=x.dtype)
        argmax = np.empty((N, C, oh, ow), dtype=_argmax_dtype(size))
        native.relu_maxpool_forward(x, size, stride, out=out, argmax=argmax,
                                    parts=parts(N, x.size))
        return out, argmax
    out, argmax = maxpool_forward(x, size, stride)
    argmax[out <= 0] = 0  # relu makes such a window all zeros: its first maximum is offset 0
    # (NaN compares false and keeps the first NaN's offset)
    np.maximum(out, 0, out=out)
    return out, argmax


def relu_maxpool_backward(dout, argmax, out, x_shape, size: int, stride: int):
    """Each window's dout * (out > 0) to its argmax; the rest of dx is 0."""
    if native.available:
        return native.relu_maxpool_backward(dout, argmax, out, x_shape, size, stride,
                                            parts=parts(x_shape[0], int(np.prod(x_shape))))
    return maxpool_backward(dout * (out > 0), argmax, x_shape, size, stride)


def sigmoid_forward(x):
    """1 / (1 + exp(-x)); exp(-|x|) lies in (0, 1], so neither branch overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dout, out):
    return dout * out * (1 - out)


def bias_grad(dout):
    """dout (N, F, ...) -> (F,), the sum over every axis but 1."""
    return dout.sum(axis=(0,) + tuple(range(2, dout.ndim)))


def softmax_cross_entropy(scores, y):
    """Mean cross-entropy and its gradient; the row maximum is subtracted before exponentiating."""
    N = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = np.asarray((np.log(sums[:, 0]).sum() - shifted[rows, y].sum()) / N, dtype=np.float64)
    dscores = exp / sums
    dscores[rows, y] -= 1
    dscores /= N
    return loss, dscores


def dropout_keep_mask(key: int, counter: int, n: int, threshold: int):
    with np.errstate(over="ignore"):
        return random_bits(key, counter, n) >= np.uint64(threshold)


def dropout_forward(x, key: int, counter: int, threshold: int, scale):
    keep = dropout_keep_mask(key, counter, x.size, threshold).reshape(x.shape)
    return x * keep * scale, keep


def dropout_backward(dout, keep, scale):
    return dout * keep * scale


def _native_flat(a, *like_a) -> bool:
    """True when the native elementwise kernels take these arrays: C-contiguous floats, the
    others of ``a``'s shape and dtype."""
    return (native.available and a.dtype in (np.float32, np.float64)
            and all(b.shape == a.shape and b.dtype == a.dtype for b in like_a)
            and all(b.flags.c_contiguous for b in (a, *like_a)))


def sum_of_squares(a, block: int = 8192):
    """sum(a**2) as a 0-d float64 array, accurate to ~1e-7 relative for float32 ``a``, in one pass.

    Native: one read split over the worker threads.  NumPy: rows of ``block`` elements reduced
    in a's dtype by einsum (SIMD, no temporaries), the row sums in float64; converting ``a`` to
    float64 first was 10x slower (17 ms for 4M weights).
    """
    if _native_flat(a):
        parts = split(a.size, lambda i0, i1: native.sum_of_squares(a, i0=i0, i1=i1), a.size,
                      elementwise=True)
        return np.asarray(sum(parts), dtype=np.float64)
    flat = a.reshape(-1)
    n = flat.size - flat.size % block
    rows = flat[:n].reshape(-1, block)
    total = np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64)
    tail = flat[n:].astype(np.float64)
    return np.asarray(total + np.dot(tail, tail))


def add_scaled(y, a: float, x):
    """y += a * x in place (natively one pass, no temporary, bit for bit NumPy's result)."""
    if _native_flat(y, x):
        split(y.size, lambda i0, i1: native.sgd_update(y, x, None, -a, 0.0, 0.0, False,
                                                        i0=i0, i1=i1), y.size, elementwise=True)
        return
    y += a * x


def sgd_update(p, g, v, lr: float, momentum: float, nesterov: bool, decay: float):
    """In place, in NumPy's order of operations (the native and CUDA kernels follow it);
    ``decay`` > 0 adds ``decay * p`` to the gradient first (L2 folded into the update)."""
    if _native_flat(p, g, *([] if v is None else [v])):
        split(p.size, lambda i0, i1: native.sgd_update(p, g, v, lr, decay, momentum, nesterov,
                                                        i0=i0, i1=i1), p.size, elementwise=True)
        return
    sgd_update_numpy(p, g, v, lr, momentum, nesterov, decay)


def sgd_update_numpy(p, g, v, lr: float, momentum: float, nesterov: bool, decay: float):
    """:func:`sgd_update` in NumPy array code: the reference of the native kernel."""
    if decay:
        g = g + decay * p
    if v is None:
        p -= lr * g
        return
    if nesterov:
        p -= momentum * v
    v *= momentum
    v -= lr * g
    p += (1 + momentum) * v if nesterov else v

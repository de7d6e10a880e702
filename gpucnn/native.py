"""Optional native CPU kernels (the C extension ``gpucnn._native``, built from csrc/ by setup.py).

The only module that imports ``gpucnn._native``.  ``available`` says whether it loaded; if not,
``reason`` says why and gpucnn runs on its NumPy path (:mod:`gpucnn.cpu`).  ``GPUCNN_NATIVE=0``
in the environment disables it.  ``isa`` names the instruction set of the kernels in use
("avx512f", "avx2" or "baseline": the best this CPU has; None when unavailable);
:func:`use_isa` caps it (tests use that to reach every variant on one machine).

Every function takes float32 or float64 NumPy arrays of any strides (an (N, C, H, W) view of
(C, N, H, W) memory is read in place, not copied), returns new C-contiguous NCHW arrays unless
given preallocated ones (any strides, exact shape and dtype: reusing buffers avoids page
faults), releases the GIL, and computes only images ``n0 <= n < n1`` of the batch, so callers
can split a batch across threads (other images of a given output buffer are left untouched;
the weight gradient is the sum over that range); with ``parts=k`` the extension cuts that range
into k pieces and runs them at once on its own worker threads (csrc/pool.h: a hand-off costs
1-2 us there, 150-230 us through a Python thread pool).  Semantics equal :mod:`gpucnn.functional`'s
and :mod:`gpucnn.cpu`'s: cross-correlation, OH = (H + 2*pad - KH) // stride + 1, max-pool
argmax = row-major offset of the first maximum in its window.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import env
from .checks import check_int
from .shapes import out_size


def _load():
    if not env.switch("GPUCNN_NATIVE", default=True):
        return None, "disabled by GPUCNN_NATIVE=0"
    try:
        from . import _native
    except ImportError as e:
        return None, f"not built (no C compiler at install time?): {e}"
    return _native, ""


_lib, reason = _load()
available: bool = _lib is not None
isa = _lib.isa if available else None

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
POOL_MAX = 64  # csrc/pool.h: parts of one call at most


def use_isa(name: str) -> str:
    """Run the best kernels this CPU supports at or below ``name`` ("avx512f", "avx2",
    "baseline"); returns the instruction set now in use.  Process-wide."""
    global isa
    _require()
    isa = _lib.use_isa(name)
    return isa


CONV_MODES = ("flat", "rows", "lanes", "filters", "gemm", "winograd")
CONV_BLOCKS = ("auto", "narrow", "wide", "v1", "v2", "v3", "v4")
blas = False  # whether the GEMM mode has a BLAS (use_blas)


def use_blas(gemm) -> bool:
    """Give the convolution's im2col + GEMM path (csrc/conv_gemm.h) a BLAS: ``gemm`` is
    (address of cblas_sgemm, of cblas_dgemm, 64-bit integers?), as
    :func:`gpucnn.cpu_runtime.cblas_gemm` finds them, or None for none (then every convolution
    runs direct).  gpucnn.cpu calls it on import, and keeps OpenBLAS at one thread around the
    calls; a caller of this module alone must too.  Returns whether the path is available."""
    global blas
    _require()
    sgemm, dgemm, ilp64 = gemm if gemm is not None else (0, 0, False)
    blas = _lib.use_blas(sgemm, dgemm, ilp64)
    return blas


def use_conv_mode(name: str) -> str:
    """Force one way of computing every convolution's forward and input gradient: a direct
    mode (``"flat"``, ``"rows"``, ``"lanes"``, ``"filters"``; csrc/conv_geom.h), im2col + BLAS
    (``"gemm"``) or Winograd (``"winograd"``, csrc/winograd.h: 3x3 and 5x5 kernels of stride 1
    or 2, the weight gradient too); what it cannot take gets the cost model's direct mode.
    ``"auto"`` (the default): the cost model's choice per shape.  Process-wide; tests use it to
    reach every mode.  Returns the setting now in use."""
    _require()
    if name != "auto" and name not in CONV_MODES:
        raise ValueError(f"name={name!r}: expected 'auto' or one of {', '.join(CONV_MODES)}")
    return _lib.use_conv_mode(name)


def use_conv_block(name: str) -> str:
    """Force the direct kernels' ``"narrow"`` or ``"wide"`` forward block (AVX2 has two: 16 and
    24 columns, 8 and 12 accumulators; elsewhere both are the one block), or the
    filters-in-lanes block of ``"v1"`` to ``"v4"`` vectors of filters, or ``"auto"``: the cost
    model's choice per shape (the default).  Process-wide; tests use it to reach each.
    Returns the setting now in use."""
    _require()
    if name not in CONV_BLOCKS:
        raise ValueError(f"name={name!r}: expected one of {', '.join(CONV_BLOCKS)}")
    return _lib.use_conv_block(name)


def conv_plan(x_shape, w_shape, stride: int, pad: int, dtype=np.float32) -> tuple:
    """The modes the native convolution takes for x (N, C, H, W) and w (F, C, KH, KW) on one
    thread: (forward, weight gradient, (input gradient per stride phase, ...))."""
    _require()
    N, C, H, W = (int(v) for v in x_shape)
    F, _, KH, KW = (int(v) for v in w_shape)
    return _lib.conv_plan(N, C, H, W, F, KH, KW, int(stride), int(pad),
                          np.dtype(dtype) == np.float64)


def _require():
    if not available:
        raise RuntimeError(f"gpucnn.native is unavailable: {reason}")


def _check_array(name, a, dtype=None):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name}.dtype={a.dtype}: expected float32 or float64")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}.dtype={a.dtype}: expected {dtype}, the input's")
    if a.ndim != 4:
        raise ValueError(f"{name}.shape={a.shape}: expected 4 dimensions")


def _buffer(name, buf, shape, dtype):
    """buf if it is a writable array of exactly ``shape`` and ``dtype``, a new one if None."""
    if buf is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(buf, np.ndarray) or buf.shape != tuple(shape) or buf.dtype != dtype:
        got = f"{getattr(buf, 'shape', None)} {getattr(buf, 'dtype', type(buf).__name__)}"
        raise ValueError(f"{name}={got}: expected a numpy array of shape {tuple(shape)}, {dtype}")
    if not buf.flags.writeable:
        raise ValueError(f"{name}: expected a writable array")
    return buf


def _range(n0, n1, N, names=("n0", "n1", "N")):
    n1 = N if n1 is None else n1
    if type(n0) is int and type(n1) is int and 0 <= n0 <= n1 <= N:  # without the ABC checks
        return n0, n1
    if not (isinstance(n0, numbers.Integral) and isinstance(n1, numbers.Integral) and 0 <= n0 <= n1 <= N):
        a, b, size = names
        raise ValueError(f"{a}={n0!r}, {b}={n1!r}: expected integers 0 <= {a} <= {b} <= {size}={N}")
    return int(n0), int(n1)


def _parts(parts):
    """The range is cut into ``parts`` pieces run at once on the pool's threads (csrc/pool.h)."""
    if type(parts) is int and 1 <= parts <= POOL_MAX:
        return parts
    raise ValueError(f"parts={parts!r}: expected an int from 1 to {POOL_MAX}")


def _conv_out_size(size, k, stride, pad, what):
    if k > size + 2 * pad:
        raise ValueError(f"{what}: kernel size {k} is larger than the padded input {size + 2 * pad}")
    return out_size(size, k, stride, pad)


def _argmax_dtype(size):
    return np.uint8 if size * size <= 256 else np.int32  # as gpucnn.cpu


# --- fused relu + max-pool --------------------------------------------------------------------

def relu_maxpool_forward(x, size, stride, *, out=None, argmax=None, n0=0, n1=None, parts=1):
    """x (N, C, H, W) -> out = maxpool(relu(x)) (N, C, OH, OW), OH = (H - size) // stride + 1,
    and argmax (N, C, OH, OW), uint8 (int32 for windows over 16x16): the row-major offset
    i*size + j of the first maximum of relu(x) in each window, exactly
    ``gpucnn.cpu.maxpool_forward(np.maximum(x, 0), size, stride)`` (NaN included: a NaN makes
    its window's out NaN; the argmax stays at the first maximum before it).

    One pass over x instead of relu's and the pool's: at (50, 32, 32, 32) float32, 2x2, one
    core, 1.1 ms against NumPy's 4.9 (the backward 1.1 against 4.2; scripts/bench_native.py)."""
    _require()
    _check_array("x", x)
    size = check_int("size", size, 1)
    stride = check_int("stride", stride, 1)
    N, C, H, W = x.shape
    if size > H or size > W:
        raise ValueError(f"size={size}: larger than the input x.shape={x.shape}")
    shape = (N, C, out_size(H, size, stride), out_size(W, size, stride))
    out = _buffer("out", out, shape, x.dtype)
    argmax = _buffer("argmax", argmax, shape, np.dtype(_argmax_dtype(size)))
    _lib.relu_maxpool_forward(x, out, argmax, size, stride, *_range(n0, n1, N), _parts(parts))
    return out, argmax


def relu_maxpool_backward(dout, argmax, out, x_shape, size, stride, *, dx=None, n0=0, n1=None,
                          parts=1):
    """dout, argmax, out (N, C, OH, OW) -> dx (N, C, H, W) of x_shape: each window's
    dout * (out > 0) added at its argmax, zero elsewhere (maxpool backward then relu backward)."""
    _require()
    _check_array("dout", dout)
    _check_array("out", out, dout.dtype)
    size = check_int("size", size, 1)
    stride = check_int("stride", stride, 1)
    if not isinstance(argmax, np.ndarray) or argmax.dtype != _argmax_dtype(size):
        raise TypeError(f"argmax.dtype={getattr(argmax, 'dtype', None)}: expected "
                        f"{np.dtype(_argmax_dtype(size))}, relu_maxpool_forward's")
    N, C, H, W = (int(v) for v in x_shape)
    if size > H or size > W:
        raise ValueError(f"size={size}: larger than the input x_shape={tuple(x_shape)}")
    shape = (N, C, out_size(H, size, stride), out_size(W, size, stride))
    for name, a in (("dout", dout), ("argmax", argmax), ("out", out)):
        if a.shape != shape:
            raise ValueError(f"{name}.shape={a.shape}: expected {shape}, the forward output's")
    dx = _buffer("dx", dx, (N, C, H, W), dout.dtype)
    _lib.relu_maxpool_backward(dout, argmax, out, dx, size, stride, *_range(n0, n1, N),
                               _parts(parts))
    return dx


# --- direct convolution -----------------------------------------------------------------------

def conv2d_forward(x, w, b, stride, pad, *, out=None, n0=0, n1=None, relu=False, parts=1):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> out (N, F, OH, OW), the
    cross-correlation with OH = (H + 2*pad - KH) // stride + 1 (likewise OW); ``relu``: relu
    of it (as :func:`relu_forward` gives it), clamped as the outputs are stored.

    Direct convolution, register-blocked (AVX-512: 8 filters x 32 output columns), on a copy
    of each image (split by stride phase where the kernels load output vectors): flat rows, row
    blocks, 16 images or 16 filters side by side in the vector lanes, the mode of least modelled
    cost per shape (csrc/conv_geom.h; :func:`conv_plan` tells which).  One core, float32,
    GFLOP/s: 106 at the seed shape (a), 79 at (b), 87 at 4x4 outputs with 32 -> 32 channels,
    against 36-49 for im2col + OpenBLAS SGEMM (docs/benchmarks.md).  3x3 and 5x5 kernels of
    many channels on 8x8 or larger outputs, stride 1 or 2, run as Winograd's F(2x2, 3x3) or
    F(2x2, 5x5) instead (csrc/winograd.h): at stride 1 16 or 36 multiplies per 2x2 outputs
    where the direct modes do 36 or 100, at stride 2 25 or 49, the sums equal to the direct
    ones within float rounding, not bit for bit.
    """
    _require()
    _check_array("x", x)
    _check_array("w", w, x.dtype)
    stride, pad = check_int("stride", stride, 1), check_int("pad", pad, 0)
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"w.shape={w.shape}: expected {C} input channels, x's")
    if b is not None and (not isinstance(b, np.ndarray) or b.shape != (F,) or b.dtype != x.dtype):
        raise ValueError(f"b={getattr(b, 'shape', b)}: expected None or a ({F},) {x.dtype} array")
    shape = (N, F, _conv_out_size(H, KH, stride, pad, "w.shape"), _conv_out_size(W, KW, stride, pad, "w.shape"))
    out = _buffer("out", out, shape, x.dtype)
    _lib.conv2d_forward(x, w, b, out, stride, pad, *_range(n0, n1, N), bool(relu), _parts(parts))
    return out


def conv2d_backward_weight(x, dout, kh, kw, stride, pad, *, dw=None, db=None, n0=0, n1=None,
                           parts=1, by_filters=False, input_grad=None):
    """x (N, C, H, W), dout (N, F, OH, OW) -> dw (F, C, KH, KW), db (F,): the gradients of
    :func:`conv2d_forward`'s w and b, summed over images n0..n1-1 (written, not accumulated).
    ``parts`` cut the images (each part's sums added after, in part order) or, ``by_filters``,
    the filters: each part then sums every image for its filters, so the result does not depend
    on ``parts``, and a small batch still gives each part whole images to sum over.
    ``input_grad=(w, dx)``: :func:`conv2d_backward_input`'s dx of those images into dx as well,
    beside the weight gradient: that in one part (by filters' result), dx in ``parts - 1``.

    The modes of :func:`conv2d_forward`; one core, float32: 95 GFLOP/s at (a), 67 at (b), 55
    at 4x4 outputs 32 -> 32, against 47-48 for the GEMM on cached im2col columns.  3x3 kernels
    from 24 channels and filters and 5x5 from 8, stride 1 or 2, by Winograd (csrc/winograd.h:
    the forward's transforms transposed; 3x3 32 -> 32 on 32x32 about 116 GFLOP/s counted as
    direct FLOPs, on 4x4 outputs 90), within float rounding of the direct sums."""
    _require()
    _check_array("x", x)
    _check_array("dout", dout, x.dtype)
    kh, kw = check_int("kh", kh, 1), check_int("kw", kw, 1)
    stride, pad = check_int("stride", stride, 1), check_int("pad", pad, 0)
    (N, C, H, W), F = x.shape, dout.shape[1]
    expect = (N, F, _conv_out_size(H, kh, stride, pad, "kh"), _conv_out_size(W, kw, stride, pad, "kw"))
    if dout.shape != expect:
        raise ValueError(f"dout.shape={dout.shape}: expected {expect}, the forward output's")
    dw = _buffer("dw", dw, (F, C, kh, kw), x.dtype)
    if db is not None and (not isinstance(db, np.ndarray) or db.shape != (F,) or db.dtype != x.dtype
                           or not db.flags.writeable):
        raise ValueError(f"db={getattr(db, 'shape', db)}: expected None or a writable ({F},) {x.dtype} array")
    db = np.empty(F, dtype=x.dtype) if db is None else db
    if input_grad is not None and _parts(parts) < 2:
        raise ValueError(f"parts={parts}: expected 2 or more with input_grad, one for dw")
    beside = () if input_grad is None else (input_grad[0], _buffer("dx", input_grad[1], x.shape,
                                                                  x.dtype))
    _lib.conv2d_backward_weight(x, dout, dw, db, stride, pad, *_range(n0, n1, N), _parts(parts),
                                bool(by_filters), *beside)
    return dw, db


def conv2d_backward_input(dout, w, x_shape, stride, pad, *, dx=None, n0=0, n1=None, parts=1):
    """dout (N, F, OH, OW), w (F, C, KH, KW) -> dx (N, C, H, W) of x_shape: the gradient of
    :func:`conv2d_forward`'s x.  dx splits into stride x stride phase grids; each is the
    stride-1 correlation of dout with the flipped taps that reach it (F and C swapped), so a
    strided convolution's input gradient does the forward's work, not stride**2 times it.
    Blocks of 8 input channels: with few channels most of a block is padding (C=1 at (b): 12
    GFLOP/s; only a first layer has so few, and it skips dx), with many it runs like the
    forward (32 -> 32 at 16x16: 92)."""
    _require()
    _check_array("dout", dout)
    _check_array("w", w, dout.dtype)
    stride, pad = check_int("stride", stride, 1), check_int("pad", pad, 0)
    N, C, H, W = (int(v) for v in x_shape)
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"w.shape={w.shape}: expected {C} input channels, x_shape's")
    expect = (N, F, _conv_out_size(H, KH, stride, pad, "w.shape"), _conv_out_size(W, KW, stride, pad, "w.shape"))
    if dout.shape != expect:
        raise ValueError(f"dout.shape={dout.shape}: expected {expect}, the forward output's")
    dx = _buffer("dx", dx, (N, C, H, W), dout.dtype)
    _lib.conv2d_backward_input(dout, w, dx, stride, pad, *_range(n0, n1, N), _parts(parts))
    return dx


# --- matmul, the L2 penalty and the optimizer update ------------------------------------------

def matmul(a, b, out, *, by_rows=True, parts=1) -> bool:
    """out (M, N) C-contiguous = a (M, K) @ b (K, N) (one float dtype, M, N, K >= 1), by NumPy's
    OpenBLAS (kept at one thread by the caller) in ``parts`` pieces of a's rows (``by_rows``) or
    b's columns.  False, out untouched, where BLAS cannot read a or b as it lies, or is absent."""
    _require()
    return _lib.matmul(a, b, out, by_rows, _parts(parts))


_SPAN = ("i0", "i1", "size")


def _flat_check(name, a, like=None):
    if not isinstance(a, np.ndarray) or a.dtype not in _FLOATS or not a.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous float32 or float64 numpy array, got "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    if like is not None and (a.shape != like.shape or a.dtype != like.dtype):
        raise ValueError(f"{name}: {a.shape} {a.dtype}, expected p's {like.shape} {like.dtype}")


def sum_of_squares(a, *, i0=0, i1=None) -> float:
    """sum(a.flat[i0:i1] ** 2) in float64 (partial sums in a's dtype over 2048-element
    blocks), one read of a."""
    _require()
    _flat_check("a", a)
    return _lib.sum_of_squares(a, *_range(i0, i1, a.size, _SPAN))


def sgd_update(p, g, v, lr, decay, momentum, nesterov, *, i0=0, i1=None) -> None:
    """In place on p.flat[i0:i1] (and v's): ``gpucnn.cpu.sgd_update`` with ``decay * p`` added
    to the gradient, one pass: each array is read once, p (and v) written once."""
    _require()
    _flat_check("p", p)
    _flat_check("g", g, p)
    if v is not None:
        _flat_check("v", v, p)
    if not p.flags.writeable or (v is not None and not v.flags.writeable):
        raise ValueError("p, v: expected writable arrays")
    _lib.sgd_update(p, g, v, float(lr), float(decay), float(momentum), bool(nesterov),
                    *_range(i0, i1, p.size, _SPAN))


# --- batch norm and the elementwise ReLU passes (csrc/fused_ops.h) ----------------------------
# Thin: the C functions check every buffer (kind, shape, strides, ranges) and raise
# "name: expected ..." themselves; a check here too cost ~2 us a call, several per layer.

_CHANNELS = ("c0", "c1", "C")


def batchnorm_forward(x, out, gamma, beta, running_mean, running_var, stats, train, momentum,
                      eps, relu, *, c0=0, c1=None, parts=1) -> None:
    """x, out (N, C, H, W) of one dtype with unit stride along W (any other strides); gamma,
    beta (C,); running_mean, running_var (C,), updated in place in training (None there:
    untracked); stats (4, C) C-contiguous, written: per channel the mean, 1/sqrt(var + eps),
    a = gamma/sqrt(var + eps) and beta the forward used.  out = (x - mean) * a + beta
    (``relu``: relu of it), channels c0..c1-1; gpucnn.batchnorm's semantics."""
    _require()
    _lib.batchnorm_forward(x, out, gamma, beta, running_mean, running_var, stats, train,
                           momentum, eps, relu, *_range(c0, c1, x.shape[1], _CHANNELS),
                           _parts(parts))


def batchnorm_backward(dout, x, stats, dx, dgamma, dbeta, train, relu, *, c0=0,
                       c1=None, parts=1) -> None:
    """The gradients of :func:`batchnorm_forward` (its ReLU included) for channels c0..c1-1:
    dgamma, dbeta (C,) and, unless dx is None, dx (x's shape), from dout (x's shape) and the
    forward's x and stats."""
    _require()
    _lib.batchnorm_backward(dout, x, stats, dx, dgamma, dbeta, train, relu,
                            *_range(c0, c1, x.shape[1], _CHANNELS), _parts(parts))


def relu_forward(x, out, *, i0=0, i1=None, parts=1) -> None:
    """out.flat[i0:i1] = max(x, 0) (NaN kept), C-contiguous arrays of one size and dtype."""
    _require()
    _lib.relu_forward(x, out, *_range(i0, i1, out.size, _SPAN), _parts(parts))


def relu_backward(dout, out, dx, *, i0=0, i1=None, parts=1) -> None:
    """dx.flat[i0:i1] = dout * (out > 0), C-contiguous arrays of one size and dtype."""
    _require()
    _lib.relu_backward(dout, out, dx, *_range(i0, i1, dx.size, _SPAN), _parts(parts))


def add_relu(a, b, out, *, i0=0, i1=None, parts=1) -> None:
    """out.flat[i0:i1] = relu(a + b), C-contiguous arrays of one size and dtype."""
    _require()
    _lib.add_relu(a, b, out, *_range(i0, i1, out.size, _SPAN), _parts(parts))

"""Convolution (cross-correlation, seeds/002 and 003): forward and backward."""
from __future__ import annotations

from .. import primitives
from ..checks import check_int
from ..shapes import out_size
from ._checks import check_array, check_dout, check_same_device
from .activation import relu_backward


def conv2d_forward(x, w, b, stride=1, pad=0, add_bias=True):
    """2-D cross-correlation.

    x (N, C, H, W), w (F, C, KH, KW), b (F,) or None -> out (N, F, OH, OW) with
    OH = (H + 2*pad - KH) // stride + 1 (likewise OW).  The algorithm is the device's (see
    ``conv2d_forward`` in gpucnn/cpu.py and the CUDA host code): one GEMM over im2col columns
    (seeds/002), or direct convolution.  ``add_bias=False`` leaves b out of ``out`` for the
    next op to add (``relu_forward``/``relu_maxpool2d_forward``'s ``bias``); the backward
    still returns db.
    """
    xp, stride, pad = _check_conv_args(x, w, b, stride, pad)
    out, saved = primitives.for_array_module(xp).conv2d_forward(x, w, b if add_bias else None,
                                                                stride, pad)
    return out, (x.shape, saved, w, b is not None, stride, pad)


def conv2d_relu_forward(x, w, b, stride=1, pad=0):
    """relu(conv2d_forward(x, w, b, stride, pad)): shapes as there.  A conv and the ReLU after
    it as one op (nn.Sequential's Conv2d + ReLU where no pool follows): the CPU's native conv
    clamps its outputs as it stores them, CUDA adds the bias in the ReLU's launch."""
    xp, stride, pad = _check_conv_args(x, w, b, stride, pad)
    out, saved = primitives.for_array_module(xp).conv2d_relu_forward(x, w, b, stride, pad)
    return out, ((x.shape, saved, w, b is not None, stride, pad), out)


def conv2d_relu_backward(dout, cache, need_dx=True):
    """dout (N, F, OH, OW) -> (dx or None, dw, db) of :func:`conv2d_relu_forward`: the ReLU's
    gradient (seeds/003), then :func:`conv2d_backward`'s."""
    conv_cache, out = cache
    return conv2d_backward(relu_backward(dout, out), conv_cache, need_dx)


def conv2d_backward(dout, cache, need_dx=True):
    """dout (N, F, OH, OW) -> dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None.

    dw = dout' @ cols^T and db = sum of dout over all axes but F (the im2col derivation,
    seeds/002); dx is col2im of w^T @ dout', which equals the full convolution of dout with the
    flipped kernel (seeds/003).
    ``need_dx=False`` skips the input gradient (nobody needs dx of the data).
    """
    x_shape, saved, w, has_bias, stride, pad = cache
    check_array("dout", dout, ndim=4)
    F, C, KH, KW = w.shape
    N, _, H, W = x_shape
    check_dout(dout, (N, F, out_size(H, KH, stride, pad), out_size(W, KW, stride, pad)), w)
    return primitives.of(dout).conv2d_backward(dout, saved, w, x_shape, stride, pad,
                                               bool(need_dx), has_bias)


def _check_conv_args(x, w, b, stride, pad):
    """(x's array module, stride, pad as ints), after a one-line error for any argument a conv
    cannot take."""
    xp = check_array("x", x, ndim=4, batch=True)
    check_array("w", w, ndim=4)
    if b is not None:
        check_array("b", b, ndim=1)
    check_same_device(x=x, w=w, b=b)
    stride = check_int("stride", stride, 1)
    pad = check_int("pad", pad, 0)
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"w.shape={tuple(w.shape)}: expected {C} input channels to match "
                         f"x.shape={tuple(x.shape)}")
    if b is not None and b.shape[0] != F:
        raise ValueError(f"b.shape={tuple(b.shape)}: expected ({F},), one bias per filter")
    if KH > H + 2 * pad or KW > W + 2 * pad:
        raise ValueError(f"kernel {KH}x{KW} is larger than the padded input "
                         f"{H + 2 * pad}x{W + 2 * pad} (x.shape={tuple(x.shape)}, pad={pad})")
    if x.dtype != w.dtype:
        raise TypeError(f"x.dtype={x.dtype} and w.dtype={w.dtype}: expected the same dtype")
    return xp, stride, pad

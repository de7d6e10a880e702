"""Pooling: max (with first-maximum argmax), max after a ReLU in one pass, average and global
average."""
from __future__ import annotations

from .. import primitives
from ..shapes import out_size
from ._checks import check_array, check_dout, check_pool
from .activation import fused_with_bias, plus_bias


def maxpool2d_forward(x, size=2, stride=None):
    """Max over size x size windows every ``stride`` (default ``size``; overlapping allowed).

    x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - size) // stride + 1.
    """
    xp, size, stride = check_pool("x", x, size, stride)
    out, argmax = primitives.for_array_module(xp).maxpool_forward(x, size, stride)
    return out, (x.shape, argmax, size, stride)


def maxpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W); each window's gradient goes to its first maximum."""
    x_shape, argmax, size, stride = cache
    check_array("dout", dout, ndim=4)
    check_dout(dout, argmax.shape, argmax)
    return primitives.of(dout).maxpool_backward(dout, argmax, x_shape, size, stride)


def relu_maxpool2d_forward(x, size=2, stride=None, bias=None):
    """maxpool2d(relu(x)) in one pass: the same out and argmax as relu_forward then
    maxpool2d_forward, without materialising relu(x).  nn.Sequential fuses a ReLU followed by a
    MaxPool2d into this.  ``bias`` (C,): pool relu(x + bias), the bias of a conv that left it
    out (``add_bias=False``); one pass on CUDA, where the conv's add was a pass of its own."""
    xp, size, stride = check_pool("x", x, size, stride)
    P = primitives.for_array_module(xp)
    fused = fused_with_bias(P, "bias_relu_maxpool_forward", x, bias)
    if fused is not None:
        out, argmax = fused(x, bias, size, stride)
    else:
        out, argmax = P.relu_maxpool_forward(plus_bias(x, bias), size, stride)
    return out, (x.shape, argmax, out, size, stride)


def relu_maxpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W): dout * (out > 0) to each window's argmax."""
    x_shape, argmax, out, size, stride = cache
    check_array("dout", dout, ndim=4)
    check_dout(dout, argmax.shape, argmax)
    return primitives.of(dout).relu_maxpool_backward(dout, argmax, out, x_shape, size, stride)


def _window_slices(size, stride, oh, ow):
    """For each window offset (i, j): the strided slice of the input that offset reads, so a
    pooling pass is size*size whole-array operations rather than a loop over pixels.  On the CPU
    this measured 5-10x faster than a mean over ``sliding_window_view`` windows (float32
    50x32x16x16, 2x2 stride 2: 1.3 ms against 12 ms; 3x3 stride 2: 3.3 against 18 ms, one
    thread on a loaded 2-core machine), and it needs nothing CuPy lacks."""
    return [(slice(None), slice(None), slice(i, i + stride * (oh - 1) + 1, stride),
             slice(j, j + stride * (ow - 1) + 1, stride)) for i in range(size) for j in range(size)]


def avgpool2d_forward(x, size=2, stride=None):
    """Mean over size x size windows every ``stride`` (default ``size``; overlapping allowed).

    x (N, C, H, W) -> out (N, C, OH, OW), OH = (H - size) // stride + 1.  No padding.
    """
    xp, size, stride = check_pool("x", x, size, stride)
    N, C, H, W = x.shape
    oh, ow = out_size(H, size, stride), out_size(W, size, stride)
    out = xp.zeros((N, C, oh, ow), dtype=x.dtype)
    for window in _window_slices(size, stride, oh, ow):
        out += x[window]
    out *= 1.0 / (size * size)
    return out, (x.shape, size, stride)


def avgpool2d_backward(dout, cache):
    """dout (N, C, OH, OW) -> dx (N, C, H, W): each input gets dout / size**2 from every window
    holding it (overlaps summed)."""
    x_shape, size, stride = cache
    xp = check_array("dout", dout, ndim=4)
    N, C, H, W = x_shape
    oh, ow = out_size(H, size, stride), out_size(W, size, stride)
    check_dout(dout, (N, C, oh, ow))
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    share = dout * (1.0 / (size * size))
    for window in _window_slices(size, stride, oh, ow):
        dx[window] += share
    return dx


def global_avgpool2d_forward(x):
    """Mean over each channel's whole map: x (N, C, H, W) -> out (N, C).

    One matrix-vector product, (N*C, H*W) @ a column of 1/(H*W): NumPy's mean over the last two
    axes took 0.21 ms at (256, 32, 4, 4) float32, the product 0.02 (its per-row reduction loop
    costs more than the 16 values it sums)."""
    xp = check_array("x", x, ndim=4, batch=True)
    N, C, H, W = x.shape
    column = xp.full((H * W, 1), 1.0 / (H * W), dtype=x.dtype)
    out = primitives.for_array_module(xp).matmul(x.reshape(N * C, H * W), column)
    return out.reshape(N, C), x.shape


def global_avgpool2d_backward(dout, cache):
    """dout (N, C) -> dx (N, C, H, W) = dout / (H*W) at every position."""
    x_shape = cache
    xp = check_array("dout", dout, ndim=2)
    check_dout(dout, x_shape[:2])
    dx = xp.empty(x_shape, dtype=dout.dtype)
    dx[...] = (dout * (1.0 / (x_shape[2] * x_shape[3])))[:, :, None, None]
    return dx

"""Activations: ReLU (optionally adding the bias a conv or linear layer left out, or after a
residual sum), sigmoid, LeakyReLU and tanh.  Each backward takes the forward's cache."""
from __future__ import annotations

import math

from .. import primitives
from ..checks import check_real
from ._checks import check_array, check_dout, check_same_device


def relu_forward(x, bias=None):
    """max(x, 0), any shape.  ``bias`` (C,): relu(x + bias) along axis 1, the bias of a conv or
    linear layer that left it out (``add_bias=False``); one pass on CUDA, not two."""
    xp = check_array("x", x)
    P = primitives.for_array_module(xp)
    fused = fused_with_bias(P, "bias_relu_forward", x, bias)
    out = fused(x, bias) if fused is not None else P.relu_forward(plus_bias(x, bias))
    return out, out


def fused_with_bias(P, name, x, bias):
    """Device ``P``'s fusion ``name`` when a ``bias`` (checked against x) is given, else None."""
    if bias is None:
        return None
    check_array("bias", bias, ndim=1)
    check_same_device(x=x, bias=bias)
    if x.ndim < 2 or bias.shape != (x.shape[1],) or bias.dtype != x.dtype:
        raise ValueError(f"bias.shape={tuple(bias.shape)} ({bias.dtype}): expected one "
                         f"{x.dtype} per channel (axis 1) of x.shape={tuple(x.shape)}")
    return primitives.fusion(P, name)


def plus_bias(x, bias):
    """x + bias along axis 1 (x itself without one): what a layer's own bias add computes."""
    return x if bias is None else x + bias.reshape((1, -1) + (1,) * (x.ndim - 2))


def add_relu_forward(a, b):
    """relu(a + b) for a and b of one shape and dtype: a residual block's sum and the ReLU
    after it, one pass on the CPU.  The backward is :func:`relu_backward` with this cache."""
    xp = check_array("a", a)
    check_array("b", b)
    check_same_device(a=a, b=b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"b.shape={tuple(b.shape)} ({b.dtype}): expected a's "
                         f"{tuple(a.shape)} ({a.dtype})")
    out = primitives.for_array_module(xp).add_relu_forward(a, b)
    return out, out


def relu_backward(dout, cache):
    """dout where the output was positive, else 0 (seeds/003)."""
    out = cache
    check_array("dout", dout)
    check_dout(dout, out.shape, out)
    return primitives.of(dout).relu_backward(dout, out)


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xp = check_array("x", x)
    out = primitives.for_array_module(xp).sigmoid_forward(x)
    return out, out


def sigmoid_backward(dout, cache):
    """dout * s * (1 - s) for the forward output s (seeds/001)."""
    out = cache
    check_array("dout", dout)
    check_dout(dout, out.shape, out)
    return primitives.of(dout).sigmoid_backward(dout, out)


def check_negative_slope(negative_slope) -> float:
    return check_real("negative_slope", negative_slope, -math.inf)


def leaky_relu_forward(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (torch's LeakyReLU); any shape."""
    xp = check_array("x", x)
    negative_slope = check_negative_slope(negative_slope)
    return xp.where(x > 0, x, x * negative_slope), (x, negative_slope)


def leaky_relu_backward(dout, cache):
    """dout where x > 0, else negative_slope * dout (at x == 0 the slope, as torch)."""
    x, negative_slope = cache
    xp = check_array("dout", dout)
    check_dout(dout, x.shape, x)
    return xp.where(x > 0, dout, dout * negative_slope)


def tanh_forward(x):
    """tanh(x), any shape."""
    xp = check_array("x", x)
    out = xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """dout * (1 - t**2) for the forward output t."""
    out = cache
    check_array("dout", dout)
    check_dout(dout, out.shape, out)
    return dout * (1 - out * out)
